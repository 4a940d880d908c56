// See fsutil.h.
#include "sidecar/fsutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace litefs::fs {

Status ErrnoError(std::string_view op, std::string_view path, int err) {
  std::string msg(op);
  msg += ' ';
  msg.append(path);
  msg += ": ";
  msg += strerror(err);
  return Status::Error(std::move(msg));
}

Status ErrnoError(std::string_view op, std::string_view path) {
  return ErrnoError(op, path, errno);
}

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

Result<UniqueFd> Open(const std::string& path, int flags, int mode) {
  int fd;
  do {
    fd = open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoError("open", path);
  return UniqueFd(fd);
}

namespace {

// The process umask, read once (umask() can only be read by setting it).
mode_t ProcessUmask() {
  static const mode_t mask = [] {
    mode_t m = umask(0);
    umask(m);
    return m;
  }();
  return mask;
}

}  // namespace

Status WriteFileAtomic(const std::string& path, std::string_view content, bool sync, int mode,
                       const struct timespec* mtime) {
  static std::atomic<uint64_t> seq{0};
  std::string dir = Dirname(path);
  std::string tmp = dir + "/." + Basename(path) + ".tmp" + std::to_string(getpid()) + "." +
                    std::to_string(seq++);
  Result<UniqueFd> fd = Open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (!fd.ok()) return fd.status();
  Status st;
  // The umask must not narrow what readers of these files may do.
  if ((mode_t(mode) & ProcessUmask()) != 0 && fchmod(fd->get(), mode_t(mode)) != 0) {
    st = ErrnoError("chmod", tmp);
  }
  if (st.ok()) st = PwriteFull(fd->get(), content.data(), content.size(), 0);
  if (st.ok() && mtime) {
    struct timespec times[2] = {*mtime, *mtime};
    if (futimens(fd->get(), times) != 0) st = ErrnoError("set the time of", tmp);
  }
  if (st.ok() && sync && fdatasync(fd->get()) != 0) st = ErrnoError("fsync", tmp);
  fd->Reset();
  if (st.ok() && rename(tmp.c_str(), path.c_str()) != 0) st = ErrnoError("rename", tmp);
  if (!st.ok()) {
    unlink(tmp.c_str());
    return st;
  }
  if (sync) return FsyncDir(dir);
  return Status();
}

Result<std::string> ReadFile(const std::string& path) {
  Result<UniqueFd> fd = Open(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd->get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read", path);
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  return out;
}

Status FsyncDir(const std::string& dir) {
  Result<UniqueFd> fd = Open(dir, O_RDONLY | O_DIRECTORY);
  if (!fd.ok()) return fd.status();
  if (fsync(fd->get()) != 0) return ErrnoError("fsync", dir);
  return Status();
}

Status MakeDirs(const std::string& path, int mode) {
  if (path.empty()) return Status();
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status();
    return Status::Error("mkdir " + path + ": exists and is not a directory");
  }
  std::string parent = Dirname(path);
  if (parent != path) LITEFS_RETURN_IF_ERROR(MakeDirs(parent, mode));
  if (mkdir(path.c_str(), mode_t(mode)) != 0 && errno != EEXIST) return ErrnoError("mkdir", path);
  return Status();
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

Status RemoveFile(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("remove", path);
  return Status();
}

std::string Dirname(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Basename(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return ErrnoError("list", dir);
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  closedir(d);
  return names;
}

Result<size_t> PreadFull(int fd, void* buf, size_t len, uint64_t off) {
  size_t done = 0;
  auto* p = static_cast<uint8_t*>(buf);
  while (done < len) {
    ssize_t n = pread(fd, p + done, len - done, off_t(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read", "fd " + std::to_string(fd));
    if (n == 0) break;
    done += size_t(n);
  }
  if (done < len) std::memset(p + done, 0, len - done);
  return done;
}

Status PwriteFull(int fd, const void* buf, size_t len, uint64_t off) {
  size_t done = 0;
  const auto* p = static_cast<const uint8_t*>(buf);
  while (done < len) {
    ssize_t n = pwrite(fd, p + done, len - done, off_t(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write", "fd " + std::to_string(fd));
    done += size_t(n);
  }
  return Status();
}

}  // namespace litefs::fs
