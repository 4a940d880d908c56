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

}  // namespace litefs::connection_page
