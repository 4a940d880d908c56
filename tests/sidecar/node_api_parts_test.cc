// Unit tests of the node API's building blocks: the /events JSON shapes and
// timestamps, the /metrics histogram text, and /import's validation and the
// LTX it writes (page 1 adjusted so open connections notice the change).
#include <doctest.h>
#include <fcntl.h>

#include <string>
#include <vector>

#include "ltx/decoder.h"
#include "ltx/io.h"
#include "sidecar/events_api.h"
#include "sidecar/fsutil.h"
#include "sidecar/import.h"
#include "sidecar/ltx_apply.h"
#include "sidecar/metrics.h"
#include "sidecar_test_util.h"

namespace litefs {
namespace {

using test::ReadBytes;
using test::Sqlite;
using test::TempDir;
using test::WriteBytes;

TEST_CASE("event timestamps are RFC 3339 in UTC with trailing zeros trimmed, as Go prints them") {
  CHECK(FormatRfc3339Ms(0) == "1970-01-01T00:00:00Z");
  CHECK(FormatRfc3339Ms(1700000000000) == "2023-11-14T22:13:20Z");
  CHECK(FormatRfc3339Ms(1700000000120) == "2023-11-14T22:13:20.12Z");
  CHECK(FormatRfc3339Ms(1700000000001) == "2023-11-14T22:13:20.001Z");
}

TEST_CASE("tx and role events have LiteFS's JSON shape") {
  PosChange c;
  c.pos = {0x2a, 0x8000000000000abcull};
  c.page_size = 4096;
  c.commit = 7;
  c.timestamp_ms = 1700000000500;
  CHECK(FormatTxEvent("app.db", c) ==
        R"({"type":"tx","db":"app.db","data":{"txID":"000000000000002a",)"
        R"("postApplyChecksum":"8000000000000abc","pageSize":4096,"commit":7,)"
        R"("timestamp":"2023-11-14T22:13:20.5Z"}})");
  CHECK(FormatRoleEvent("init", true, "") == R"({"type":"init","data":{"isPrimary":true}})");
  CHECK(FormatRoleEvent("primaryChange", false, "node-a") ==
        R"({"type":"primaryChange","data":{"isPrimary":false,"hostname":"node-a"}})");
}

TEST_CASE("the latency histogram renders cumulative Prometheus buckets") {
  LatencyHistogram h;
  h.Observe(0.00004);  // first bucket
  h.Observe(0.0007);   // le=0.001
  h.Observe(20);       // only +Inf
  std::string out;
  h.Render(out, "x_seconds", "help");
  CHECK(out.find("# TYPE x_seconds histogram\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{le=\"5e-05\"} 1\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{le=\"0.0005\"} 1\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{le=\"0.001\"} 2\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{le=\"10\"} 2\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(out.find("x_seconds_count 3\n") != std::string::npos);
  CHECK(EscapeLabelValue("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
}

std::string MakeDb(const TempDir& dir, const std::string& name, int page_size, int rows) {
  std::string path = dir / name;
  Sqlite db(path);
  db.Exec("PRAGMA page_size=" + std::to_string(page_size));
  test::FillTable(db, "t", 1, rows, 100);
  return path;
}

TEST_CASE("import validation refuses garbage, truncated files and bad headers with a reason") {
  TempDir dir;
  std::string good = MakeDb(dir, "good.db", 1024, 200);
  Result<ImportFile> ok = ValidateImportFile(good);
  REQUIRE_MESSAGE(ok.ok(), ok.message());
  CHECK(ok->page_size == 1024);
  std::vector<uint8_t> bytes = ReadBytes(good);
  CHECK(ok->page_count == bytes.size() / 1024);

  WriteBytes(dir / "text", std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o'});
  CHECK(ValidateImportFile(dir / "text").message().find("SQLite format 3") != std::string::npos);
  WriteBytes(dir / "empty", {});
  CHECK_FALSE(ValidateImportFile(dir / "empty").ok());

  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + bytes.size() / 2 + 100);
  WriteBytes(dir / "cut", cut);
  CHECK(ValidateImportFile(dir / "cut").message().find("truncated") != std::string::npos);

  std::vector<uint8_t> bad_ps = bytes;
  bad_ps[16] = 0x03;  // page size 768+...: not a power of two
  bad_ps[17] = 0x00;
  WriteBytes(dir / "badps", bad_ps);
  CHECK_FALSE(ValidateImportFile(dir / "badps").ok());

  std::vector<uint8_t> bad_frac = bytes;
  bad_frac[21] = 65;
  CHECK(ValidateImportHeader(bad_frac).message().find("payload fractions") != std::string::npos);
  // The header check alone accepts a good prefix before the rest arrives.
  CHECK(ValidateImportHeader({bytes.data(), 100}).ok());
}

TEST_CASE("an import LTX replaces every page and bumps the replaced database's counters") {
  TempDir dir;
  std::string src = MakeDb(dir, "src.db", 4096, 50);
  std::string live = MakeDb(dir, "live.db", 4096, 500);
  Result<ImportFile> file = ValidateImportFile(src);
  REQUIRE(file.ok());
  Result<ReplacedDb> old = ReadReplacedDb(live);
  REQUIRE_MESSAGE(old.ok(), old.message());
  REQUIRE(old->has_pages);
  CHECK_FALSE(old->wal_mode);

  Result<uint64_t> live_sum = ltx::ChecksumDbPath(live);
  REQUIRE(live_sum.ok());
  ltx::Pos prev{9, *live_sum};
  LtxWriteOptions opts;
  opts.compress = true;
  opts.timestamp_ms = 1700000000000;
  Result<SnapshotFile> ltx = WriteImportLtx(src, *file, *old, prev, dir / "imp.ltx", opts);
  REQUIRE_MESSAGE(ltx.ok(), ltx.message());
  CHECK(ltx->header.min_txid == 10);
  CHECK(ltx->header.max_txid == 10);
  CHECK(ltx->header.pre_apply_checksum == prev.checksum);
  CHECK(ltx->header.commit == file->page_count);

  // Applied like a replica applies it, the live database becomes the
  // source's content, with page 1's counters moved past the old ones.
  Result<VerifiedLtx> v = ReadAndVerifyLtx(dir / "imp.ltx");
  REQUIRE_MESSAGE(v.ok(), v.message());
  CHECK(v->pgnos.size() == file->page_count);
  PageChecksums cs;
  {
    Result<fs::UniqueFd> fd = fs::Open(live, O_RDONLY);
    REQUIRE(fd.ok());
    REQUIRE(cs.Load(fd->get(), 4096, uint32_t(ReadBytes(live).size() / 4096)).ok());
  }
  Result<uint32_t> applied = ApplyToDatabase(live, dir / "imp.ltx", *v, cs, ApplyOptions{});
  REQUIRE_MESSAGE(applied.ok(), applied.message());
  CHECK(cs.value() == ltx->trailer.post_apply_checksum);
  Result<uint64_t> after = ltx::ChecksumDbPath(live);
  REQUIRE(after.ok());
  CHECK(*after == ltx->trailer.post_apply_checksum);
  std::vector<uint8_t> page1 = ReadBytes(live);
  CHECK(io::LoadBE32(page1.data() + 24) == old->change_counter + 1);
  CHECK(io::LoadBE32(page1.data() + 92) == old->change_counter + 1);
  CHECK(io::LoadBE32(page1.data() + 40) == old->schema_cookie + 1);
  CHECK(io::LoadBE32(page1.data() + 28) == file->page_count);
  CHECK(page1.size() == size_t(file->page_count) * 4096);
  Sqlite db(live);
  CHECK(db.Int("SELECT count(*) FROM t") == 50);
  CHECK(db.Text("PRAGMA integrity_check") == "ok");
}

TEST_CASE("an import over a WAL-mode database with another page size is refused") {
  TempDir dir;
  std::string src = MakeDb(dir, "src.db", 1024, 10);
  std::string live = dir / "live.db";
  Sqlite db(live);
  db.Exec("PRAGMA journal_mode=WAL");
  db.Exec("CREATE TABLE t(x)");
  Result<ReplacedDb> old = ReadReplacedDb(live);
  REQUIRE(old.ok());
  CHECK(old->wal_mode);
  Result<ImportFile> file = ValidateImportFile(src);
  REQUIRE(file.ok());
  Result<SnapshotFile> ltx = WriteImportLtx(src, *file, *old, {1, 0x8000000000000001ull},
                                            dir / "imp.ltx", LtxWriteOptions{});
  CHECK(ltx.message().find("WAL mode") != std::string::npos);
  CHECK_FALSE(test::FileExists(dir / "imp.ltx"));
}

}  // namespace
}  // namespace litefs
