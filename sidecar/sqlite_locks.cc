// See sqlite_locks.h.
#include "sidecar/sqlite_locks.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "sidecar/fsutil.h"

namespace litefs::sqlite {
namespace {

struct flock MakeFlock(short type, off_t start, off_t len) {
  struct flock fl;
  std::memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  fl.l_pid = 0;  // required for OFD locks
  return fl;
}

}  // namespace

Result<bool> TryLock(int fd, short type, off_t start, off_t len) {
  struct flock fl = MakeFlock(type, start, len);
  for (;;) {
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return true;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EACCES) return false;
    return fs::ErrnoError("lock", "fd " + std::to_string(fd));
  }
}

void Unlock(int fd, off_t start, off_t len) {
  struct flock fl = MakeFlock(F_UNLCK, start, len);
  while (fcntl(fd, F_OFD_SETLK, &fl) != 0 && errno == EINTR) {
  }
}

Result<bool> IsLocked(int fd, short type, off_t start, off_t len) {
  struct flock fl = MakeFlock(type, start, len);
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return fs::ErrnoError("getlk", "fd " + std::to_string(fd));
  return fl.l_type != F_UNLCK;
}

// How every lock timeout's message starts (IsLockTimeout looks for it).
constexpr char kTimedOut[] = "timed out after ";

Status LockWithin(int fd, short type, off_t start, off_t len, std::chrono::milliseconds timeout,
                  const std::string& what) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + timeout;
  // SQLite's busy-handler schedule, capped low: locks are held briefly.
  static constexpr int kDelaysUs[] = {0, 100, 200, 500, 1000, 2000, 5000};
  size_t attempt = 0;
  for (;;) {
    Result<bool> got = TryLock(fd, type, start, len);
    if (!got.ok()) return got.status();
    if (*got) return Status();
    if (Clock::now() >= deadline) {
      return Status::Error(kTimedOut + std::to_string(timeout.count()) +
                           " ms waiting for " + what);
    }
    int us = kDelaysUs[attempt < std::size(kDelaysUs) ? attempt : std::size(kDelaysUs) - 1];
    attempt++;
    std::this_thread::sleep_for(std::chrono::microseconds(us));
  }
}

bool IsLockTimeout(const Status& st) {
  return !st.ok() && st.message().find(kTimedOut) != std::string::npos;
}

Result<ExclusiveLock> ExclusiveLock::Acquire(int fd, std::chrono::milliseconds timeout,
                                             const std::string& what) {
  LITEFS_RETURN_IF_ERROR(LockWithin(fd, F_WRLCK, kReservedByte, 1, timeout,
                                    "the RESERVED lock of " + what));
  Status st = LockWithin(fd, F_WRLCK, kPendingByte, 1, timeout, "the PENDING lock of " + what);
  if (st.ok()) {
    st = LockWithin(fd, F_WRLCK, kSharedFirst, kSharedSize, timeout,
                    "readers of " + what + " to finish");
    if (st.ok()) return ExclusiveLock(fd);
    Unlock(fd, kPendingByte, 1);
  }
  Unlock(fd, kReservedByte, 1);
  return st;
}

ExclusiveLock::~ExclusiveLock() {
  if (fd_ < 0) return;
  Unlock(fd_, kSharedFirst, kSharedSize);
  Unlock(fd_, kPendingByte, 2);  // PENDING and RESERVED
}

Result<SharedLock> SharedLock::Acquire(int fd, std::chrono::milliseconds timeout,
                                       const std::string& what) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    // Probe PENDING so that a writer on its way to EXCLUSIVE is not starved.
    Result<bool> pending = TryLock(fd, F_RDLCK, kPendingByte, 1);
    if (!pending.ok()) return pending.status();
    if (*pending) {
      Result<bool> got = TryLock(fd, F_RDLCK, kSharedFirst, kSharedSize);
      Unlock(fd, kPendingByte, 1);
      if (!got.ok()) return got.status();
      if (*got) return SharedLock(fd);
    }
    if (Clock::now() >= deadline) {
      return Status::Error(kTimedOut + std::to_string(timeout.count()) +
                           " ms waiting for a read lock on " + what);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

SharedLock::~SharedLock() {
  if (fd_ >= 0) Unlock(fd_, kSharedFirst, kSharedSize);
}

Result<WalFreeze> WalFreeze::Acquire(const std::string& db_path,
                                     std::chrono::milliseconds timeout) {
  std::string shm = db_path + "-shm";
  int fd = open(shm.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return WalFreeze(-1);
    return fs::ErrnoError("open", shm);
  }
  Status st = LockWithin(fd, F_WRLCK, kShmCheckpointByte, 1, timeout, "the checkpoint lock of " + shm);
  if (st.ok()) {
    st = LockWithin(fd, F_RDLCK, kShmReadByte0 + 1, 1, timeout, "a read slot of " + shm);
    if (st.ok()) return WalFreeze(fd);
  }
  close(fd);  // OFD locks go with the last descriptor of the description
  return st;
}

WalFreeze::~WalFreeze() {
  if (fd_ >= 0) close(fd_);
}

Result<bool> HasHotJournal(const std::string& db_path, int db_fd) {
  std::string journal = db_path + "-journal";
  Result<fs::UniqueFd> fd = fs::Open(journal, O_RDONLY);
  if (!fd.ok()) return false;  // no journal (or unreadable: SQLite would not see it either)
  uint8_t first = 0;
  ssize_t n = pread(fd->get(), &first, 1, 0);
  if (n <= 0 || first == 0) return false;
  Result<bool> reserved = IsLocked(db_fd, F_WRLCK, kReservedByte, 1);
  if (!reserved.ok()) return reserved.status();
  return !*reserved;
}

}  // namespace litefs::sqlite
