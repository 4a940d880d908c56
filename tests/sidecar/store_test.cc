// Tests of the store's file pipeline: LTX files written from a real SQLite
// database (sidecar/ltx_writer, sidecar/ltx_log) and applied to a replica
// (sidecar/ltx_apply), including page-size changes, deletion markers,
// snapshots, diverged replicas, and crashes in the middle of an apply.
#include <doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

#include "ltx/checksum.h"
#include "ltx/db_file.h"
#include "ltx/encoder.h"
#include "ltx/io.h"
#include "sidecar/db_pages.h"
#include "sidecar/fsutil.h"
#include "sidecar/ltx_apply.h"
#include "sidecar/ltx_log.h"
#include "sidecar/ltx_writer.h"
#include "sidecar/page_checksums.h"
#include "sidecar/rollback_journal.h"
#include "sidecar_test_util.h"

namespace litefs {
namespace {

using test::Sqlite;
using test::TempDir;

constexpr uint32_t kPageSize = 4096;

LtxWriteOptions Options(bool compress) {
  LtxWriteOptions o;
  o.compress = compress;
  o.node_id = 0x0123456789abcdef;
  o.timestamp_ms = 1700000000123;
  o.sync = true;
  return o;
}

uint64_t ChecksumOf(const std::string& path) {
  Result<uint64_t> sum = ltx::ChecksumDbPath(path);
  REQUIRE_MESSAGE(sum.ok(), sum.message());
  return *sum;
}

// WriteCommitLtx of the pages `ranges` touch in the file at `path` (an
// empty database, i.e. a deletion marker, when `path` is empty).
Result<ltx::Pos> CommitFile(const std::string& path, const std::vector<wire::ByteRange>& ranges,
                            bool all_pages, ltx::Pos prev, PageChecksums& cs, LtxLog& log,
                            bool compress, const std::string& name = "src.db") {
  Result<DbView> view = DbView::Open(path.empty() ? "/nonexistent/" + name : path);
  REQUIRE_MESSAGE(view.ok(), view.message());
  std::vector<uint32_t> pages = view->page_count() > 0
      ? PagesTouched(ranges, view->page_size(), view->page_count())
      : std::vector<uint32_t>{};
  return WriteCommitLtx(*view, all_pages ? nullptr : &pages, prev, cs, log, Options(compress));
}

Result<SnapshotFile> SnapshotOf(const std::string& path, ltx::Pos pos, const std::string& out,
                                bool compress) {
  Result<DbView> view = DbView::Open(path);
  REQUIRE_MESSAGE(view.ok(), view.message());
  return WriteSnapshotLtx(*view, pos, out, Options(compress));
}

Status Apply(const std::string& db_path, const std::string& ltx_path, PageChecksums& cs) {
  Result<VerifiedLtx> v = ReadAndVerifyLtx(ltx_path);
  if (!v.ok()) return v.status();
  return ApplyVerifiedLtx(db_path, ltx_path, *v, cs, ApplyOptions{});
}

// What SQLite checks: a journal exists and its first byte is not 0.
bool JournalIsHot(const std::string& db_path) {
  const std::string journal = db_path + "-journal";
  if (!test::FileExists(journal)) return false;
  std::vector<uint8_t> bytes = test::ReadBytes(journal);
  return !bytes.empty() && bytes[0] != 0;
}

std::set<uint32_t> PagesIn(const std::vector<wire::ByteRange>& ranges, uint32_t page_size) {
  std::set<uint32_t> out;
  for (const wire::ByteRange& r : ranges) {
    for (uint64_t p = r.offset / page_size + 1; p <= (r.offset + r.length - 1) / page_size + 1; p++) {
      out.insert(uint32_t(p));
    }
  }
  return out;
}

void CheckSameTables(const std::string& a, const std::string& b) {
  Sqlite da(a, SQLITE_OPEN_READONLY);
  Sqlite db(b, SQLITE_OPEN_READONLY);
  CHECK(db.Text("PRAGMA integrity_check") == "ok");
  for (const char* t : {"t1", "t2", "t3"}) CHECK(test::Dump(da, t) == test::Dump(db, t));
}

// A primary's database and LTX log, advanced one transaction at a time.
struct Primary {
  explicit Primary(const TempDir& dir) : path(dir / "src.db"), log(dir / "data/dbs/src.db/ltx") {
    REQUIRE(log.Init().ok());
    {
      Sqlite db(path);
      db.Exec("PRAGMA page_size=" + std::to_string(kPageSize));
      db.Exec("PRAGMA auto_vacuum=FULL");
      db.Exec("PRAGMA journal_mode=DELETE");
      test::FillTable(db, "t1", 1, 300, 100);
      test::FillTable(db, "t2", 1, 40, 2000);
      test::FillTable(db, "t3", 1, 100, 50);
      db.Exec("CREATE INDEX t1b ON t1(b)");
    }
    states.push_back({});  // TXID 0: no file
    positions.push_back({});
    Snapshot();
  }

  // TXID 1: every page (prev is the zero position).
  void Snapshot() {
    Result<ltx::Pos> pos = CommitFile(path, {}, false, {}, cs, log, true);
    REQUIRE_MESSAGE(pos.ok(), pos.message());
    Record(*pos);
  }

  // Runs `sql` on the source and captures the pages it changed.
  // With `omit_growth`, the ranges past the old end of the file are left
  // out: the writer must find the new pages by itself.
  std::vector<wire::ByteRange> Change(const std::string& sql, bool compress = false,
                                      bool omit_growth = false) {
    std::vector<uint8_t> before = test::ReadBytes(path);
    {
      Sqlite db(path);
      db.Exec(sql);
    }
    std::vector<uint8_t> after = test::ReadBytes(path);
    std::vector<wire::ByteRange> ranges = test::ChangedRanges(before, after, kPageSize);
    if (omit_growth) {
      std::erase_if(ranges, [&](const wire::ByteRange& r) { return r.offset >= before.size(); });
      for (wire::ByteRange& r : ranges) r.length = std::min<uint64_t>(r.length, before.size() - r.offset);
    }
    Result<ltx::Pos> pos = CommitFile(path, ranges, false, positions.back(), cs, log, compress);
    REQUIRE_MESSAGE(pos.ok(), pos.message());
    Record(*pos);
    return ranges;
  }

  void Record(ltx::Pos pos) {
    REQUIRE(pos.txid == positions.back().txid + 1);
    CHECK(pos.checksum == cs.value());
    if (test::FileExists(path)) {
      CHECK(pos.checksum == ChecksumOf(path));
      states.push_back(test::ReadBytes(path));
    } else {
      CHECK(pos.checksum == ltx::kChecksumFlag);
      states.push_back({});
    }
    positions.push_back(pos);
    REQUIRE(log.Has({pos.txid, pos.txid}));
    REQUIRE(log.Latest().has_value());
    CHECK(log.Latest()->max_txid == pos.txid);
  }

  std::string LtxPath(uint64_t txid) const { return log.PathFor({txid, txid}); }

  std::string path;
  LtxLog log;
  PageChecksums cs;
  std::vector<std::vector<uint8_t>> states;  // file bytes after each TXID
  std::vector<ltx::Pos> positions;
};

Status ApplyRun(const std::string& db_path, const Primary& p, uint64_t first, uint64_t last,
                PageChecksums& cs) {
  std::vector<std::string> paths;
  std::vector<VerifiedLtx> verified;
  for (uint64_t txid = first; txid <= last; txid++) {
    paths.push_back(p.LtxPath(txid));
    Result<VerifiedLtx> v = ReadAndVerifyLtx(paths.back());
    REQUIRE_MESSAGE(v.ok(), v.message());
    verified.push_back(std::move(v).value());
  }
  std::vector<LtxApplyItem> items;
  for (size_t k = 0; k < paths.size(); k++) items.push_back({&paths[k], &verified[k]});
  return ApplyVerifiedLtxRun(db_path, items, cs, ApplyOptions{});
}

TEST_CASE("consecutive files applied as one rollback-mode transaction end where one by one would") {
  TempDir dir;
  Primary p(dir);
  // TXID 2 grows, 3 updates, 4 shrinks (auto_vacuum), 5 grows again past
  // where 4 cut the file.
  p.Change("BEGIN; INSERT INTO t2 SELECT a + 1000, b FROM t2; CREATE TABLE t4(x); "
           "INSERT INTO t4 VALUES (1); COMMIT");
  p.Change("UPDATE t3 SET b = b || '!' WHERE a % 3 = 0", true);
  p.Change("BEGIN; DELETE FROM t2 WHERE a > 10; DROP TABLE t4; COMMIT");
  REQUIRE(p.states[4].size() < p.states[3].size());
  p.Change("INSERT INTO t1 SELECT a + 5000, b || b FROM t1 WHERE a < 150");
  REQUIRE(p.states[5].size() > p.states[4].size());

  const std::string target = dir / "replica.db";
  PageChecksums tcs;
  REQUIRE(Apply(target, p.LtxPath(1), tcs).ok());
  Status st = ApplyRun(target, p, 2, 5, tcs);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(test::ReadBytes(target) == p.states[5]);
  CHECK(tcs.value() == p.positions[5].checksum);
  CHECK(ChecksumOf(target) == p.positions[5].checksum);
  CHECK_FALSE(JournalIsHot(target));
  CheckSameTables(p.path, target);
}

TEST_CASE("a run whose result does not match its last file is rolled back whole") {
  TempDir dir;
  Primary p(dir);
  p.Change("UPDATE t1 SET b = upper(b) WHERE a % 10 = 0");
  p.Change("UPDATE t3 SET b = b || '?' WHERE a < 20");
  const std::string target = dir / "replica.db";
  PageChecksums tcs;
  REQUIRE(Apply(target, p.LtxPath(1), tcs).ok());
  // The replica diverged on a page neither file carries.
  Result<VerifiedLtx> v2 = ReadAndVerifyLtx(p.LtxPath(2));
  Result<VerifiedLtx> v3 = ReadAndVerifyLtx(p.LtxPath(3));
  REQUIRE((v2.ok() && v3.ok()));
  uint32_t victim = 0;
  for (uint32_t pg = 2; pg <= v3->header.commit && victim == 0; pg++) {
    if (std::find(v2->pgnos.begin(), v2->pgnos.end(), pg) == v2->pgnos.end() &&
        std::find(v3->pgnos.begin(), v3->pgnos.end(), pg) == v3->pgnos.end()) {
      victim = pg;
    }
  }
  REQUIRE(victim > 0);
  test::PwriteAt(target, {0xee, 0xee}, uint64_t(victim - 1) * kPageSize + 1000);
  int fd = open(target.c_str(), O_RDONLY);
  REQUIRE(tcs.Load(fd, kPageSize, uint32_t(p.states[1].size() / kPageSize)).ok());
  close(fd);
  const std::vector<uint8_t> before = test::ReadBytes(target);

  Status st = ApplyRun(target, p, 2, 3, tcs);
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().find("checksum after applying TXID " + ltx::FormatTXID(3)) != std::string::npos);
  CHECK_FALSE(JournalIsHot(target));
  CHECK(test::ReadBytes(target) == before);  // neither file was kept
}

TEST_CASE("commits written as LTX files replay byte for byte on a replica") {
  TempDir dir;
  Primary p(dir);

  // TXID 1 is a snapshot of every page.
  {
    Result<std::pair<ltx::Header, ltx::Trailer>> ends = p.log.ReadEnds({1, 1});
    REQUIRE(ends.ok());
    const ltx::Header& h = ends->first;
    CHECK(h.IsSnapshot());
    CHECK(h.Compressed());
    CHECK(h.page_size == kPageSize);
    CHECK(h.commit == p.states[1].size() / kPageSize);
    CHECK(h.pre_apply_checksum == 0);
    CHECK(h.node_id == 0x0123456789abcdef);
    CHECK(h.timestamp_ms == 1700000000123);
    CHECK(ends->second.post_apply_checksum == p.positions[1].checksum);
    Result<VerifiedLtx> v = ReadAndVerifyLtx(p.LtxPath(1));
    REQUIRE(v.ok());
    CHECK(v->pgnos.size() == h.commit);
  }

  // TXID 2 grows the database, TXID 3 only updates, TXID 4 shrinks it.
  std::vector<wire::ByteRange> r2 = p.Change(
      "BEGIN; " 
      "INSERT INTO t2 SELECT a + 1000, b FROM t2; "
      "UPDATE t1 SET b = upper(b) WHERE a % 10 = 0; "
      "CREATE TABLE t4(x); INSERT INTO t4 VALUES (1); COMMIT");
  REQUIRE(p.states[2].size() > p.states[1].size());
  std::vector<wire::ByteRange> r3 = p.Change("UPDATE t3 SET b = b || '!' WHERE a = 50", true);
  std::vector<wire::ByteRange> r4 = p.Change(
      "BEGIN; DELETE FROM t2 WHERE a > 10; DROP TABLE t4; DELETE FROM t1 WHERE a % 2 = 0; COMMIT");
  REQUIRE(p.states[4].size() < p.states[3].size());

  // Incremental files carry exactly the changed pages and chain their checksums.
  std::vector<std::vector<wire::ByteRange>> ranges = {{}, {}, r2, r3, r4};
  for (uint64_t txid = 2; txid <= 4; txid++) {
    CAPTURE(txid);
    Result<VerifiedLtx> v = ReadAndVerifyLtx(p.LtxPath(txid));
    REQUIRE_MESSAGE(v.ok(), v.message());
    CHECK_FALSE(v->header.IsSnapshot());
    CHECK(v->header.Compressed() == (txid == 3));
    CHECK(v->header.min_txid == txid);
    CHECK(v->header.max_txid == txid);
    CHECK(v->header.pre_apply_checksum == p.positions[txid - 1].checksum);
    CHECK(v->header.commit == p.states[txid].size() / kPageSize);
    CHECK(v->trailer.post_apply_checksum == p.positions[txid].checksum);
    std::set<uint32_t> want = PagesIn(ranges[txid], kPageSize);
    CHECK(std::set<uint32_t>(v->pgnos.begin(), v->pgnos.end()) == want);
    CHECK(v->pgnos.size() < v->header.commit);
  }

  // The replica starts with no file at all.
  REQUIRE(test::ReadBytes(dir / "data/dbs/src.db/ltx/" + ltx::FormatFileName(1, 1)).size() > 0);
  REQUIRE(fs::MakeDirs(dir / "replica").ok());
  const std::string target = dir / "replica/src.db";
  PageChecksums tcs;
  for (uint64_t txid = 1; txid <= 4; txid++) {
    CAPTURE(txid);
    Status st = Apply(target, p.LtxPath(txid), tcs);
    REQUIRE_MESSAGE(st.ok(), st.message());
    CHECK(test::ReadBytes(target) == p.states[txid]);
    CHECK(tcs.value() == p.positions[txid].checksum);
    CHECK(ChecksumOf(target) == p.positions[txid].checksum);
    CHECK_FALSE(JournalIsHot(target));
  }
  CheckSameTables(p.path, target);

  // A page-size change rewrites every page.
  {
    Sqlite db(p.path);
    db.Exec("PRAGMA page_size=1024");
    db.Exec("VACUUM");
    REQUIRE(db.Int("PRAGMA page_size") == 1024);
  }
  Result<ltx::Pos> pos5 = CommitFile(p.path, {}, true, p.positions[4], p.cs, p.log, true);
  REQUIRE_MESSAGE(pos5.ok(), pos5.message());
  p.Record(*pos5);
  {
    Result<VerifiedLtx> v = ReadAndVerifyLtx(p.LtxPath(5));
    REQUIRE(v.ok());
    CHECK(v->header.page_size == 1024);
    CHECK(v->header.commit == p.states[5].size() / 1024);
    CHECK(v->pgnos.size() == v->header.commit);
    CHECK(v->header.pre_apply_checksum == p.positions[4].checksum);
  }
  CHECK(p.cs.page_size() == 1024);
  Status st = Apply(target, p.LtxPath(5), tcs);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(test::ReadBytes(target) == p.states[5]);
  CHECK(tcs.value() == p.positions[5].checksum);
  CHECK(tcs.page_size() == 1024);
  CheckSameTables(p.path, target);

  // Small changes in the new page size still work incrementally.
  p.Change("UPDATE t1 SET b = 'tiny' WHERE a = 1");
  REQUIRE(p.states[6].size() % 1024 == 0);
  st = Apply(target, p.LtxPath(6), tcs);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(test::ReadBytes(target) == p.states[6]);
  CHECK(tcs.value() == p.positions[6].checksum);

  // The database is deleted: commit 0, a deletion marker.
  REQUIRE(unlink(p.path.c_str()) == 0);
  Result<ltx::Pos> pos7 = CommitFile("", {}, false, p.positions[6], p.cs, p.log, true);
  REQUIRE_MESSAGE(pos7.ok(), pos7.message());
  p.Record(*pos7);
  {
    Result<VerifiedLtx> v = ReadAndVerifyLtx(p.LtxPath(7));
    REQUIRE(v.ok());
    CHECK(v->header.commit == 0);
    CHECK(v->pgnos.empty());
    CHECK(v->trailer.post_apply_checksum == ltx::kChecksumFlag);
  }
  st = Apply(target, p.LtxPath(7), tcs);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(test::FileExists(target));
  CHECK(test::ReadBytes(target).empty());
  CHECK(tcs.value() == ltx::kChecksumFlag);
  CHECK_FALSE(JournalIsHot(target));
  CHECK(p.log.size() == 7);
}

TEST_CASE("commits captured together make one LTX file with a TXID each") {
  TempDir dir;
  Primary p(dir);
  // Three transactions the capture saw only after all of them committed
  // (WAL commits the app did not wait for): their pages' newest versions.
  std::vector<uint8_t> before = test::ReadBytes(p.path);
  {
    Sqlite db(p.path);
    db.Exec("INSERT INTO t2 SELECT a + 1000, b FROM t2");
    db.Exec("UPDATE t1 SET b = upper(b) WHERE a % 10 = 0");
    db.Exec("DELETE FROM t3 WHERE a > 20");
  }
  std::vector<uint8_t> after = test::ReadBytes(p.path);
  std::vector<wire::ByteRange> ranges = test::ChangedRanges(before, after, kPageSize);
  Result<DbView> view = DbView::Open(p.path);
  REQUIRE(view.ok());
  std::vector<uint32_t> pages = PagesTouched(ranges, view->page_size(), view->page_count());
  LtxWriteOptions options = Options(true);
  options.transactions = 3;
  Result<ltx::Pos> pos = WriteCommitLtx(*view, &pages, p.positions.back(), p.cs, p.log, options);
  REQUIRE_MESSAGE(pos.ok(), pos.message());
  CHECK(pos->txid == 4);
  CHECK(pos->checksum == ChecksumOf(p.path));

  // Named and indexed as TXIDs 2-4: a stream looks it up by its first TXID.
  REQUIRE(p.log.StartingAt(2).has_value());
  CHECK(p.log.StartingAt(2)->max_txid == 4);
  CHECK_FALSE(p.log.StartingAt(3).has_value());
  CHECK_FALSE(p.log.StartingAt(4).has_value());
  CHECK(p.log.Latest()->max_txid == 4);
  const std::string file = p.log.PathFor({2, 4});
  CHECK(file.ends_with(ltx::FormatFileName(2, 4)));
  Result<VerifiedLtx> v = ReadAndVerifyLtx(file);
  REQUIRE_MESSAGE(v.ok(), v.message());
  CHECK(v->header.min_txid == 2);
  CHECK(v->header.max_txid == 4);
  CHECK(v->header.pre_apply_checksum == p.positions[1].checksum);
  CHECK(v->trailer.post_apply_checksum == pos->checksum);

  // A replica at TXID 1 applies it and lands on the same bytes.
  REQUIRE(fs::MakeDirs(dir / "replica").ok());
  const std::string target = dir / "replica/src.db";
  PageChecksums tcs;
  REQUIRE(Apply(target, p.LtxPath(1), tcs).ok());
  Status st = Apply(target, file, tcs);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(test::ReadBytes(target) == after);
  CHECK(tcs.value() == pos->checksum);
}

TEST_CASE("pages a commit appends are captured even when no range names them") {
  TempDir dir;
  Primary p(dir);
  const uint32_t old_pages = uint32_t(p.states[1].size() / kPageSize);
  std::vector<wire::ByteRange> given =
      p.Change("INSERT INTO t2 SELECT a + 1000, b FROM t2", false, /*omit_growth=*/true);
  const uint32_t new_pages = uint32_t(p.states[2].size() / kPageSize);
  REQUIRE(new_pages > old_pages + 5);
  for (const wire::ByteRange& r : given) CHECK(r.offset + r.length <= p.states[1].size());
  Result<VerifiedLtx> v = ReadAndVerifyLtx(p.LtxPath(2));
  REQUIRE(v.ok());
  for (uint32_t pg = old_pages + 1; pg <= new_pages; pg++) {
    CAPTURE(pg);
    CHECK(std::find(v->pgnos.begin(), v->pgnos.end(), pg) != v->pgnos.end());
  }
  const std::string target = dir / "replica.db";
  PageChecksums tcs;
  REQUIRE(Apply(target, p.LtxPath(1), tcs).ok());
  Status st = Apply(target, p.LtxPath(2), tcs);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(test::ReadBytes(target) == p.states[2]);
}

TEST_CASE("after a page-size change every page is captured whatever the ranges say") {
  TempDir dir;
  Primary p(dir);
  {
    Sqlite db(p.path);
    db.Exec("PRAGMA page_size=2048");
    db.Exec("VACUUM");
  }
  Result<ltx::Pos> pos = CommitFile(p.path, {{0, 2048}}, false, p.positions[1], p.cs, p.log, false);
  REQUIRE_MESSAGE(pos.ok(), pos.message());
  p.Record(*pos);
  Result<VerifiedLtx> v = ReadAndVerifyLtx(p.LtxPath(2));
  REQUIRE(v.ok());
  CHECK(v->header.page_size == 2048);
  CHECK(v->pgnos.size() == v->header.commit);
  CHECK(v->header.commit == p.states[2].size() / 2048);
}

TEST_CASE("an apply with an incomplete checksum table recounts it from the file") {
  TempDir dir;
  Primary p(dir);
  p.Change("UPDATE t1 SET b = 'x' WHERE a = 3");
  const std::string target = dir / "replica.db";
  PageChecksums tcs;
  REQUIRE(Apply(target, p.LtxPath(1), tcs).ok());
  tcs.Reset(kPageSize);  // e.g. a table that was never loaded
  Status st = Apply(target, p.LtxPath(2), tcs);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(test::ReadBytes(target) == p.states[2]);
  CHECK(tcs.value() == p.positions[2].checksum);
  CHECK(tcs.page_count() == p.states[2].size() / kPageSize);
}

TEST_CASE("a deletion marker as the very first TXID") {
  TempDir dir;
  LtxLog log(dir / "ltx");
  REQUIRE(log.Init().ok());
  PageChecksums cs;
  Result<ltx::Pos> pos = CommitFile("", {}, false, {}, cs, log, false, dir / "gone.db");
  REQUIRE_MESSAGE(pos.ok(), pos.message());
  CHECK(pos->txid == 1);
  CHECK(pos->checksum == ltx::kChecksumFlag);
  PageChecksums tcs;
  Status st = Apply(dir / "replica.db", log.PathFor({1, 1}), tcs);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(test::ReadBytes(dir / "replica.db").empty());
}

TEST_CASE("an incremental file applied to a diverged replica fails naming the checksum") {
  TempDir dir;
  Primary p(dir);
  p.Change("UPDATE t3 SET b = 'changed' WHERE a = 7");
  const std::string target = dir / "replica.db";
  PageChecksums tcs;
  REQUIRE(Apply(target, p.LtxPath(1), tcs).ok());

  // Someone changes a page of the replica that TXID 2 does not carry.
  Result<VerifiedLtx> v = ReadAndVerifyLtx(p.LtxPath(2));
  REQUIRE(v.ok());
  uint32_t victim = 0;
  for (uint32_t pg = 2; pg <= v->header.commit && pg <= p.states[1].size() / kPageSize; pg++) {
    if (std::find(v->pgnos.begin(), v->pgnos.end(), pg) == v->pgnos.end()) {
      victim = pg;
      break;
    }
  }
  REQUIRE(victim > 0);
  test::PwriteAt(target, {0xee, 0xee, 0xee}, uint64_t(victim - 1) * kPageSize + 1000);
  int fd = open(target.c_str(), O_RDONLY);
  REQUIRE(tcs.Load(fd, kPageSize, uint32_t(p.states[1].size() / kPageSize)).ok());
  close(fd);
  const std::vector<uint8_t> before = test::ReadBytes(target);

  Status st = ApplyVerifiedLtx(target, p.LtxPath(2), *v, tcs, ApplyOptions{});
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().find("checksum") != std::string::npos);
  CHECK(st.message().find(ltx::FormatChecksum(p.positions[2].checksum)) != std::string::npos);
  CHECK_FALSE(JournalIsHot(target));
  // Checked before the commit point: the apply was rolled back, not half kept.
  CHECK(test::ReadBytes(target) == before);
}

TEST_CASE("a file whose post-apply checksum is wrong is refused after the recount") {
  TempDir dir;
  Primary p(dir);
  const std::string target = dir / "replica.db";
  PageChecksums tcs;
  REQUIRE(Apply(target, p.LtxPath(1), tcs).ok());

  // A well-formed TXID 2 that rewrites page 2 unchanged but claims another result.
  ltx::Header h;
  h.page_size = kPageSize;
  h.commit = uint32_t(p.states[1].size() / kPageSize);
  h.min_txid = h.max_txid = 2;
  h.pre_apply_checksum = p.positions[1].checksum;
  io::BufferWriter buf;
  Result<std::unique_ptr<ltx::Encoder>> enc = ltx::Encoder::Begin(buf, h);
  REQUIRE(enc.ok());
  REQUIRE((*enc)->EncodePage(2, {p.states[1].data() + kPageSize, kPageSize}).ok());
  const uint64_t claimed = p.positions[1].checksum ^ 0x10;
  REQUIRE((*enc)->Finish(claimed).ok());
  test::WriteBytes(dir / "bad.ltx", buf.data());

  Result<VerifiedLtx> v = ReadAndVerifyLtx(dir / "bad.ltx");
  REQUIRE_MESSAGE(v.ok(), v.message());  // nothing in the file itself is wrong
  Status st = ApplyVerifiedLtx(target, dir / "bad.ltx", *v, tcs, ApplyOptions{});
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().find("checksum after applying TXID " + ltx::FormatTXID(2)) != std::string::npos);
  CHECK(st.message().find("expected " + ltx::FormatChecksum(claimed)) != std::string::npos);
  CHECK(tcs.value() == p.positions[1].checksum);  // recounted from the file
}

TEST_CASE("a corrupt LTX file is refused before anything touches the database") {
  TempDir dir;
  Primary p(dir);
  std::vector<uint8_t> bytes = test::ReadBytes(p.LtxPath(1));
  bytes[bytes.size() / 2] ^= 0x01;
  test::WriteBytes(dir / "corrupt.ltx", bytes);
  Result<VerifiedLtx> v = ReadAndVerifyLtx(dir / "corrupt.ltx");
  REQUIRE_FALSE(v.ok());
  CHECK(v.message().find("corrupt.ltx") != std::string::npos);
  CHECK_FALSE(test::FileExists(dir / "replica.db"));
}

TEST_CASE("WriteSnapshotLtx writes a snapshot at a position, and refuses a wrong one") {
  TempDir dir;
  Primary p(dir);
  p.Change("INSERT INTO t3 SELECT a + 500, b FROM t3");
  p.Change("DELETE FROM t2 WHERE a % 3 = 0");
  const ltx::Pos pos = p.positions[3];

  const std::string snap = dir / "snap.ltx";
  Result<SnapshotFile> s = SnapshotOf(p.path, pos, snap, true);
  REQUIRE_MESSAGE(s.ok(), s.message());
  CHECK(s->path == snap);
  CHECK(s->header.min_txid == 1);
  CHECK(s->header.max_txid == 3);
  CHECK(s->header.commit == p.states[3].size() / kPageSize);
  CHECK(s->trailer.post_apply_checksum == pos.checksum);

  const std::string bad = dir / "bad-snap.ltx";
  Result<SnapshotFile> refused = SnapshotOf(p.path, {pos.txid, pos.checksum ^ 0x2}, bad, true);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.message().find("does not match position") != std::string::npos);
  CHECK_FALSE(test::FileExists(bad));

  // The snapshot replaces a replica that is behind, in one apply.
  const std::string target = dir / "replica.db";
  PageChecksums tcs;
  REQUIRE(Apply(target, p.LtxPath(1), tcs).ok());
  Result<VerifiedLtx> v = ReadAndVerifyLtx(snap);
  REQUIRE_MESSAGE(v.ok(), v.message());
  CHECK(v->header.IsSnapshot());
  Status st = ApplyVerifiedLtx(target, snap, *v, tcs, ApplyOptions{});
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(test::ReadBytes(target) == p.states[3]);
  CHECK(tcs.value() == pos.checksum);
}

TEST_CASE("a snapshot with a smaller page size replaces a larger replica") {
  TempDir dir;
  Primary p(dir);
  const std::string target = dir / "replica.db";
  PageChecksums tcs;
  REQUIRE(Apply(target, p.LtxPath(1), tcs).ok());
  {
    Sqlite db(p.path);
    db.Exec("DELETE FROM t2");
    db.Exec("PRAGMA page_size=512");
    db.Exec("VACUUM");
  }
  uint64_t sum = ChecksumOf(p.path);
  Result<SnapshotFile> s = SnapshotOf(p.path, {9, sum}, dir / "s.ltx", false);
  REQUIRE_MESSAGE(s.ok(), s.message());
  CHECK(s->header.page_size == 512);
  Status st = Apply(target, dir / "s.ltx", tcs);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(test::ReadBytes(target) == test::ReadBytes(p.path));
  CHECK(tcs.value() == sum);
  CHECK(tcs.page_size() == 512);
  CheckSameTables(p.path, target);
}

// ---- crash safety -------------------------------------------------------------

// A replica at TXID 1 caught by a crash while applying TXID 2: the journal
// of the original pages is synced, then only some of the new pages (one of
// them torn) reached the file.
struct CrashedApply {
  explicit CrashedApply(const TempDir& dir) : p(dir), target(dir / "replica.db") {
    p.Change(
        "BEGIN; UPDATE t1 SET b = 'new-' || b; INSERT INTO t2 SELECT a + 100, b FROM t2; "
        "DELETE FROM t3 WHERE a < 50; COMMIT");
    const std::vector<uint8_t>& v1 = p.states[1];
    const std::vector<uint8_t>& v2 = p.states[2];
    REQUIRE(v2.size() > v1.size());
    test::WriteBytes(target, v1);
    {
      Sqlite db(target, SQLITE_OPEN_READONLY);
      for (const char* t : {"t1", "t2", "t3"}) v1_dumps.push_back(test::Dump(db, t));
    }
    const uint32_t v1_pages = uint32_t(v1.size() / kPageSize);
    std::vector<wire::ByteRange> changed = test::ChangedRanges(v1, v2, kPageSize);
    std::vector<uint32_t> pages;
    for (uint32_t pg : PagesIn(changed, kPageSize)) pages.push_back(pg);
    REQUIRE(pages.size() >= 4);

    Result<sqlite::JournalWriter> j =
        sqlite::JournalWriter::Create(target + "-journal", kPageSize, v1_pages, 0xc0ffee);
    REQUIRE(j.ok());
    for (uint32_t pg : pages) {
      if (pg <= v1_pages) REQUIRE(j->AddPage(pg, {v1.data() + size_t(pg - 1) * kPageSize, kPageSize}).ok());
    }
    REQUIRE(j->WriteAndSync().ok());

    // Half the new pages, then half of one more, and the file already grown.
    size_t half = pages.size() / 2;
    for (size_t i = 0; i < half; i++) {
      uint64_t off = uint64_t(pages[i] - 1) * kPageSize;
      test::PwriteAt(target, std::vector<uint8_t>(v2.begin() + ptrdiff_t(off),
                                                  v2.begin() + ptrdiff_t(off + kPageSize)),
                     off);
    }
    uint64_t torn = uint64_t(pages[half] - 1) * kPageSize;
    test::PwriteAt(target, std::vector<uint8_t>(v2.begin() + ptrdiff_t(torn),
                                                v2.begin() + ptrdiff_t(torn + kPageSize / 2)),
                   torn);
    test::PwriteAt(target, std::vector<uint8_t>(kPageSize, 0x77), v2.size() - kPageSize);
    REQUIRE(test::ReadBytes(target) != v1);
  }
  Primary p;
  std::string target;
  std::vector<std::string> v1_dumps;
};

TEST_CASE("after a crash mid-apply a fresh SQLite reader sees the original data") {
  TempDir dir;
  CrashedApply c(dir);
  {
    Sqlite db(c.target);
    const char* tables[] = {"t1", "t2", "t3"};
    for (size_t i = 0; i < 3; i++) CHECK(test::Dump(db, tables[i]) == c.v1_dumps[i]);
    CHECK(db.Text("PRAGMA integrity_check") == "ok");
  }
  CHECK_FALSE(JournalIsHot(c.target));
  CHECK(test::ReadBytes(c.target) == c.p.states[1]);
}

TEST_CASE("ApplyVerifiedLtx rolls a crashed apply back first, then applies") {
  TempDir dir;
  CrashedApply c(dir);
  // The table as it was before the crash (it is reloaded after any failure).
  test::WriteBytes(dir / "v1.db", c.p.states[1]);
  int fd = open((dir / "v1.db").c_str(), O_RDONLY);
  PageChecksums tcs;
  REQUIRE(tcs.Load(fd, kPageSize, uint32_t(c.p.states[1].size() / kPageSize)).ok());
  close(fd);
  Status st = Apply(c.target, c.p.LtxPath(2), tcs);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK_FALSE(JournalIsHot(c.target));
  CHECK(test::ReadBytes(c.target) == c.p.states[2]);
  CHECK(tcs.value() == c.p.positions[2].checksum);
  CheckSameTables(c.p.path, c.target);
}

// Applies `ltx_path` to `target` and returns the journal as it was right
// before the commit point, so that the state a crash there leaves can be
// rebuilt.
std::vector<uint8_t> ApplyKeepingJournal(const std::string& target, const std::string& ltx_path,
                                         PageChecksums& tcs) {
  const std::string journal = target + "-journal";
  std::vector<uint8_t> kept;
  Result<VerifiedLtx> v = ReadAndVerifyLtx(ltx_path);
  REQUIRE(v.ok());
  ApplyOptions options;
  options.before_commit_point = [&] { kept = test::ReadBytes(journal); };
  Status st = ApplyVerifiedLtx(target, ltx_path, *v, tcs, options);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK_FALSE(JournalIsHot(target));
  return kept;
}

TEST_CASE("a crash right before an apply's commit point rolls back to the old database") {
  TempDir dir;
  Primary p(dir);
  p.Change("INSERT INTO t2 SELECT a + 1000, b FROM t2");               // TXID 2: grows
  p.Change("BEGIN; DELETE FROM t2; DELETE FROM t1 WHERE a > 5; COMMIT");  // TXID 3: shrinks
  REQUIRE(p.states[3].size() < p.states[2].size());
  {
    Sqlite db(p.path);
    db.Exec("PRAGMA page_size=1024");
    db.Exec("VACUUM");
  }
  Result<ltx::Pos> pos4 = CommitFile(p.path, {}, true, p.positions[3], p.cs, p.log, true);
  REQUIRE(pos4.ok());
  p.Record(*pos4);  // TXID 4: smaller pages
  // TXID 5: larger pages again, captured from the written ranges alone (the
  // writer must notice the new page size and take every page).
  p.Change("PRAGMA page_size=4096; VACUUM");
  REQUIRE(ReadAndVerifyLtx(p.LtxPath(5))->header.page_size == 4096);
  REQUIRE(fs::MakeDirs(dir / "crash").ok());

  const std::string target = dir / "replica.db";
  PageChecksums tcs;
  for (uint64_t txid = 1; txid <= 5; txid++) {
    CAPTURE(txid);
    std::vector<uint8_t> before = test::FileExists(target) ? test::ReadBytes(target) : std::vector<uint8_t>{};
    std::vector<uint8_t> journal = ApplyKeepingJournal(target, p.LtxPath(txid), tcs);
    REQUIRE(test::ReadBytes(target) == p.states[txid]);
    REQUIRE(journal.size() >= sqlite::kJournalSectorSize);

    // The disk as a crash before the unlink of the journal would leave it.
    const std::string crashed = dir / ("crash/db" + std::to_string(txid));
    test::WriteBytes(crashed, p.states[txid]);
    test::WriteBytes(crashed + "-journal", journal);
    {
      Sqlite db(crashed);
      CHECK(db.Text("PRAGMA integrity_check") == "ok");
    }
    CHECK_FALSE(JournalIsHot(crashed));
    CHECK(test::ReadBytes(crashed) == before);
  }

  // A snapshot replacing an older replica with other content and page size.
  Result<SnapshotFile> snap = SnapshotOf(p.path, p.positions[5], dir / "snap.ltx", true);
  REQUIRE(snap.ok());
  const std::string old_replica = dir / "old-replica.db";
  test::WriteBytes(old_replica, p.states[4]);
  int fd = open(old_replica.c_str(), O_RDONLY);
  PageChecksums ocs;
  REQUIRE(ocs.Load(fd, 1024, uint32_t(p.states[4].size() / 1024)).ok());
  close(fd);
  std::vector<uint8_t> journal = ApplyKeepingJournal(old_replica, dir / "snap.ltx", ocs);
  REQUIRE(test::ReadBytes(old_replica) == p.states[5]);
  CHECK(ocs.value() == p.positions[5].checksum);
  const std::string crashed = dir / "crash/snapshot";
  test::WriteBytes(crashed, p.states[5]);
  test::WriteBytes(crashed + "-journal", journal);
  {
    Sqlite db(crashed);
    CHECK(db.Text("PRAGMA integrity_check") == "ok");
  }
  CHECK(test::ReadBytes(crashed) == p.states[4]);
}

// ---- LtxLog -----------------------------------------------------------------

TEST_CASE("LtxLog indexes installed files and cleans up foreign temp files") {
  TempDir dir;
  const std::string d = dir / "dbs/x/ltx";
  std::string own_tmp;
  {
    LtxLog log(d);
    REQUIRE(log.Init().ok());
    CHECK(log.size() == 0);
    CHECK_FALSE(log.Latest().has_value());
    own_tmp = log.NewTempPath();
    test::WriteBytes(own_tmp, {1});
    Status st = log.Install(d + "/missing.tmp", {1, 1}, false);
    CHECK_FALSE(st.ok());
    CHECK_FALSE(log.Has({1, 1}));
  }
  test::WriteBytes(d + "/" + ltx::FormatFileName(1, 1), {1});
  test::WriteBytes(d + "/" + ltx::FormatFileName(2, 5), {1});
  test::WriteBytes(d + "/12345.0.tmp", {1});     // another process's leftover
  test::WriteBytes(d + "/not-an-ltx.txt", {1});  // ignored
  LtxLog log(d);
  REQUIRE(log.Init().ok());
  CHECK(log.size() == 2);
  CHECK(log.Has({2, 5}));
  CHECK_FALSE(log.Has({5, 5}));
  REQUIRE(log.Latest().has_value());
  CHECK(log.Latest()->min_txid == 2);
  CHECK(log.Latest()->max_txid == 5);
  CHECK_FALSE(test::FileExists(d + "/12345.0.tmp"));
  CHECK(test::FileExists(d + "/not-an-ltx.txt"));
  CHECK(test::FileExists(own_tmp));  // this process's temp files are left alone

  std::string tmp = log.NewTempPath();
  CHECK(tmp != log.NewTempPath());
  test::WriteBytes(tmp, {2});
  REQUIRE(log.Install(tmp, {6, 6}, true).ok());
  CHECK(log.Latest()->max_txid == 6);
  CHECK(test::FileExists(log.PathFor({6, 6})));
  CHECK_FALSE(test::FileExists(tmp));

  REQUIRE(log.RemoveAllExcept({6, 6}).ok());
  CHECK(log.size() == 1);
  CHECK_FALSE(test::FileExists(log.PathFor({1, 1})));
  CHECK_FALSE(test::FileExists(log.PathFor({2, 5})));
  CHECK(test::FileExists(log.PathFor({6, 6})));
}

LtxBytes BytesOf(size_t size, uint8_t fill) {
  return std::make_shared<const std::vector<uint8_t>>(size, fill);
}

TEST_CASE("LtxLog remembers the newest small files until they leave the log") {
  TempDir dir;
  LtxLog log(dir / "ltx");
  REQUIRE(log.Init().ok());
  // Put writes the file under its name, indexes it and remembers it.
  LtxBytes one = BytesOf(700, 1);
  REQUIRE(log.Put({1, 1}, one, /*sync=*/false).ok());
  CHECK(log.Has({1, 1}));
  CHECK(test::ReadBytes(log.PathFor({1, 1})) == *one);
  CHECK(log.Remembered({1, 1}) == one);
  CHECK(log.Remembered({1, 2}) == nullptr);  // same last TXID, another file
  // Too large to remember: on disk only.
  REQUIRE(log.Put({2, 2}, BytesOf(LtxLog::kRememberedFileSize + 1, 2), false).ok());
  CHECK(log.Remembered({2, 2}) == nullptr);
  CHECK(test::ReadBytes(log.PathFor({2, 2})).size() == LtxLog::kRememberedFileSize + 1);
  // Only the newest kRememberedFiles stay in memory.
  for (uint64_t t = 3; t < 3 + LtxLog::kRememberedFiles; t++) {
    test::WriteBytes(log.PathFor({t, t}), {uint8_t(t)});
    REQUIRE(log.Add({t, t}, false, BytesOf(10, uint8_t(t))).ok());
  }
  CHECK(log.Remembered({1, 1}) == nullptr);
  CHECK(log.Remembered({3, 3}) != nullptr);
  // And within kRememberedBytes: a few large ones push out the rest.
  const uint64_t big = 3 + LtxLog::kRememberedFiles;
  const size_t per = LtxLog::kRememberedFileSize;
  const size_t fit = LtxLog::kRememberedBytes / per;
  for (uint64_t t = big; t < big + fit; t++) {
    test::WriteBytes(log.PathFor({t, t}), {1});
    REQUIRE(log.Add({t, t}, false, BytesOf(per, 1)).ok());
  }
  for (uint64_t t = big; t < big + fit; t++) CHECK(log.Remembered({t, t}) != nullptr);
  CHECK(log.Remembered({big - 1, big - 1}) == nullptr);
  CHECK(log.Remembered({3, 3}) == nullptr);
  // Forgotten with the file, whichever way it leaves.
  const uint64_t last = big + fit - 1;
  REQUIRE(log.Remove({last - 1, last - 1}).ok());
  CHECK(log.Remembered({last - 1, last - 1}) == nullptr);
  REQUIRE(log.RemoveAllExcept({last, last}).ok());
  CHECK(log.Remembered({big, big}) == nullptr);
  CHECK(log.Remembered({last, last}) != nullptr);
  // A reinstalled range is never served from an older memory.
  std::string tmp = log.NewTempPath();
  test::WriteBytes(tmp, {9});
  REQUIRE(log.Install(tmp, {last, last}, false).ok());
  CHECK(log.Remembered({last, last}) == nullptr);
}

// A rollback-mode database at `path` made by `sql`, captured into `log` as
// its first commit (TXID 1, every page).
ltx::Pos CaptureFirstCommit(const std::string& path, const std::string& sql, LtxLog& log) {
  {
    Sqlite s(path);
    s.Exec("PRAGMA journal_mode=DELETE; " + sql);
  }
  REQUIRE(log.Init().ok());
  PageChecksums cs;
  Result<ltx::Pos> pos = CommitFile(path, {}, /*all_pages=*/true, {}, cs, log, /*compress=*/true);
  REQUIRE_MESSAGE(pos.ok(), pos.message());
  return *pos;
}

TEST_CASE("a captured commit's file is remembered as written, and read from memory") {
  TempDir dir;
  LtxLog log(dir / "ltx");
  const ltx::Pos pos =
      CaptureFirstCommit(dir / "src.db", "CREATE TABLE t(x); INSERT INTO t VALUES (randomblob(3000))", log);
  const ltx::TXIDRange r{1, 1};
  LtxBytes remembered = log.Remembered(r);
  REQUIRE(remembered != nullptr);
  CHECK(*remembered == test::ReadBytes(log.PathFor(r)));
  // ReadEnds answers from memory: the same with the file gone.
  Result<std::pair<ltx::Header, ltx::Trailer>> ends = log.ReadEnds(r);
  REQUIRE(ends.ok());
  REQUIRE(unlink(log.PathFor(r).c_str()) == 0);
  Result<std::pair<ltx::Header, ltx::Trailer>> from_memory = log.ReadEnds(r);
  REQUIRE(from_memory.ok());
  CHECK(from_memory->first.max_txid == 1);
  CHECK(from_memory->second.post_apply_checksum == ends->second.post_apply_checksum);
  CHECK(from_memory->second.post_apply_checksum == pos.checksum);
}

TEST_CASE("a received file verified in memory applies like one on disk") {
  TempDir dir;
  const std::string src = dir / "src.db";
  LtxLog log(dir / "ltx");
  CaptureFirstCommit(src, "CREATE TABLE t(x); INSERT INTO t VALUES ('a')", log);
  const ReceivedLtx received{"", std::make_shared<const std::vector<uint8_t>>(test::ReadBytes(log.PathFor({1, 1})))};
  Result<VerifiedLtx> v = VerifyReceivedLtx(received);
  REQUIRE_MESSAGE(v.ok(), v.message());
  CHECK(v->bytes == received.bytes);
  // Applied from memory: the file it names does not exist.
  const std::string replica = dir / "replica.db";
  PageChecksums rcs;
  REQUIRE(ApplyVerifiedLtx(replica, dir / "nowhere.ltx", *v, rcs, ApplyOptions{}).ok());
  CHECK(ChecksumOf(replica) == ChecksumOf(src));
  // A corrupt copy is refused before anything is written.
  auto bad = std::make_shared<std::vector<uint8_t>>(*received.bytes);
  (*bad)[bad->size() - 1] ^= 1;
  CHECK_FALSE(VerifyReceivedLtx({"", bad}).ok());
}

}  // namespace
}  // namespace litefs
