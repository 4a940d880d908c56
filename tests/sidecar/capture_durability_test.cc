// Tests of sidecar/capture_durability: the marker that tells recovery which
// LTX files were written without a sync.
#include "sidecar/capture_durability.h"

#include <doctest.h>

#include <string>

#include "sidecar/capture_log.h"
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
  const std::string copies = dir / "dbs/app.db/ltx-copies";
  CaptureDurability d(marker, copies);
  CHECK_FALSE(d.UnsyncedFrom().has_value());
  CHECK(d.MakeDurable(ltx_dir).ok());  // nothing to do

  REQUIRE(d.BeforeUnsynced(42).ok());
  CHECK(d.UnsyncedFrom() == 42u);
  REQUIRE(d.BeforeUnsynced(43).ok());  // later files do not move it
  CHECK(d.UnsyncedFrom() == 42u);
  // A new process (a restarted sidecar) reads the same from the disk.
  CHECK(CaptureDurability(marker, copies).UnsyncedFrom() == 42u);

  REQUIRE(d.MakeDurable(ltx_dir).ok());
  CHECK_FALSE(fs::Exists(marker));
  CHECK_FALSE(d.UnsyncedFrom().has_value());
  REQUIRE(d.BeforeUnsynced(50).ok());
  CHECK(d.UnsyncedFrom() == 50u);

  // A marker the power failure tore still says "verify": every file.
  REQUIRE(fs::WriteFileAtomic(marker, "", /*sync=*/false).ok());
  CHECK(CaptureDurability(marker, copies).UnsyncedFrom() == 1u);
  // One found on disk at start is made durable like one written here.
  CaptureDurability restarted(marker, copies);
  REQUIRE(restarted.MakeDurable(ltx_dir).ok());
  CHECK_FALSE(fs::Exists(marker));
}

TEST_CASE("a synced rollback commit's file is kept durable by a copy until the next sync") {
  TempDir dir;
  const std::string ltx_dir = dir / "dbs/app.db/ltx";
  REQUIRE(fs::MakeDirs(ltx_dir).ok());
  const std::string marker = dir / "dbs/app.db/ltx-unsynced";
  const std::string copies = dir / "dbs/app.db/ltx-copies";
  const std::string file = ltx_dir + "/0000000000000007-0000000000000007.ltx";
  REQUIRE(fs::WriteFileAtomic(file, std::string(5000, 'x'), /*sync=*/false).ok());

  CaptureDurability d(marker, copies);
  REQUIRE(d.BeforeUnsynced(7).ok());
  REQUIRE(d.KeepDurable(file, ltx_dir).ok());
  Result<std::vector<std::string>> kept = CaptureDurability(marker, copies).Copies();
  REQUIRE(kept.ok());
  REQUIRE(kept->size() == 1);
  CHECK((*kept)[0] == std::string(5000, 'x'));

  // The sync makes the copies pointless: forgotten with the marker.
  REQUIRE(d.MakeDurable(ltx_dir).ok());
  CHECK_FALSE(fs::Exists(marker));
  kept = CaptureDurability(marker, copies).Copies();
  REQUIRE(kept.ok());
  CHECK(kept->empty());

  // A file too large for the log is synced by itself (no copy); files
  // written unsynced before it stay under the marker.
  const std::string big = ltx_dir + "/0000000000000008-0000000000000008.ltx";
  REQUIRE(fs::WriteFileAtomic(big, std::string(CaptureLog::kDefaultCapacity, 'y'), false).ok());
  REQUIRE(d.BeforeUnsynced(8).ok());
  REQUIRE(d.KeepDurable(big, ltx_dir).ok());
  CHECK(fs::Exists(marker));
  kept = d.Copies();
  REQUIRE(kept.ok());
  CHECK(kept->empty());

  // A full log: everything is synced, the copies forgotten, the marker gone.
  CaptureLog small_log(dir / "dbs/app.db/small-copies", 16 << 10);
  CaptureDurability tight(marker, dir / "dbs/app.db/small-copies");
  const std::string f9 = ltx_dir + "/0000000000000009-0000000000000009.ltx";
  const std::string f10 = ltx_dir + "/000000000000000a-000000000000000a.ltx";
  REQUIRE(fs::WriteFileAtomic(f9, std::string(9000, 'a'), false).ok());
  REQUIRE(fs::WriteFileAtomic(f10, std::string(9000, 'b'), false).ok());
  REQUIRE(small_log.Append(f9).ok());  // creates the 16 KiB log, one copy in it
  REQUIRE(tight.BeforeUnsynced(9).ok());
  REQUIRE(tight.KeepDurable(f10, ltx_dir).ok());
  CHECK_FALSE(fs::Exists(marker));
  kept = tight.Copies();
  REQUIRE(kept.ok());
  CHECK(kept->empty());
}

}  // namespace
}  // namespace litefs
