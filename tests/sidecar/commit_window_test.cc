// Tests of the commit window file as the sidecar (sidecar/commit_window)
// writes it and the apps (vfs/commit_window_client) read it: the
// rollback-captured words that let rollback-mode commits go without waiting.
#include "sidecar/commit_window.h"

#include <doctest.h>

#include <optional>

#include "sidecar_test_util.h"
#include "vfs/commit_window.h"
#include "vfs/commit_window_client.h"

namespace litefs {
namespace {

using test::TempDir;

TEST_CASE("rollback-captured words: published per slot, read under the approval's generation") {
  TempDir dir;
  Result<std::unique_ptr<CommitWindow>> w = CommitWindow::Open(dir.path());
  REQUIRE(w.ok());
  (*w)->OpenUntil(std::nullopt);
  vfs::CommitWindowClient client(dir / window::kFileName);
  const uint64_t generation = *client.Generation();
  const uint32_t a = (*w)->AssignCaptureSlot(), b = (*w)->AssignCaptureSlot();
  REQUIRE(a != 0);
  REQUIRE(b != a);

  CHECK(client.RollbackCaptured(a, generation) == window::kRollbackUntracked);
  (*w)->PublishRollbackCaptured(a, 41);
  CHECK(client.RollbackCaptured(a, generation) == (window::kRollbackTracked | 41));
  CHECK(client.RollbackCaptured(b, generation) == window::kRollbackUntracked);  // its own word
  (*w)->PublishRollbackCaptured(a, 0);  // a counter of 0 is still a counter
  CHECK(client.RollbackCaptured(a, generation) == window::kRollbackTracked);
  (*w)->PublishRollbackCaptured(a, std::nullopt);
  CHECK(client.RollbackCaptured(a, generation) == window::kRollbackUntracked);

  // Withdrawn approvals: the slot may not be this database's any more.
  (*w)->PublishRollbackCaptured(a, 7);
  (*w)->WithdrawApprovals();
  CHECK(client.RollbackCaptured(a, generation) == std::nullopt);
  CHECK(client.RollbackCaptured(a, *client.Generation()) == (window::kRollbackTracked | 7));
  CHECK(client.RollbackCaptured(0, *client.Generation()) == std::nullopt);  // no slot
}

TEST_CASE("a restarted sidecar starts every rollback-captured word untracked") {
  TempDir dir;
  uint32_t slot = 0;
  {
    Result<std::unique_ptr<CommitWindow>> w = CommitWindow::Open(dir.path());
    REQUIRE(w.ok());
    slot = (*w)->AssignCaptureSlot();
    (*w)->PublishRollbackCaptured(slot, 12);
  }
  Result<std::unique_ptr<CommitWindow>> w = CommitWindow::Open(dir.path());
  REQUIRE(w.ok());
  vfs::CommitWindowClient client(dir / window::kFileName);
  CHECK(client.RollbackCaptured(slot, *client.Generation()) == window::kRollbackUntracked);
}

}  // namespace
}  // namespace litefs
