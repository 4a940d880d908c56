// Tests of sidecar/db_view: DbView must show exactly what SQLite shows (a
// checkpointed copy of the same database and WAL is the reference),
// WalTransaction must accept the frames of a real transaction and refuse
// anything it cannot verify, and DbFileSource reads a plain file.
#include "sidecar/db_view.h"

#include <doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <vector>

#include "ltx/checksum.h"
#include "ltx/db_file.h"
#include "ltx/io.h"
#include "sidecar/page_checksums.h"
#include "sidecar/wal_format.h"
#include "sidecar_test_util.h"
#include "vfs/wal_index_header.h"

namespace litefs {
namespace {

using test::Sqlite;
using test::TempDir;

WalIndexHeader ShmHeader(const std::string& db_path) {
  std::vector<uint8_t> shm = test::ReadBytes(db_path + "-shm");
  REQUIRE(shm.size() >= 136);
  return WalIndexHeader::Decode(shm.data());
}

// Copies `db_path` and its -wal into `copy_path`, lets SQLite checkpoint
// the copy (TRUNCATE) and returns the bytes of the copy's database file.
std::vector<uint8_t> CheckpointedCopy(const std::string& db_path, const std::string& copy_path) {
  std::filesystem::copy_file(db_path, copy_path, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(db_path + "-wal", copy_path + "-wal",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove(copy_path + "-shm");
  {
    Sqlite db(copy_path);
    std::string r = db.Text("PRAGMA wal_checkpoint(TRUNCATE)");
    REQUIRE(r == "0");  // not busy
  }
  return test::ReadBytes(copy_path);
}

std::span<const uint8_t> Page(const std::vector<uint8_t>& bytes, uint32_t pgno, uint32_t ps) {
  return {bytes.data() + size_t(pgno - 1) * ps, ps};
}

// A WAL-mode database that never checkpoints; the connection stays open.
using test::WalDb;

void CheckViewEqualsCopy(const std::string& db_path, const std::string& copy_path,
                         uint32_t page_size, uint32_t stop_after = 0,
                         const std::vector<uint8_t>* reference = nullptr) {
  std::vector<uint8_t> copy = reference ? *reference : CheckpointedCopy(db_path, copy_path);
  REQUIRE(copy.size() % page_size == 0);
  Result<DbView> v = DbView::Open(db_path, stop_after);
  REQUIRE_MESSAGE(v.ok(), v.message());
  CHECK(v->exists());
  CHECK(v->page_size() == page_size);
  REQUIRE(v->page_count() == copy.size() / page_size);
  std::vector<uint8_t> page(page_size);
  int differing = 0;
  for (uint32_t p = 1; p <= v->page_count(); p++) {
    REQUIRE(v->ReadPage(p, page).ok());
    if (!std::equal(page.begin(), page.end(), Page(copy, p, page_size).begin())) differing++;
  }
  CHECK(differing == 0);
  PageChecksums cs;
  REQUIRE(cs.LoadFrom(*v).ok());
  if (!reference) {
    Result<uint64_t> want = ltx::ChecksumDbPath(copy_path);
    REQUIRE_MESSAGE(want.ok(), want.message());
    CHECK(cs.value() == *want);
  }
  CHECK(cs.page_count() == v->page_count());
}

TEST_CASE("db_view: DbView shows what a checkpoint of the same db and WAL writes") {
  for (int ps : {1024, 4096, 65536}) {
    CAPTURE(ps);
    TempDir dir;
    WalDb w(dir / "view.db", ps);
    test::FillTable(w.db, "t1", 1, 400, 300);
    // The database file stays as it was while the WAL grows, shrinks and
    // rewrites pages.
    test::FillTable(w.db, "t2", 1, 30, 5000);
    w.db.Exec("UPDATE t1 SET b = b || '!' WHERE a % 5 = 0");
    w.db.Exec("DELETE FROM t1 WHERE a > 300");
    REQUIRE(ShmHeader(w.path).mx_frame > 0);
    CheckViewEqualsCopy(w.path, dir / "copy.db", uint32_t(ps));
    Result<DbView> v = DbView::Open(w.path);
    REQUIRE(v.ok());
    // Some pages really come from the WAL and the file is out of date.
    CHECK(v->wal().last_frame == ShmHeader(w.path).mx_frame);
    CHECK(v->page_count() == ShmHeader(w.path).n_page);
    CHECK(v->file_shape().page_count != v->page_count());

    // A shrink: the WAL's database is smaller than the file.
    w.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
    w.db.Exec("DROP TABLE t2");
    w.db.Exec("VACUUM");
    Result<DbView> small = DbView::Open(w.path);
    REQUIRE(small.ok());
    CHECK(small->page_count() < small->file_shape().page_count);
    CheckViewEqualsCopy(w.path, dir / "copy.db", uint32_t(ps));
  }
}

TEST_CASE("db_view: DbView with wal_stop_after shows the database as of a commit frame") {
  TempDir dir;
  WalDb w(dir / "asof.db", 4096);
  test::FillTable(w.db, "t", 1, 100, 400);
  w.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  struct State {
    uint32_t frame;
    std::vector<uint8_t> bytes;
  };
  std::vector<State> states;
  for (int i = 0; i < 4; i++) {
    if (i % 2 == 0) {
      test::FillTable(w.db, "t", 1000 * (i + 1), 80, 400);
    } else {
      w.db.Exec("DELETE FROM t WHERE a % 3 = " + std::to_string(i));
    }
    states.push_back({ShmHeader(w.path).mx_frame,
                      CheckpointedCopy(w.path, dir / ("s" + std::to_string(i) + ".db"))});
  }
  for (size_t i = 0; i < states.size(); i++) {
    CAPTURE(i);
    CheckViewEqualsCopy(w.path, "", 4096, states[i].frame, &states[i].bytes);
  }
}

TEST_CASE("db_view: DbView of a missing database is empty; of a db without WAL the file") {
  TempDir dir;
  Result<DbView> none = DbView::Open(dir / "missing.db");
  REQUIRE(none.ok());
  CHECK_FALSE(none->exists());
  CHECK(none->page_count() == 0);
  PageChecksums cs;
  REQUIRE(cs.LoadFrom(*none).ok());
  CHECK(cs.value() == ltx::kChecksumFlag);

  {
    Sqlite db(dir / "plain.db");
    test::FillTable(db, "t", 1, 100, 100);
  }
  Result<DbView> plain = DbView::Open(dir / "plain.db");
  REQUIRE(plain.ok());
  std::vector<uint8_t> bytes = test::ReadBytes(dir / "plain.db");
  CHECK(plain->page_count() * plain->page_size() == bytes.size());
  REQUIRE(cs.LoadFrom(*plain).ok());
  CHECK(cs.value() == *ltx::ChecksumDbPath(dir / "plain.db"));
}

// The frames of the last transaction, as the VFS would announce them.
struct LastTx {
  wire::WalFrames frames;
  std::set<uint32_t> pgnos;  // every page number in its frames
};

LastTx RunTx(WalDb& w, const std::string& sql) {
  const uint32_t before = ShmHeader(w.path).mx_frame;
  w.db.Exec(sql);
  WalIndexHeader ih = ShmHeader(w.path);
  std::vector<uint8_t> wal = test::ReadBytes(w.path + "-wal");
  const uint32_t ps = io::LoadBE32(&wal[8]);
  LastTx t;
  t.frames = {io::LoadBE32(&wal[16]), io::LoadBE32(&wal[20]), before + 1, ih.mx_frame, ps, ih.n_page};
  for (uint32_t i = before + 1; i <= ih.mx_frame; i++) {
    t.pgnos.insert(io::LoadBE32(&wal[wal::FrameOffset(i, ps)]));
  }
  return t;
}

TEST_CASE("db_view: WalTransaction reads the frames of the last transaction and refuses bad ones") {
  TempDir dir;
  WalDb w(dir / "tx.db", 4096);
  test::FillTable(w.db, "t", 1, 200, 500);
  w.db.Exec("UPDATE t SET b = 'x' WHERE a = 3");
  LastTx last = RunTx(w, "BEGIN; UPDATE t SET b = b || 'y' WHERE a % 4 = 1; "
                         "INSERT INTO t(b) SELECT b FROM t WHERE a < 40; COMMIT");
  const wire::WalFrames& f = last.frames;
  REQUIRE(f.first_frame > 1);
  REQUIRE(f.last_frame - f.first_frame >= 3);
  const std::string wal_path = w.path + "-wal";
  std::vector<uint8_t> copy = CheckpointedCopy(w.path, dir / "copy.db");

  Result<WalTransaction> tx = WalTransaction::Read(wal_path, f);
  REQUIRE_MESSAGE(tx.ok(), tx.message());
  CHECK(tx->page_size() == 4096);
  CHECK(tx->page_count() == f.db_pages);
  CHECK(tx->frames() == f);
  std::vector<uint32_t> want(last.pgnos.begin(), last.pgnos.end());
  want.erase(std::remove_if(want.begin(), want.end(), [&](uint32_t p) { return p > f.db_pages; }),
             want.end());
  CHECK(tx->pages() == want);
  std::vector<uint8_t> page(4096);
  for (uint32_t p : tx->pages()) {
    CAPTURE(p);
    REQUIRE(tx->ReadPage(p, page).ok());
    CHECK(std::equal(page.begin(), page.end(), Page(copy, p, 4096).begin()));
  }
  // A page the transaction did not write is not its to give.
  uint32_t untouched = 1;
  while (last.pgnos.count(untouched)) untouched++;
  CHECK_FALSE(tx->ReadPage(untouched, page).ok());

  // The first transaction of the WAL (chained from the header) reads too.
  {
    TempDir d2;
    WalDb w2(d2 / "first.db", 4096);
    w2.db.Exec("CREATE TABLE x(a)");
    w2.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
    LastTx first = RunTx(w2, "INSERT INTO x VALUES (1)");
    REQUIRE(first.frames.first_frame == 1);
    Result<WalTransaction> t1 = WalTransaction::Read(w2.path + "-wal", first.frames);
    CHECK_MESSAGE(t1.ok(), t1.message());
  }

  auto refused = [&](const std::string& path, wire::WalFrames g, const std::string& needle) {
    Result<WalTransaction> r = WalTransaction::Read(path, g);
    REQUIRE_FALSE(r.ok());
    CHECK_MESSAGE(r.message().find(needle) != std::string::npos, r.message());
  };
  SUBCASE("wrong salts") {
    wire::WalFrames g = f;
    g.salt1++;
    refused(wal_path, g, "restarted");
    g = f;
    g.salt2 ^= 0x100;
    refused(wal_path, g, "restarted");
  }
  SUBCASE("wrong page size") {
    wire::WalFrames g = f;
    g.page_size = 1024;
    refused(wal_path, g, "restarted");
  }
  SUBCASE("a corrupted page byte breaks the checksum chain") {
    for (uint32_t frame : {f.first_frame, f.first_frame + 1, f.last_frame}) {
      CAPTURE(frame);
      std::vector<uint8_t> bytes = test::ReadBytes(wal_path);
      bytes[wal::FrameOffset(frame, 4096) + 24 + 2000] ^= 0x08;
      test::WriteBytes(dir / "bad.db-wal", bytes);
      refused(dir / "bad.db-wal", f, "frame " + std::to_string(frame) + " is not valid");
    }
    // So does a corrupted checksum in the frame the chain continues from.
    std::vector<uint8_t> bytes = test::ReadBytes(wal_path);
    bytes[wal::FrameOffset(f.first_frame - 1, 4096) + 17] ^= 0x01;
    test::WriteBytes(dir / "bad.db-wal", bytes);
    refused(dir / "bad.db-wal", f, "frame " + std::to_string(f.first_frame) + " is not valid");
  }
  SUBCASE("frames of another WAL generation (salts differ in the frame)") {
    std::vector<uint8_t> bytes = test::ReadBytes(wal_path);
    bytes[wal::FrameOffset(f.first_frame + 1, 4096) + 9] ^= 0x01;
    test::WriteBytes(dir / "bad.db-wal", bytes);
    refused(dir / "bad.db-wal", f, "is not valid");
  }
  SUBCASE("the last frame is not a commit frame") {
    wire::WalFrames g = f;
    g.last_frame = f.last_frame - 1;
    refused(wal_path, g, "is not the commit frame announced");
    g = f;
    g.db_pages = f.db_pages + 1;
    refused(wal_path, g, "is not the commit frame announced");
  }
  SUBCASE("a range past the file") {
    wire::WalFrames g = f;
    g.last_frame = f.last_frame + 3;
    refused(wal_path, g, "unexpected end of file");
    g = f;
    g.first_frame = f.last_frame + 1;
    g.last_frame = f.last_frame + 1;
    refused(wal_path, g, "unexpected end of file");
  }
  SUBCASE("an empty range, a missing WAL") {
    wire::WalFrames g = f;
    g.first_frame = 0;
    refused(wal_path, g, "empty frame range");
    g = f;
    g.last_frame = f.first_frame - 1;
    refused(wal_path, g, "empty frame range");
    CHECK_FALSE(WalTransaction::Read(dir / "missing.db-wal", f).ok());
  }
}

TEST_CASE("db_view: WalTransaction reads frames beyond what it buffers one by one, alike") {
  TempDir dir;
  WalDb w(dir / "big.db", 4096);
  test::FillTable(w.db, "t", 1, 10, 100);
  LastTx last = RunTx(w, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) "
                         "INSERT INTO t(b) SELECT hex(randomblob(1800)) FROM n");
  const wire::WalFrames& f = last.frames;
  REQUIRE(uint64_t(f.last_frame - f.first_frame + 1) * (wal::kFrameHeaderSize + 4096) >
          WalTransaction::kBufferedBytes);
  std::vector<uint8_t> copy = CheckpointedCopy(w.path, dir / "copy.db");
  Result<WalTransaction> tx = WalTransaction::Read(w.path + "-wal", f);
  REQUIRE_MESSAGE(tx.ok(), tx.message());
  REQUIRE(tx->pages().size() > 256);
  std::vector<uint8_t> page(4096);
  for (uint32_t p : tx->pages()) {
    CAPTURE(p);
    REQUIRE(tx->ReadPage(p, page).ok());
    CHECK(std::equal(page.begin(), page.end(), Page(copy, p, 4096).begin()));
  }
}

TEST_CASE("db_view: DbFileSource reads pages of a file and refuses pages past its end") {
  TempDir dir;
  {
    Sqlite db(dir / "file.db");
    test::FillTable(db, "t", 1, 100, 300);
  }
  std::vector<uint8_t> bytes = test::ReadBytes(dir / "file.db");
  int fd = open((dir / "file.db").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  Result<DbShape> shape = ReadDbShape(fd, dir / "file.db");
  REQUIRE(shape.ok());
  DbFileSource src(fd, *shape);
  CHECK(src.page_size() == shape->page_size);
  CHECK(src.page_count() * src.page_size() == bytes.size());
  std::vector<uint8_t> page(src.page_size());
  for (uint32_t p = 1; p <= src.page_count(); p++) {
    REQUIRE(src.ReadPage(p, page).ok());
    CHECK(std::equal(page.begin(), page.end(), Page(bytes, p, src.page_size()).begin()));
  }
  Status st = src.ReadPage(src.page_count() + 1, page);
  CHECK_FALSE(st.ok());
  CHECK(st.message().find("past the end") != std::string::npos);
  PageChecksums cs;
  REQUIRE(cs.LoadFrom(src).ok());
  CHECK(cs.value() == *ltx::ChecksumDbPath(dir / "file.db"));
  close(fd);
}

}  // namespace
}  // namespace litefs
