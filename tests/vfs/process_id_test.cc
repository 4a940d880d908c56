// Tests for vfs/process_id: the cached id follows a fork.
#include <doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vfs/process_id.h"

using litefs::vfs::CurrentPid;

TEST_CASE("the cached process id is the caller's, before and after a fork") {
  CHECK(CurrentPid() == getpid());
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) _exit(CurrentPid() == getpid() ? 0 : 1);  // stale: the parent's id
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(CurrentPid() == getpid());
}
