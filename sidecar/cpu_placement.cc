// See cpu_placement.h.
#include "sidecar/cpu_placement.h"

#include <sched.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <iterator>

#include "sidecar/fsutil.h"

namespace litefs::cpu_placement {
namespace {

namespace stdfs = std::filesystem;

// CPU numbers beyond this are refused as typos rather than allocated for.
constexpr int kMaxCpu = 65535;

// The file's first line; "" if it cannot be read.
std::string ReadFirstLine(const stdfs::path& p) {
  Result<std::string> text = fs::ReadFile(p.string());
  if (!text.ok()) return "";
  return text->substr(0, text->find('\n'));
}

bool ParseInt(std::string_view s, int* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size() && *out >= 0 && *out <= kMaxCpu;
}

CpuList Union(CpuList a, const CpuList& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  return a;
}

CpuList Minus(const CpuList& a, const CpuList& b) {
  CpuList out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

// The device directory (…/block/vda for …/block/vda/vda1) of a block device.
stdfs::path DiskDir(dev_t dev, const std::string& root) {
  std::error_code ec;
  stdfs::path link = stdfs::path(root + "/sys/dev/block") /
                     (std::to_string(major(dev)) + ":" + std::to_string(minor(dev)));
  stdfs::path dir = stdfs::canonical(link, ec);
  if (ec) return {};
  if (stdfs::exists(dir / "partition", ec)) dir = dir.parent_path();
  return dir;
}

// Up from the disk's device to the one that raises its interrupts (a PCI
// function has msi_irqs/, or a legacy irq).
CpuList InterruptCpusOfDevice(const stdfs::path& device, const std::string& root) {
  std::error_code ec;
  const stdfs::path top = stdfs::weakly_canonical(stdfs::path(root + "/sys/devices"), ec);
  std::vector<std::string> irqs;
  for (stdfs::path d = device; !d.empty() && d != top && d != d.root_path(); d = d.parent_path()) {
    if (stdfs::is_directory(d / "msi_irqs", ec)) {
      for (const auto& e : stdfs::directory_iterator(d / "msi_irqs", ec)) {
        irqs.push_back(e.path().filename().string());
      }
      break;
    }
    std::string legacy = ReadFirstLine(d / "irq");
    int n;
    if (ParseInt(legacy, &n) && n > 0) {
      irqs.push_back(legacy);
      break;
    }
  }
  CpuList cpus;
  for (const std::string& irq : irqs) {
    const stdfs::path dir = stdfs::path(root + "/proc/irq") / irq;
    std::string list = ReadFirstLine(dir / "effective_affinity_list");
    if (list.empty()) list = ReadFirstLine(dir / "smp_affinity_list");
    Result<CpuList> parsed = ParseCpuList(list);
    if (!parsed.ok()) return {};  // one unknown: the whole answer is
    cpus = Union(std::move(cpus), *parsed);
  }
  return cpus;
}

}  // namespace

Result<CpuList> ParseCpuList(std::string_view text) {
  CpuList out;
  std::string_view rest = text;
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == ' ')) rest.remove_suffix(1);
  if (rest.empty()) return Status::Error("an empty CPU list");
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (comma != std::string_view::npos && rest.empty()) {
      return Status::Error("CPU list \"" + std::string(text) + "\" ends with a comma");
    }
    size_t dash = item.find('-');
    int first = 0, last = 0;
    bool ok = dash == std::string_view::npos;
    if (ok) {
      ok = ParseInt(item, &first);
      last = first;
    } else {
      ok = ParseInt(item.substr(0, dash), &first) && ParseInt(item.substr(dash + 1), &last);
    }
    if (!ok || last < first) {
      return Status::Error("\"" + std::string(item) + "\" in CPU list \"" + std::string(text) +
                           "\" is not a CPU number or a range like 0-3");
    }
    for (int c = first; c <= last; c++) out.push_back(c);
  }
  return Union({}, out);
}

std::string FormatCpuList(const CpuList& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) j++;
    if (!out.empty()) out += ",";
    out += std::to_string(cpus[i]);
    if (j > i) out += "-" + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

CpuList DiskInterruptCpus(dev_t dev, const std::string& root) {
  stdfs::path disk = DiskDir(dev, root);
  if (disk.empty()) return {};
  std::error_code ec;
  stdfs::path device = stdfs::canonical(disk / "device", ec);
  if (ec) return {};  // a virtual device (device mapper, loop, zram)
  return InterruptCpusOfDevice(device, root);
}

Result<Choice> Choose(std::string_view setting, const CpuList& allowed, const CpuList& disk_cpus) {
  if (setting == "all") return Choice{{}, "cpus: all"};
  if (setting != "auto") {
    Result<CpuList> list = ParseCpuList(setting);
    if (!list.ok()) return Status::Error("cpus: expected auto, all or a CPU list such as 0-1: " + list.message());
    if (!allowed.empty() && !Minus(*list, allowed).empty()) {
      return Status::Error("cpus: " + FormatCpuList(*list) + " is not within the CPUs this process may use (" +
                           FormatCpuList(allowed) + ")");
    }
    return Choice{*list, "cpus: as configured"};
  }
  if (allowed.size() < 2) return Choice{{}, "one CPU"};
  if (disk_cpus.empty()) return Choice{{}, "the disk's interrupt CPUs are unknown"};
  CpuList rest = Minus(allowed, disk_cpus);
  if (rest.empty() || rest.size() == allowed.size()) {
    return Choice{{}, "the disk's interrupts go to CPUs " + FormatCpuList(disk_cpus)};
  }
  return Choice{rest, "keeping off CPU " + FormatCpuList(Minus(allowed, rest)) +
                          ", which takes the interrupts of the disk holding the databases"};
}

Result<Choice> PlaceThisThread(std::string_view setting, const std::string& dir) {
  // The managed directory may not exist yet: its nearest existing parent is
  // on the same disk as it will be.
  struct stat st;
  stdfs::path p = dir;
  while (stat(p.c_str(), &st) != 0 && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
  CpuList disk = stat(p.c_str(), &st) == 0 ? DiskInterruptCpus(st.st_dev) : CpuList();
  Result<Choice> choice = Choose(setting, ThreadCpus(), disk);
  if (choice.ok() && !choice->cpus.empty()) LITEFS_RETURN_IF_ERROR(SetThreadCpus(choice->cpus));
  return choice;
}

CpuList ThreadCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return {};
  CpuList out;
  for (int c = 0; c < CPU_SETSIZE; c++) {
    if (CPU_ISSET(c, &set)) out.push_back(c);
  }
  return out;
}

Status SetThreadCpus(const CpuList& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) {
    if (c >= CPU_SETSIZE) return Status::Error("CPU " + std::to_string(c) + " is beyond this build's limit");
    CPU_SET(c, &set);
  }
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    return Status::Error(std::string("sched_setaffinity: ") + strerror(errno));
  }
  return Status();
}

ScopedThreadCpus::ScopedThreadCpus(const CpuList& cpus) {
  if (cpus.empty()) return;
  CpuList now = ThreadCpus();
  if (now == cpus || now.empty()) return;
  if (SetThreadCpus(cpus).ok()) saved_ = std::move(now);
}

ScopedThreadCpus::~ScopedThreadCpus() {
  if (!saved_.empty()) (void)SetThreadCpus(saved_);
}

}  // namespace litefs::cpu_placement
