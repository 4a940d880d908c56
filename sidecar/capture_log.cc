// See capture_log.h.
#include "sidecar/capture_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "ltx/checksum.h"
#include "ltx/io.h"

namespace litefs {
namespace {

constexpr char kMagic[8] = {'L', 'F', 'S', 'C', 'O', 'P', 'Y', '1'};
constexpr uint32_t kEntryMagic = 0x4c464345;  // "LFCE"

uint64_t Align8(uint64_t n) { return (n + 7) & ~uint64_t(7); }

}  // namespace

Status CaptureLog::Open() {
  if (fd_.valid()) return Status();
  Result<fs::UniqueFd> fd = fs::Open(path_, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (!fd.ok()) return fd.status();
  struct stat st;
  if (fstat(fd->get(), &st) != 0) return fs::ErrnoError("stat", path_);
  uint8_t header[16] = {};
  if (uint64_t(st.st_size) >= kHeaderSize) {
    Result<size_t> n = fs::PreadFull(fd->get(), header, sizeof header, 0);
    if (!n.ok()) return n.status();
  }
  fd_ = std::move(fd).value();
  if (std::memcmp(header, kMagic, sizeof kMagic) == 0) {
    capacity_ = uint64_t(st.st_size);  // whatever size an earlier version chose
    generation_ = io::LoadBE64(header + 8);
    Result<uint64_t> end = ScanEntries(nullptr);
    if (!end.ok()) return end.status();
    end_ = *end;
    return Status();
  }
  // New (or never finished): write every block through once, so that an
  // append only overwrites data, then the header.
  std::vector<uint8_t> zeros(64 << 10);
  for (uint64_t off = 0; off < capacity_; off += zeros.size()) {
    const size_t len = size_t(std::min<uint64_t>(zeros.size(), capacity_ - off));
    LITEFS_RETURN_IF_ERROR(fs::PwriteFull(fd_.get(), zeros.data(), len, off));
  }
  if (fdatasync(fd_.get()) != 0) return fs::ErrnoError("fsync", path_);
  LITEFS_RETURN_IF_ERROR(fs::FsyncDir(fs::Dirname(path_)));
  end_ = kHeaderSize;
  return WriteHeader(1);
}

Status CaptureLog::WriteHeader(uint64_t generation) {
  uint8_t header[16];
  std::memcpy(header, kMagic, sizeof kMagic);
  io::StoreBE64(header + 8, generation);
  LITEFS_RETURN_IF_ERROR(fs::PwriteFull(fd_.get(), header, sizeof header, 0));
  if (fdatasync(fd_.get()) != 0) return fs::ErrnoError("fsync", path_);
  generation_ = generation;
  return Status();
}

Result<uint64_t> CaptureLog::ScanEntries(std::vector<std::string>* out) {
  uint64_t off = kHeaderSize;
  while (off + kEntryHeaderSize <= capacity_) {
    uint8_t h[kEntryHeaderSize];
    Result<size_t> n = fs::PreadFull(fd_.get(), h, sizeof h, off);
    if (!n.ok()) return n.status();
    const uint32_t magic = io::LoadBE32(h);
    const uint64_t generation = io::LoadBE64(h + 8), length = io::LoadBE64(h + 16),
                   crc = io::LoadBE64(h + 24);
    if (magic != kEntryMagic || generation != generation_ || length == 0 ||
        length > capacity_ - off - kEntryHeaderSize) {
      break;
    }
    std::string copy(length, '\0');
    n = fs::PreadFull(fd_.get(), copy.data(), length, off + kEntryHeaderSize);
    if (!n.ok()) return n.status();
    if (ltx::Crc64(0, {reinterpret_cast<const uint8_t*>(copy.data()), copy.size()}) != crc) break;
    if (out) out->push_back(std::move(copy));
    off += Align8(kEntryHeaderSize + length);
  }
  return off;
}

Result<bool> CaptureLog::Append(const std::string& file_path, bool flush) {
  LITEFS_RETURN_IF_ERROR(Open());
  struct stat st;
  if (stat(file_path.c_str(), &st) != 0) return fs::ErrnoError("stat", file_path);
  const uint64_t size = uint64_t(st.st_size);
  // Checked before reading: a large transaction's file is never held in memory.
  if (size == 0 || size > capacity_ - end_ || kEntryHeaderSize > capacity_ - end_ - size) return false;
  Result<std::string> copy = fs::ReadFile(file_path);
  if (!copy.ok()) return copy.status();
  if (copy->size() != size) return Status::Error(file_path + " changed while being copied");
  uint8_t h[kEntryHeaderSize] = {};
  io::StoreBE32(h, kEntryMagic);
  io::StoreBE64(h + 8, generation_);
  io::StoreBE64(h + 16, copy->size());
  io::StoreBE64(h + 24, ltx::Crc64(0, {reinterpret_cast<const uint8_t*>(copy->data()), copy->size()}));
  // Header and copy written in place, one sync for both.
  LITEFS_RETURN_IF_ERROR(fs::PwriteFull(fd_.get(), h, sizeof h, end_));
  LITEFS_RETURN_IF_ERROR(fs::PwriteFull(fd_.get(), copy->data(), copy->size(), end_ + sizeof h));
  const uint64_t length = sizeof h + copy->size();
  if (flush) {
    if (fdatasync(fd_.get()) != 0) return fs::ErrnoError("fsync", path_);
  } else {
    if (sync_file_range(fd_.get(), off64_t(end_), off64_t(length),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
      return fs::ErrnoError("write out", path_);
    }
    unflushed_ = true;
  }
  end_ += Align8(length);
  return true;
}

Status CaptureLog::Flush() {
  if (!unflushed_) return Status();
  if (fdatasync(fd_.get()) != 0) return fs::ErrnoError("fsync", path_);
  unflushed_ = false;
  return Status();
}

Status CaptureLog::Forget() {
  if (!fd_.valid() && !fs::Exists(path_)) return Status();
  LITEFS_RETURN_IF_ERROR(Open());
  if (end_ == kHeaderSize) return Status();
  LITEFS_RETURN_IF_ERROR(WriteHeader(generation_ + 1));
  end_ = kHeaderSize;
  unflushed_ = false;  // the header's flush carried them
  return Status();
}

Result<std::vector<std::string>> CaptureLog::Copies() {
  std::vector<std::string> out;
  if (!fd_.valid() && !fs::Exists(path_)) return out;
  LITEFS_RETURN_IF_ERROR(Open());
  Result<uint64_t> end = ScanEntries(&out);
  if (!end.ok()) return end.status();
  return out;
}

}  // namespace litefs
