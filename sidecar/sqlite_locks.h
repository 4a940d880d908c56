// SQLite's own locking protocol, taken from outside SQLite with OFD locks
// (reference: sqlite-internals §1). OFD locks conflict with the classic
// POSIX locks SQLite takes in app processes, and belong to our open file
// description, so closing some other descriptor of the same file in this
// process never drops them.
//
// POSIX record locks offer no wake-up when a lock is released (short of
// blocking in F_OFD_SETLKW, which cannot time out), so acquisition polls
// with a short back-off, exactly as SQLite's own busy handler does, and
// gives up at a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "ltx/status.h"

namespace litefs::sqlite {

inline constexpr off_t kPendingByte = 0x40000000;
inline constexpr off_t kReservedByte = kPendingByte + 1;
inline constexpr off_t kSharedFirst = kPendingByte + 2;
inline constexpr off_t kSharedSize = 510;

// One OFD record lock attempt: true if granted, false if another process
// holds a conflicting lock.
Result<bool> TryLock(int fd, short type, off_t start, off_t len);
void Unlock(int fd, off_t start, off_t len);
// True if someone else holds a lock conflicting with `type` on the range.
Result<bool> IsLocked(int fd, short type, off_t start, off_t len);

// Polls TryLock until granted or `timeout` passes; the error names `what`.
Status LockWithin(int fd, short type, off_t start, off_t len, std::chrono::milliseconds timeout,
                  const std::string& what);
// True if `st` is LockWithin's timeout: the lock was not granted in time
// (someone else held it), and the caller changed nothing.
bool IsLockTimeout(const Status& st);

// The EXCLUSIVE lock of a rollback-mode database: RESERVED, then PENDING
// (which stops new readers), then the SHARED range exclusively once current
// readers finish. Released in the destructor, in SQLite's order.
class ExclusiveLock {
 public:
  static Result<ExclusiveLock> Acquire(int fd, std::chrono::milliseconds timeout,
                                       const std::string& what);
  ExclusiveLock(ExclusiveLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  ExclusiveLock& operator=(ExclusiveLock&&) = delete;
  ~ExclusiveLock();

 private:
  explicit ExclusiveLock(int fd) : fd_(fd) {}
  int fd_;
};

// A SHARED lock taken SQLite's way (probe PENDING, then read-lock the
// SHARED range): while held no connection can reach EXCLUSIVE, so the
// database file holds only committed content (barring a hot journal).
class SharedLock {
 public:
  static Result<SharedLock> Acquire(int fd, std::chrono::milliseconds timeout,
                                    const std::string& what);
  SharedLock(SharedLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  SharedLock& operator=(SharedLock&&) = delete;
  ~SharedLock();

 private:
  explicit SharedLock(int fd) : fd_(fd) {}
  int fd_;
};

// wal-index lock bytes of the `-shm` file (sqlite-internals §4.6).
inline constexpr off_t kShmWriteByte = 120;
inline constexpr off_t kShmCheckpointByte = 121;
inline constexpr off_t kShmRecoverByte = 122;
inline constexpr off_t kShmReadByte0 = 123;  // READ0; READn = kShmReadByte0 + n
inline constexpr off_t kShmDmsByte = 128;

// Freezes the WAL of a WAL-mode database for a reader outside SQLite: holds
// CKPT exclusively (no checkpoint can backfill or truncate the WAL) and READ1
// shared (no writer can restart the WAL over frames being read). Writers
// may still append. Without a `-shm` file nothing is held (no connection
// exists to change the WAL).
class WalFreeze {
 public:
  static Result<WalFreeze> Acquire(const std::string& db_path, std::chrono::milliseconds timeout);
  WalFreeze(WalFreeze&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  WalFreeze& operator=(WalFreeze&&) = delete;
  ~WalFreeze();

 private:
  explicit WalFreeze(int fd) : fd_(fd) {}
  int fd_;  // the -shm file, owned; -1 when there is none
};

// True if `<db>-journal` is hot: it exists, its first byte is non-zero, and
// no process holds RESERVED on the database (sqlite-internals §2.6).
Result<bool> HasHotJournal(const std::string& db_path, int db_fd);

}  // namespace litefs::sqlite
