// See ltx_log.h.
#include "sidecar/ltx_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <random>

#include "ltx/io.h"
#include "sidecar/fsutil.h"

namespace litefs {

namespace {

// Temp files of this process start with this prefix; Init() removes only
// other processes' leftovers, never a file this process is writing.
const std::string& TempPrefix() {
  static const std::string prefix = [] {
    uint64_t salt = (uint64_t(std::random_device{}()) << 32) ^ uint64_t(getpid());
    return std::to_string(salt) + ".";
  }();
  return prefix;
}

}  // namespace

Status LtxLog::Init() {
  LITEFS_RETURN_IF_ERROR(fs::MakeDirs(dir_));
  Result<std::vector<std::string>> names = fs::ListDir(dir_);
  if (!names.ok()) return names.status();
  std::lock_guard<std::mutex> lock(mu_);
  files_.clear();
  remembered_.clear();
  remembered_bytes_ = 0;
  for (const std::string& name : *names) {
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      if (name.rfind(TempPrefix(), 0) != 0) LITEFS_RETURN_IF_ERROR(fs::RemoveFile(dir_ + "/" + name));
      continue;
    }
    if (std::optional<ltx::TXIDRange> r = ltx::ParseFileName(name)) files_[r->max_txid] = r->min_txid;
  }
  return Status();
}

std::string LtxLog::PathFor(ltx::TXIDRange r) const {
  return dir_ + "/" + ltx::FormatFileName(r.min_txid, r.max_txid);
}

std::string LtxLog::NewTempPath() const {
  static std::atomic<uint64_t> seq{0};
  return dir_ + "/" + TempPrefix() + std::to_string(seq++) + ".tmp";
}

std::optional<ltx::TXIDRange> LtxLog::Latest() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (files_.empty()) return std::nullopt;
  auto it = std::prev(files_.end());
  return ltx::TXIDRange{it->second, it->first};
}

std::optional<ltx::TXIDRange> LtxLog::StartingAt(uint64_t min_txid) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.lower_bound(min_txid);  // the first file ending at or after it
  if (it == files_.end() || it->second != min_txid) return std::nullopt;
  return ltx::TXIDRange{it->second, it->first};
}

bool LtxLog::Has(ltx::TXIDRange r) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(r.max_txid);
  return it != files_.end() && it->second == r.min_txid;
}

size_t LtxLog::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return files_.size();
}

Status LtxLog::Install(const std::string& tmp, ltx::TXIDRange r, bool sync) {
  std::string path = PathFor(r);
  if (rename(tmp.c_str(), path.c_str()) != 0) return fs::ErrnoError("rename", tmp);
  if (sync) LITEFS_RETURN_IF_ERROR(fs::FsyncDir(dir_));
  std::lock_guard<std::mutex> lock(mu_);
  files_[r.max_txid] = r.min_txid;
  Forget(r.max_txid);
  return Status();
}

Status LtxLog::Put(ltx::TXIDRange r, LtxBytes bytes, bool sync) {
  const std::string path = PathFor(r);
  // Over any leftover of an earlier attempt: not in the index, not complete.
  Result<fs::UniqueFd> fd = fs::Open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!fd.ok()) return fd.status();
  Status st = fs::PwriteFull(fd->get(), bytes->data(), bytes->size(), 0);
  if (st.ok() && sync && fdatasync(fd->get()) != 0) st = fs::ErrnoError("fsync", path);
  fd->Reset();
  if (st.ok()) st = Add(r, sync, std::move(bytes));
  if (!st.ok()) unlink(path.c_str());  // never left half-written under its name
  return st;
}

Status LtxLog::Add(ltx::TXIDRange r, bool sync, LtxBytes bytes) {
  if (sync) LITEFS_RETURN_IF_ERROR(fs::FsyncDir(dir_));
  std::lock_guard<std::mutex> lock(mu_);
  files_[r.max_txid] = r.min_txid;
  Forget(r.max_txid);
  if (bytes && bytes->size() <= kRememberedFileSize) {
    remembered_bytes_ += bytes->size();
    remembered_[r.max_txid] = {r.min_txid, std::move(bytes)};
    while (remembered_.size() > kRememberedFiles || remembered_bytes_ > kRememberedBytes) {
      Forget(remembered_.begin()->first);
    }
  }
  return Status();
}

void LtxLog::Forget(uint64_t max_txid) {
  auto it = remembered_.find(max_txid);
  if (it == remembered_.end()) return;
  remembered_bytes_ -= it->second.bytes->size();
  remembered_.erase(it);
}

LtxBytes LtxLog::Remembered(ltx::TXIDRange r) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = remembered_.find(r.max_txid);
  if (it == remembered_.end() || it->second.min_txid != r.min_txid) return nullptr;
  return it->second.bytes;
}

Status LtxLog::Remove(ltx::TXIDRange r) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(r.max_txid);
    if (it != files_.end() && it->second == r.min_txid) files_.erase(it);
    Forget(r.max_txid);
  }
  return fs::RemoveFile(PathFor(r));
}

std::vector<ltx::TXIDRange> LtxLog::Ranges() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ltx::TXIDRange> out;
  out.reserve(files_.size());
  for (const auto& [max, min] : files_) out.push_back({min, max});
  return out;
}

Status LtxLog::RemoveAllExcept(ltx::TXIDRange keep) {
  std::map<uint64_t, uint64_t> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    doomed.swap(files_);
    files_[keep.max_txid] = keep.min_txid;
    std::vector<uint64_t> others;
    for (const auto& [max, file] : remembered_) {
      if (max != keep.max_txid) others.push_back(max);
    }
    for (uint64_t max : others) Forget(max);
  }
  for (const auto& [max, min] : doomed) {
    if (max == keep.max_txid && min == keep.min_txid) continue;
    LITEFS_RETURN_IF_ERROR(fs::RemoveFile(PathFor({min, max})));
  }
  return Status();
}

std::vector<std::string> LtxLog::ForgetOlderThan(int64_t cutoff_seconds) {
  std::vector<ltx::TXIDRange> candidates;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (files_.size() <= 1) return {};
    for (auto it = files_.begin(); std::next(it) != files_.end(); ++it) {
      candidates.push_back({it->second, it->first});
    }
  }
  std::vector<std::string> forgotten;
  for (const ltx::TXIDRange& r : candidates) {
    std::string path = PathFor(r);
    struct stat st;
    if (stat(path.c_str(), &st) != 0) continue;
    if (st.st_mtime >= cutoff_seconds) break;  // later files are newer still
    {
      std::lock_guard<std::mutex> lock(mu_);
      files_.erase(r.max_txid);
      Forget(r.max_txid);
    }
    forgotten.push_back(std::move(path));
  }
  return forgotten;
}

Result<std::pair<ltx::Header, ltx::Trailer>> LtxLog::ReadEnds(ltx::TXIDRange r) const {
  std::string path = PathFor(r);
  if (LtxBytes bytes = Remembered(r)) {
    if (bytes->size() < ltx::kHeaderSize + ltx::kTrailerSize) return Status::Error(path + ": truncated LTX file");
    Result<ltx::Header> header = ltx::Header::Decode({bytes->data(), ltx::kHeaderSize});
    if (!header.ok()) return header.status().Context(path);
    return std::make_pair(*header, ltx::Trailer::Decode({bytes->data() + bytes->size() - ltx::kTrailerSize,
                                                         ltx::kTrailerSize}));
  }
  Result<fs::UniqueFd> fd = fs::Open(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  uint8_t head[ltx::kHeaderSize];
  Result<size_t> n = fs::PreadFull(fd->get(), head, sizeof head, 0);
  if (!n.ok()) return n.status();
  if (*n != sizeof head) return Status::Error(path + ": truncated LTX header");
  Result<ltx::Header> header = ltx::Header::Decode(head);
  if (!header.ok()) return header.status().Context(path);
  struct stat st;
  if (fstat(fd->get(), &st) != 0) return fs::ErrnoError("stat", path);
  if (st.st_size < off_t(ltx::kHeaderSize + ltx::kTrailerSize)) {
    return Status::Error(path + ": truncated LTX file");
  }
  uint8_t tail[ltx::kTrailerSize];
  n = fs::PreadFull(fd->get(), tail, sizeof tail, uint64_t(st.st_size) - sizeof tail);
  if (!n.ok()) return n.status();
  return std::make_pair(*header, ltx::Trailer::Decode(tail));
}

}  // namespace litefs
