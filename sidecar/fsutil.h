// Small file-system helpers with errors as values: an owned fd, atomic file
// replacement (write temp + rename, so readers never see a torn file),
// directory fsync, recursive mkdir, whole-file reads.
#pragma once

#include <time.h>

#include <string>
#include <string_view>
#include <vector>

#include "ltx/io.h"
#include "ltx/status.h"

namespace litefs::fs {

// "op path: strerror(errno)".
Status ErrnoError(std::string_view op, std::string_view path);
Status ErrnoError(std::string_view op, std::string_view path, int err);

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.Release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) Reset(o.Release());
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

Result<UniqueFd> Open(const std::string& path, int flags, int mode = 0644);

// Replaces `path` with `content` atomically. With `sync`, the data and the
// directory entry are durable when this returns. `mtime`, if given, becomes
// the file's modification time.
Status WriteFileAtomic(const std::string& path, std::string_view content, bool sync,
                       int mode = 0644, const struct timespec* mtime = nullptr);
Result<std::string> ReadFile(const std::string& path);
Status FsyncDir(const std::string& dir);
Status MakeDirs(const std::string& path, int mode = 0755);
bool Exists(const std::string& path);
// Removes a file; a missing file is not an error.
Status RemoveFile(const std::string& path);
std::string Dirname(const std::string& path);
std::string Basename(const std::string& path);
Result<std::vector<std::string>> ListDir(const std::string& dir);

// pread/pwrite that loop over short transfers and EINTR. A read past EOF
// fills the rest with zeros and reports how many bytes the file had.
Result<size_t> PreadFull(int fd, void* buf, size_t len, uint64_t off);
Status PwriteFull(int fd, const void* buf, size_t len, uint64_t off);

}  // namespace litefs::fs
