// The app side of the commit window (commit_window.h): one per database
// handle, with its own descriptor so that its lock is its own (OFD locks
// belong to an open file description, shared by threads of a process).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ltx/status.h"

namespace litefs::vfs {

class CommitWindowClient {
 public:
  enum class Verdict {
    kOpen,         // commit now; Leave() once the sidecar recorded it
    kClosed,       // this node is not the primary (any more)
    kExpired,      // the primary's lease ran out before this commit
    kUnavailable,  // no window file (no sidecar, or an older one)
  };

  explicit CommitWindowClient(std::string path) : path_(std::move(path)) {}
  ~CommitWindowClient();
  CommitWindowClient(const CommitWindowClient&) = delete;
  CommitWindowClient& operator=(const CommitWindowClient&) = delete;

  // Takes the shared lock and checks the window against the monotonic
  // clock; the lock is kept only when the verdict is kOpen.
  Verdict Enter();
  // The same check without the lock, for a connection that marks its
  // connection page instead (vfs/connection_page.h) before calling it.
  Verdict Check();
  // The approvals generation now (commit_window.h), nullopt without a
  // window; read before asking the sidecar to Begin.
  std::optional<uint64_t> Generation();
  // May this connection start a write transaction without asking, having
  // been approved at `generation`?
  bool MayBeginUnasked(uint64_t generation);
  // True if the sidecar shows a capture of the database with capture slot
  // `slot` armed, and the approvals generation is still `generation` (the
  // slot was named under it; a restarted sidecar bumps it). Call after the
  // commit is published in the wal-index: a full fence orders the two.
  bool CaptureArmed(uint32_t slot, uint64_t generation);
  // The rollback-captured word of capture slot `slot` (commit_window.h),
  // nullopt when the approvals generation is no longer `generation` (a
  // restarted sidecar may have given the slot to another database) or
  // there is no window.
  std::optional<uint64_t> RollbackCaptured(uint32_t slot, uint64_t generation);

  // Releases the lock taken by a successful Enter (no-op otherwise).
  void Leave();
  bool entered() const { return entered_; }
  // Why the last Enter did not return kOpen, for the app's error message.
  const std::string& error() const { return error_; }

 private:
  bool Map();
  uint64_t Word(size_t offset) const;
  void Unmap();

  std::string path_;
  int fd_ = -1;
  int pid_ = 0;  // process that opened fd_: a forked child must not share its lock
  const volatile uint8_t* map_ = nullptr;
  bool entered_ = false;
  std::string error_;
};

}  // namespace litefs::vfs
