// Tests for vfs/vfs_config: which paths are managed databases.
#include <doctest.h>

#include "vfs/vfs_config.h"

using litefs::vfs::ManagedDbName;
using litefs::vfs::VfsConfig;

TEST_CASE("databases directly inside the managed dir are managed") {
  VfsConfig c{"/data/db", "/data/db/.litefs.sock"};
  CHECK(ManagedDbName(c, "/data/db/app.db") == std::optional<std::string>("app.db"));
  CHECK(ManagedDbName(c, "/data/db/x") == std::optional<std::string>("x"));
}

TEST_CASE("other paths pass through") {
  VfsConfig c{"/data/db", "/data/db/.litefs.sock"};
  CHECK_FALSE(ManagedDbName(c, "/data/db"));
  CHECK_FALSE(ManagedDbName(c, "/data/db/"));
  CHECK_FALSE(ManagedDbName(c, "/data/dbx/app.db"));  // a sibling with a common prefix
  CHECK_FALSE(ManagedDbName(c, "/data/app.db"));
  CHECK_FALSE(ManagedDbName(c, "/data/db/sub/app.db"));      // subdirectories are not managed
  CHECK_FALSE(ManagedDbName(c, "/data/db/.litefs/x.db"));    // the sidecar's own data dir
}

TEST_CASE("side files and LiteFS control files are never databases") {
  VfsConfig c{"/d", "/d/.litefs.sock"};
  for (const char* name : {"a.db-journal", "a.db-wal", "a.db-shm", "a.db-pos", "a.db-lock"}) {
    CAPTURE(name);
    CHECK_FALSE(ManagedDbName(c, std::string("/d/") + name));
  }
}
