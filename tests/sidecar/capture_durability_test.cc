// Tests of sidecar/capture_durability: the marker that tells recovery which
// LTX files were written without a sync.
#include "sidecar/capture_durability.h"

#include <doctest.h>

#include <string>

#include "sidecar/fsutil.h"
#include "sidecar_test_util.h"

namespace litefs {
namespace {

using test::TempDir;

TEST_CASE("the unsynced-LTX marker names the first unsynced TXID until the files are synced") {
  TempDir dir;
  const std::string ltx_dir = dir / "dbs/app.db/ltx";
  REQUIRE(fs::MakeDirs(ltx_dir).ok());
  const std::string marker = dir / "dbs/app.db/ltx-unsynced";
  CaptureDurability d(marker);
  CHECK_FALSE(d.UnsyncedFrom().has_value());
  CHECK(d.MakeDurable(ltx_dir).ok());  // nothing to do

  REQUIRE(d.BeforeUnsynced(42).ok());
  CHECK(d.UnsyncedFrom() == 42u);
  REQUIRE(d.BeforeUnsynced(43).ok());  // later files do not move it
  CHECK(d.UnsyncedFrom() == 42u);
  // A new process (a restarted sidecar) reads the same from the disk.
  CHECK(CaptureDurability(marker).UnsyncedFrom() == 42u);

  REQUIRE(d.MakeDurable(ltx_dir).ok());
  CHECK_FALSE(fs::Exists(marker));
  CHECK_FALSE(d.UnsyncedFrom().has_value());
  REQUIRE(d.BeforeUnsynced(50).ok());
  CHECK(d.UnsyncedFrom() == 50u);

  // A marker the power failure tore still says "verify": every file.
  REQUIRE(fs::WriteFileAtomic(marker, "", /*sync=*/false).ok());
  CHECK(CaptureDurability(marker).UnsyncedFrom() == 1u);
  // One found on disk at start is made durable like one written here.
  CaptureDurability restarted(marker);
  REQUIRE(restarted.MakeDurable(ltx_dir).ok());
  CHECK_FALSE(fs::Exists(marker));
}

}  // namespace
}  // namespace litefs
