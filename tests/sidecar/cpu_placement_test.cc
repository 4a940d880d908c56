// cpu_placement: CPU lists, the disk's interrupt CPUs from a fake sysfs and
// procfs tree laid out as Linux lays them out, and the choice made of them.
#include "sidecar/cpu_placement.h"

#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "doctest/doctest.h"

namespace litefs::cpu_placement {
namespace {

namespace stdfs = std::filesystem;

void Write(const stdfs::path& p, const std::string& text) {
  stdfs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

void Link(const stdfs::path& link, const std::string& target) {
  stdfs::create_directories(link.parent_path());
  stdfs::create_symlink(target, link);
}

// A fake root with /sys and /proc for one disk: `pci` is the PCI function
// raising its interrupts, `irqs` its MSI vectors and where each is routed.
struct FakeRoot {
  FakeRoot() {
    char tmpl[] = "/tmp/cpu_placement_test.XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    root = tmpl;
  }
  ~FakeRoot() { stdfs::remove_all(root); }
  void Irq(int irq, const std::string& effective, const stdfs::path& pci) {
    Write(pci / "msi_irqs" / std::to_string(irq), "msix\n");
    if (!effective.empty()) Write(root / "proc/irq" / std::to_string(irq) / "effective_affinity_list", effective + "\n");
    Write(root / "proc/irq" / std::to_string(irq) / "smp_affinity_list", "0-3\n");
  }
  stdfs::path root;
};

}  // namespace

TEST_CASE("CPU lists in the kernel's format") {
  CHECK(*ParseCpuList("0-3,6") == CpuList{0, 1, 2, 3, 6});
  CHECK(*ParseCpuList("5,1,1-2\n") == CpuList{1, 2, 5});
  CHECK(FormatCpuList({0, 1, 2, 3, 6, 8, 9}) == "0-3,6,8-9");
  CHECK(FormatCpuList({}) == "");
  for (const char* bad : {"", "a", "3-1", "1,,2", "1,", "-1", "1-", "99999"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseCpuList(bad).ok());
  }
}

TEST_CASE("a virtio disk's interrupts, found from a partition up to its PCI function") {
  FakeRoot f;
  const stdfs::path pci = f.root / "sys/devices/pci0000:00/0000:00:02.0";
  const stdfs::path disk = pci / "virtio1/block/vda";
  Link(f.root / "sys/dev/block/254:1", "../../devices/pci0000:00/0000:00:02.0/virtio1/block/vda/vda1");
  Write(disk / "vda1/partition", "1\n");
  Link(disk / "device", "../../../virtio1");
  f.Irq(35, "1", pci);
  f.Irq(36, "1", pci);
  CHECK(DiskInterruptCpus(makedev(254, 1), f.root) == CpuList{1});

  SUBCASE("without an effective affinity, the configured one") {
    stdfs::remove(f.root / "proc/irq/36/effective_affinity_list");
    CHECK(DiskInterruptCpus(makedev(254, 1), f.root) == CpuList{0, 1, 2, 3});
  }
  SUBCASE("an interrupt whose routing cannot be read makes the answer unknown") {
    stdfs::remove_all(f.root / "proc/irq/36");
    CHECK(DiskInterruptCpus(makedev(254, 1), f.root).empty());
  }
}

TEST_CASE("an NVMe disk with a queue per CPU has interrupts on every CPU") {
  FakeRoot f;
  const stdfs::path pci = f.root / "sys/devices/pci0000:00/0000:00:04.0";
  Link(f.root / "sys/dev/block/259:0", "../../devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1");
  stdfs::create_directories(pci / "nvme/nvme0/nvme0n1");
  Link(pci / "nvme/nvme0/nvme0n1/device", "../../nvme0");
  for (int q = 0; q < 4; q++) f.Irq(40 + q, std::to_string(q), pci);
  CHECK(DiskInterruptCpus(makedev(259, 0), f.root) == CpuList{0, 1, 2, 3});
}

TEST_CASE("virtual and unknown block devices have no interrupt CPUs") {
  FakeRoot f;
  Link(f.root / "sys/dev/block/253:0", "../../devices/virtual/block/dm-0");
  stdfs::create_directories(f.root / "sys/devices/virtual/block/dm-0");
  CHECK(DiskInterruptCpus(makedev(253, 0), f.root).empty());
  CHECK(DiskInterruptCpus(makedev(8, 0), f.root).empty());  // not in the tree at all
}

TEST_CASE("the sidecar keeps off the disk's interrupt CPUs when another is left") {
  const CpuList two = {0, 1};
  Choice c = *Choose("auto", two, {1});
  CHECK(c.cpus == CpuList{0});
  CHECK(c.reason.find("keeping off CPU 1") != std::string::npos);
  CHECK(Choose("auto", {0, 1, 2, 3}, {0})->cpus == CpuList{1, 2, 3});
  // Nothing to gain or nothing left: stays where it was started.
  CHECK(Choose("auto", two, {0, 1})->cpus.empty());
  CHECK(Choose("auto", two, {})->cpus.empty());
  CHECK(Choose("auto", {3}, {3})->cpus.empty());
  CHECK(Choose("auto", two, {5})->cpus.empty());  // interrupts on CPUs this process may not use
  CHECK(Choose("all", two, {1})->cpus.empty());
  // As configured, within what the process may use.
  CHECK(Choose("1", two, {1})->cpus == CpuList{1});
  Result<Choice> outside = Choose("0-2", two, {1});
  REQUIRE_FALSE(outside.ok());
  CHECK(outside.message().find("0-2 is not within the CPUs this process may use (0-1)") != std::string::npos);
  Result<Choice> bad = Choose("fast", two, {1});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.message().find("expected auto, all or a CPU list") != std::string::npos);
}

TEST_CASE("a thread moved for a spawn moves back") {
  const CpuList start = ThreadCpus();
  REQUIRE_FALSE(start.empty());
  {
    ScopedThreadCpus scoped({start.front()});
    CHECK(ThreadCpus() == CpuList{start.front()});
  }
  CHECK(ThreadCpus() == start);
}

}  // namespace litefs::cpu_placement
