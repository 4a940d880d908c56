// The connection page: one page of shared memory per app connection to the
// sidecar, created by the sidecar (a memfd) and handed to the app with the
// reply to its Hello (SCM_RIGHTS). The app sets and clears its mark; the
// sidecar reads it, and sets it when it approves a Begin.
//
// It replaces the two messages a WAL commit used to cost (Begun, Commit):
// the connection marks here that it is inside a write transaction, so the
// sidecar still knows, when the connection vanishes or a handoff drains,
// which transactions are open (commit_server.cc) — without a system call on
// the app's side. The Commit of an async WAL transaction is skipped too
// while the sidecar shows, in the commit window, that a capture of that
// database is already armed (commit_window.h).
#pragma once

#include <linux/futex.h>

#include <cstddef>
#include <cstdint>

namespace litefs::connection_page {

inline constexpr size_t kSize = 4096;
inline constexpr char kMagic[8] = {'L', 'F', 'S', 'C', 'O', 'N', 'N', '1'};
inline constexpr size_t kMagicOffset = 0;
// u64, 8-byte aligned, accessed atomically: 1 while the connection is inside
// a write transaction the sidecar approved (from before it asks or begins
// unasked until after its commit is handed over or it rolls back), else 0.
inline constexpr size_t kWritingOffset = 8;
// u64, likewise: 1 from the connection's commit window check until its
// commit is handed over (or it is refused), in place of the shared lock on
// the commit window a connection without a page takes (commit_window.h).
// The sidecar publishes "closed" before it reads these marks.
inline constexpr size_t kCommittingOffset = 16;
// u64: 0 while the sidecar serves the connection; it sets 1 when it drops
// the connection (a bad message), before it closes the socket.
inline constexpr size_t kDroppedOffset = 24;

// The sidecar lock page, the second descriptor with the answer to Hello:
// one page per sidecar process, mapped read-only by every app (sealed
// against writes by anyone but the sidecar), holding a robust,
// process-shared pthread mutex that the sidecar's loop thread locks at
// start and unlocks when it stops serving. Its futex word (the mutex's
// first int in glibc; the sidecar checks) holds that thread's id while it
// is held; when the thread ends, however it ends (SIGKILL too), the kernel
// replaces the id with FUTEX_OWNER_DIED before the process's sockets
// close. So the app learns whether its sidecar is still there from a load,
// where it used to peek at the socket (a system call) at every write
// transaction. The mutex lives apart from the connection pages because
// glibc follows the pointers inside it: an app must not be able to write it.
namespace sidecar_lock {
inline constexpr size_t kSize = 4096;
inline constexpr char kMagic[8] = {'L', 'F', 'S', 'L', 'O', 'C', 'K', '1'};
inline constexpr size_t kMutexOffset = 64;
inline constexpr size_t kMutexRoom = 64;
}  // namespace sidecar_lock

inline uint64_t LoadWord(const uint8_t* page, size_t offset) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(page + offset), __ATOMIC_SEQ_CST);
}

// Whether the sidecar still serves a connection: its lock names a thread
// the kernel has not marked dead, and it has not dropped the connection.
inline bool SidecarServes(const uint8_t* lock_page, const uint8_t* connection_page) {
  uint32_t word = __atomic_load_n(
      reinterpret_cast<const uint32_t*>(lock_page + sidecar_lock::kMutexOffset), __ATOMIC_SEQ_CST);
  return (word & FUTEX_TID_MASK) != 0 && (word & FUTEX_OWNER_DIED) == 0 &&
         LoadWord(connection_page, kDroppedOffset) == 0;
}

}  // namespace litefs::connection_page
