// The commit window: until when this node may pass SQLite's commit point.
//
// The sidecar publishes it in `<dir>/.litefs.window`, a small file every app
// process maps read-only; the VFS checks it right before a transaction's
// commit point (rollback journal: SQLITE_FCNTL_SYNC, sent after the pages
// are written and before the database is synced and the journal finalized;
// WAL: before the commit frame's header is written). A primary on an etcd
// lease publishes its fencing deadline, a static primary "no deadline", a
// replica "closed". The check costs a clock read, no round trip, and it is
// made against the value of the moment: a lease that expires while a long
// transaction is open fails that transaction's COMMIT (SQLite rolls it back)
// instead of letting it commit locally and be lost when the node resyncs.
//
// Closing the window must also wait for commits already past the check. A
// committing connection holds a shared OFD lock on byte 0 of the file from
// the check until the sidecar answered its Commit (or the transaction ended
// otherwise); the sidecar publishes "closed", then takes the exclusive lock
// (retrying): once it has it, no transaction is between the check and its
// recorded commit, and none can start. Locks die with their process.
// A connection with a connection page (connection_page.h) marks it instead
// of taking the lock, and the sidecar also waits for the marks of its live
// connections to clear: the app marks before it reads the window, the
// sidecar publishes "closed" before it reads the marks.
//
// The same file lets a connection start write transactions without asking
// the sidecar each time (the Begin round trip cost more than the rest of a
// small commit). After one Begin the sidecar approved, a connection may
// begin the next ones on its own — and only tell the sidecar, without
// waiting, that it is writing (Begun) — while new transactions are approved
// (`approve until`: the window's deadline less the approval lead) and the
// approvals generation is still the one it read before that Begin. The
// sidecar bumps the generation whenever an approval may no longer hold: a
// database starts recovering, an import waits for the write lock, a handoff
// drains, the window closes, a sidecar starts.
//
// Both sides use CLOCK_MONOTONIC, which app and sidecar share on one host
// (also across containers of a pod; not across time namespaces).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace litefs::window {

inline constexpr const char* kFileName = ".litefs.window";
inline constexpr size_t kFileSize = 8192;
inline constexpr char kMagic[8] = {'L', 'F', 'S', 'W', 'I', 'N', 'D', '1'};
inline constexpr size_t kMagicOffset = 0;
// u64, CLOCK_MONOTONIC nanoseconds, 8-byte aligned, accessed atomically.
inline constexpr size_t kOpenUntilOffset = 8;
// u64, CLOCK_MONOTONIC nanoseconds: new write transactions may start
// without a Begin round trip until then (kClosed: never, kNoDeadline: always).
inline constexpr size_t kApproveUntilOffset = 16;
// u64, bumped by the sidecar to withdraw every earlier approval.
inline constexpr size_t kGenerationOffset = 24;
// Capture-armed words, u64 each, one per database slot 1..kCaptureSlots
// (the sidecar names a database's slot in its answer to a Begin; 0: none).
// Non-zero while a capture of that database is scheduled or running; the
// capture reads the wal-index once more after clearing it. So a WAL commit
// published before the app sees the word cleared will be captured without
// being announced (connection_page.h).
inline constexpr size_t kCaptureArmedOffset = 64;
inline constexpr uint32_t kCaptureSlots = uint32_t((4096 - kCaptureArmedOffset) / 8);
inline constexpr size_t CaptureArmedOffset(uint32_t slot) { return kCaptureArmedOffset + 8 * (slot - 1); }
// Rollback-captured words, u64 each, one per database slot, in the second
// page. kRollbackUntracked (0), or kRollbackTracked | the database header's
// change counter as of the last rollback-journal commit the sidecar has
// captured. While the word is tracked, apps hand rollback-mode commits over
// without waiting, and a write transaction waits, before its first write to
// the database file, until the word shows the counter the file shows: the
// previous commit's pages are captured before anything overwrites them.
inline constexpr size_t kRollbackCapturedOffset = 4096;
inline constexpr size_t RollbackCapturedOffset(uint32_t slot) {
  return kRollbackCapturedOffset + 8 * (slot - 1);
}
inline constexpr uint64_t kRollbackUntracked = 0;
inline constexpr uint64_t kRollbackTracked = uint64_t(1) << 32;
inline constexpr off_t kLockOffset = 0;
inline constexpr off_t kLockLength = 1;

inline constexpr uint64_t kClosed = 0;
inline constexpr uint64_t kNoDeadline = UINT64_MAX;

}  // namespace litefs::window
