// SQLite database header parsing and whole-file rolling checksum (see db_file.h).
#include "ltx/db_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "ltx/checksum.h"
#include "ltx/io.h"

namespace litefs::ltx {
namespace {

constexpr char kDbMagic[16] = "SQLite format 3";  // with its terminating NUL
constexpr size_t kChunkSize = 1024 * 1024;        // bytes read per pread

bool IsValidPageSize(uint32_t size) {
  return size >= 512 && size <= 65536 && (size & (size - 1)) == 0;
}

// Reads up to buf.size() bytes at `offset`; fewer only at end of file.
Result<size_t> PreadFull(int fd, std::span<uint8_t> buf, uint64_t offset) {
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::pread(fd, buf.data() + got, buf.size() - got, off_t(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Error(std::string("pread: ") + std::strerror(errno));
    }
    if (n == 0) break;
    got += size_t(n);
  }
  return got;
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() { ::close(fd_); }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

}  // namespace

Result<DbHeader> ParseDbHeader(std::span<const uint8_t> b) {
  if (b.size() < kDbHeaderSize) {
    return Status::Error("database header too short: " + std::to_string(b.size()) +
                         " bytes, need 100");
  }
  if (std::memcmp(b.data(), kDbMagic, sizeof kDbMagic) != 0) {
    return Status::Error("not an SQLite database: header string is not \"SQLite format 3\"");
  }
  const uint16_t raw_page_size = io::LoadBE16(b.data() + 16);
  DbHeader h;
  h.page_size = raw_page_size == 1 ? 65536 : raw_page_size;
  if (!IsValidPageSize(h.page_size)) {
    return Status::Error("invalid database page size " + std::to_string(raw_page_size) +
                         " at offset 16 (must be a power of two from 512 to 65536)");
  }
  h.write_version = b[18];
  h.read_version = b[19];
  h.change_counter = io::LoadBE32(b.data() + 24);
  h.page_count = io::LoadBE32(b.data() + 28);
  const uint32_t version_valid_for = io::LoadBE32(b.data() + 92);
  h.page_count_valid = h.page_count != 0 && h.change_counter == version_valid_for;
  return h;
}

Result<uint64_t> ChecksumDbFile(int fd, uint32_t page_size, uint32_t page_count) {
  if (!IsValidPageSize(page_size))
    return Status::Error("invalid page size " + std::to_string(page_size));
  const uint32_t lock_pgno = LockPgno(page_size);
  const uint32_t pages_per_chunk = uint32_t(std::max<size_t>(1, kChunkSize / page_size));
  std::vector<uint8_t> buf(size_t(pages_per_chunk) * page_size);
  RollingChecksum checksum;
  for (uint64_t first = 1; first <= page_count;) {
    const uint32_t n = uint32_t(std::min<uint64_t>(pages_per_chunk, page_count - first + 1));
    std::span<uint8_t> chunk(buf.data(), size_t(n) * page_size);
    const uint64_t offset = (first - 1) * page_size;
    Result<size_t> got = PreadFull(fd, chunk, offset);
    if (!got.ok()) return got.status();
    if (*got < chunk.size()) {
      return Status::Error("database file holds " + std::to_string((offset + *got) / page_size) +
                           " whole pages, expected " + std::to_string(page_count));
    }
    for (uint32_t i = 0; i < n; i++) {
      const uint64_t pgno = first + i;
      if (pgno == lock_pgno) continue;
      checksum.Toggle(
          PageChecksum(uint32_t(pgno), chunk.subspan(size_t(i) * page_size, page_size)));
    }
    first += n;
  }
  return checksum.value();
}

Result<uint64_t> ChecksumDbPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("open " + path + ": " + std::strerror(errno));
  FdCloser closer(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::Error("stat " + path + ": " + std::strerror(errno));
  const uint64_t size = uint64_t(st.st_size);
  if (size == 0) return kChecksumFlag;

  uint8_t header_bytes[kDbHeaderSize];
  Result<size_t> got = PreadFull(fd, header_bytes, 0);
  if (!got.ok()) return got.status().Context(path);
  if (*got < kDbHeaderSize) {
    return Status::Error(path + ": not an SQLite database (" + std::to_string(size) + " bytes)");
  }
  Result<DbHeader> header = ParseDbHeader(header_bytes);
  if (!header.ok()) return header.status().Context(path);

  uint64_t page_count = header->page_count;
  if (!header->page_count_valid) {
    if (size % header->page_size != 0) {
      return Status::Error(path + ": file size " + std::to_string(size) +
                           " is not a multiple of the page size " +
                           std::to_string(header->page_size));
    }
    page_count = size / header->page_size;
  }
  if (page_count > UINT32_MAX)
    return Status::Error(path + ": too many pages: " + std::to_string(page_count));
  Result<uint64_t> checksum = ChecksumDbFile(fd, header->page_size, uint32_t(page_count));
  if (!checksum.ok()) return checksum.status().Context(path);
  return *checksum;
}

}  // namespace litefs::ltx
