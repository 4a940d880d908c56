// The sidecar side of the commit window (vfs/commit_window.h): publishes
// until when the apps on this node may commit, and tells when no commit is
// between its window check and its recorded Commit.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "ltx/status.h"
#include "sidecar/fsutil.h"

namespace litefs {

class CommitWindow {
 public:
  // Creates or reuses `<dir>/.litefs.window` (never replaced: apps keep it
  // mapped across sidecar restarts), locks it for this process (one sidecar
  // per directory) and publishes "closed".
  static Result<std::unique_ptr<CommitWindow>> Open(const std::string& dir);
  ~CommitWindow();
  CommitWindow(const CommitWindow&) = delete;
  CommitWindow& operator=(const CommitWindow&) = delete;

  // Commits may pass their commit point until `deadline` (none: for as long
  // as this node is the primary); apps approved once may start new write
  // transactions without asking until `approval_lead` before it.
  void OpenUntil(std::optional<std::chrono::steady_clock::time_point> deadline,
                 std::chrono::nanoseconds approval_lead = {});
  // Closes the window and withdraws every approval.
  void Close();
  // Withdraws every approval: each app connection asks the sidecar (Begin)
  // before its next write transaction.
  void WithdrawApprovals();

  // A database's capture-armed word (vfs/commit_window.h): slots are
  // handed out once per sidecar run, 1..kCaptureSlots, then 0 (none: that
  // database's apps announce every commit).
  uint32_t AssignCaptureSlot();
  void ArmCapture(uint32_t slot, bool armed);
  // A database's rollback-captured word (vfs/commit_window.h): the change
  // counter of the last rollback-journal commit captured, or none (apps then
  // wait for each rollback-mode commit to be captured).
  void PublishRollbackCaptured(uint32_t slot, std::optional<uint32_t> change_counter);

  // True when no app holds the window (none is between its check and the
  // sidecar's answer to its Commit). Non-blocking; after Close(), poll it.
  bool NoCommitInFlight();

 private:
  CommitWindow(fs::UniqueFd fd, uint8_t* map) : fd_(std::move(fd)), map_(map) {}
  void Publish(size_t offset, uint64_t value);

  fs::UniqueFd fd_;
  uint8_t* map_;
  uint32_t capture_slots_assigned_ = 0;
};

}  // namespace litefs
