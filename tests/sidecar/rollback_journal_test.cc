// Tests of sidecar/rollback_journal and sidecar/hot_journal: a journal written
// by JournalWriter must be one SQLite itself rolls back (sqlite-internals
// §2.1, §2.6, §4.9), and its record checksum must be SQLite's.
#include "sidecar/rollback_journal.h"

#include <doctest.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

#include "ltx/io.h"
#include "sidecar/hot_journal.h"
#include "sidecar_test_util.h"

namespace litefs::sqlite {
namespace {

using test::Sqlite;
using test::TempDir;

constexpr uint32_t kPageSize = 4096;

struct Original {
  std::vector<uint8_t> bytes;
  std::vector<std::string> dumps;  // t1, t2, t3
  uint32_t pages = 0;
};

// A rollback-mode database with several tables and at least 20 pages.
Original MakeDb(const std::string& path) {
  {
    Sqlite db(path);
    db.Exec("PRAGMA page_size=" + std::to_string(kPageSize));
    db.Exec("PRAGMA journal_mode=DELETE");
    test::FillTable(db, "t1", 1, 200, 150);
    test::FillTable(db, "t2", 1, 60, 1000);
    test::FillTable(db, "t3", 1, 500, 20);
    db.Exec("CREATE INDEX t3b ON t3(b)");
  }
  Original o;
  o.bytes = test::ReadBytes(path);
  REQUIRE(o.bytes.size() % kPageSize == 0);
  o.pages = uint32_t(o.bytes.size() / kPageSize);
  REQUIRE(o.pages >= 20);
  Sqlite db(path, SQLITE_OPEN_READONLY);
  for (const char* t : {"t1", "t2", "t3"}) o.dumps.push_back(test::Dump(db, t));
  return o;
}

std::span<const uint8_t> Page(const std::vector<uint8_t>& bytes, uint32_t pgno,
                              uint32_t page_size = kPageSize) {
  return {bytes.data() + size_t(pgno - 1) * page_size, page_size};
}

// Journals `pgnos` from `o`, then damages those pages in the database file
// (page 1 keeps a plausible header but a new change counter and size) and
// appends `extra` garbage pages.
void JournalThenDamage(const std::string& db_path, const Original& o,
                       const std::vector<uint32_t>& pgnos, uint32_t extra) {
  Result<JournalWriter> j = JournalWriter::Create(db_path + "-journal", kPageSize, o.pages, 0x5eed1234);
  REQUIRE_MESSAGE(j.ok(), j.message());
  for (uint32_t p : pgnos) REQUIRE(j->AddPage(p, Page(o.bytes, p)).ok());
  Status st = j->WriteAndSync();
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(j->record_count() == pgnos.size());
  CHECK(j->path() == db_path + "-journal");

  std::mt19937 rng(77);
  for (uint32_t p : pgnos) {
    std::vector<uint8_t> page(Page(o.bytes, p).begin(), Page(o.bytes, p).end());
    if (p == 1) {
      io::StoreBE32(&page[24], io::LoadBE32(&page[24]) + 1);  // change counter
      io::StoreBE32(&page[28], o.pages + extra);                // in-header size
      io::StoreBE32(&page[92], io::LoadBE32(&page[24]));
      for (size_t i = 100; i < page.size(); i++) page[i] = uint8_t(rng());
    } else {
      for (uint8_t& b : page) b = uint8_t(rng());
    }
    test::PwriteAt(db_path, page, uint64_t(p - 1) * kPageSize);
  }
  if (extra > 0) {
    std::vector<uint8_t> tail(size_t(extra) * kPageSize);
    for (uint8_t& b : tail) b = uint8_t(rng());
    test::PwriteAt(db_path, tail, o.bytes.size());
  }
  REQUIRE(test::ReadBytes(db_path) != o.bytes);
}

void CheckRestored(const std::string& db_path, const Original& o) {
  CHECK_FALSE(test::FileExists(db_path + "-journal"));
  std::vector<uint8_t> now = test::ReadBytes(db_path);
  CHECK(now.size() == o.bytes.size());
  CHECK(now == o.bytes);
  Sqlite db(db_path, SQLITE_OPEN_READONLY);
  CHECK(db.Text("PRAGMA integrity_check") == "ok");
  const char* tables[] = {"t1", "t2", "t3"};
  for (size_t i = 0; i < 3; i++) CHECK(test::Dump(db, tables[i]) == o.dumps[i]);
}

TEST_CASE("the journal has SQLite's layout") {
  TempDir dir;
  const std::string db_path = dir / "layout.db";
  Original o = MakeDb(db_path);
  Result<JournalWriter> j = JournalWriter::Create(db_path + "-journal", kPageSize, o.pages, 0xa1b2c3d4);
  REQUIRE(j.ok());
  REQUIRE(j->AddPage(3, Page(o.bytes, 3)).ok());
  REQUIRE(j->AddPage(7, Page(o.bytes, 7)).ok());
  REQUIRE(j->WriteAndSync().ok());
  std::vector<uint8_t> jb = test::ReadBytes(db_path + "-journal");
  const size_t rec = kPageSize + 8;
  // The records, then a cleared sector where a next segment's header would
  // be read (the file is reused: older bytes must not pass for one).
  const size_t next_header = (kJournalSectorSize + 2 * rec + kJournalSectorSize - 1) /
                             kJournalSectorSize * kJournalSectorSize;
  REQUIRE(jb.size() == next_header + kJournalSectorSize);
  CHECK(std::all_of(jb.begin() + ptrdiff_t(next_header), jb.end(), [](uint8_t b) { return b == 0; }));
  const uint8_t magic[8] = {0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7};
  CHECK(std::equal(magic, magic + 8, jb.begin()));
  CHECK(io::LoadBE32(&jb[8]) == 2);
  CHECK(io::LoadBE32(&jb[12]) == 0xa1b2c3d4);
  CHECK(io::LoadBE32(&jb[16]) == o.pages);
  CHECK(io::LoadBE32(&jb[20]) == kJournalSectorSize);
  CHECK(io::LoadBE32(&jb[24]) == kPageSize);
  CHECK(std::all_of(jb.begin() + 28, jb.begin() + kJournalSectorSize, [](uint8_t b) { return b == 0; }));
  uint32_t pg[] = {3, 7};
  for (size_t i = 0; i < 2; i++) {
    const uint8_t* r = &jb[kJournalSectorSize + i * rec];
    CHECK(io::LoadBE32(r) == pg[i]);
    CHECK(std::equal(r + 4, r + 4 + kPageSize, Page(o.bytes, pg[i]).begin()));
    CHECK(io::LoadBE32(r + 4 + kPageSize) ==
          JournalWriter::RecordChecksum(0xa1b2c3d4, Page(o.bytes, pg[i])));
  }
  // The commit point zeroes the header and keeps the file for the next one.
  REQUIRE(j->Commit().ok());
  jb = test::ReadBytes(db_path + "-journal");
  REQUIRE(jb.size() == next_header + kJournalSectorSize);
  CHECK(std::all_of(jb.begin(), jb.begin() + kJournalSectorSize, [](uint8_t b) { return b == 0; }));
  {
    // SQLite does not see it as hot: the database is untouched and whole.
    Sqlite db(db_path, SQLITE_OPEN_READONLY);
    CHECK(db.Text("PRAGMA integrity_check") == "ok");
  }
  CHECK(test::ReadBytes(db_path) == o.bytes);

  // The next journal reuses the file; records past its count are stale.
  Result<JournalWriter> next = JournalWriter::Create(db_path + "-journal", kPageSize, o.pages, 0x1234);
  REQUIRE(next.ok());
  REQUIRE(next->AddPage(5, Page(o.bytes, 5)).ok());
  REQUIRE(next->WriteAndSync().ok());
  jb = test::ReadBytes(db_path + "-journal");
  CHECK(io::LoadBE32(&jb[8]) == 1);
  CHECK(io::LoadBE32(&jb[kJournalSectorSize]) == 5);
  // Right after its one record: cleared, though the first journal's second
  // record was there.
  const size_t after_one = (kJournalSectorSize + rec + kJournalSectorSize - 1) / kJournalSectorSize *
                           kJournalSectorSize;
  CHECK(std::all_of(jb.begin() + ptrdiff_t(after_one), jb.begin() + ptrdiff_t(after_one + kJournalSectorSize),
                    [](uint8_t b) { return b == 0; }));
  REQUIRE(next->Commit().ok());
}

TEST_CASE("a kept journal that grew past the limit is emptied at the commit point") {
  TempDir dir;
  const std::string db_path = dir / "big.db";
  Original o = MakeDb(db_path);
  Result<JournalWriter> j = JournalWriter::Create(db_path + "-journal", kPageSize, o.pages, 7);
  REQUIRE(j.ok());
  const uint32_t records = uint32_t(kKeptJournalLimit / kPageSize) + 1;
  for (uint32_t i = 0; i < records; i++) REQUIRE(j->AddPage(2 + i % (o.pages - 1), Page(o.bytes, 2)).ok());
  REQUIRE(j->WriteAndSync().ok());
  REQUIRE(test::ReadBytes(db_path + "-journal").size() > kKeptJournalLimit);
  REQUIRE(j->Commit().ok());
  CHECK(test::FileExists(db_path + "-journal"));
  CHECK(test::ReadBytes(db_path + "-journal").empty());
}

TEST_CASE("RecordChecksum: the nonce plus the bytes at ps-200, ps-400, ...") {
  for (uint32_t ps : {512u, 1024u, 4096u, 65536u}) {
    CAPTURE(ps);
    std::vector<uint8_t> page(ps);
    for (uint32_t i = 0; i < ps; i++) page[i] = uint8_t((i * 7 + 3) % 251);
    uint32_t want = 0xfffffff0u;  // wraps around
    for (int64_t off = int64_t(ps) - 200; off > 0; off -= 200) want += page[size_t(off)];
    CHECK(JournalWriter::RecordChecksum(0xfffffff0u, page) == want);
  }
  // A hand-computed case: 512-byte page, only offsets 312 and 112 count.
  std::vector<uint8_t> page(512, 0);
  page[312] = 200;
  page[112] = 100;
  page[0] = 255;    // offset 0 never counts
  page[511] = 255;  // nor does anything else
  CHECK(JournalWriter::RecordChecksum(1000, page) == 1300);
}

TEST_CASE("RecordChecksum matches the checksums in a journal SQLite wrote") {
  TempDir dir;
  const std::string db_path = dir / "sqlite-journal.db";
  Original o = MakeDb(db_path);
  Sqlite db(db_path);
  db.Exec("PRAGMA cache_size=10000");
  db.Exec("BEGIN");
  db.Exec("UPDATE t1 SET b = b || 'x' WHERE a % 3 = 0");
  db.Exec("DELETE FROM t3 WHERE a % 2 = 0");
  // The transaction is open: its journal holds the original pages.
  std::vector<uint8_t> jb = test::ReadBytes(db_path + "-journal");
  db.Exec("ROLLBACK");
  REQUIRE(jb.size() > 512);
  uint32_t nonce = io::LoadBE32(&jb[12]);
  uint32_t sector = io::LoadBE32(&jb[20]);
  REQUIRE(io::LoadBE32(&jb[24]) == kPageSize);
  REQUIRE(io::LoadBE32(&jb[16]) == o.pages);
  size_t off = sector;
  int records = 0;
  while (off + 8 + kPageSize <= jb.size()) {
    uint32_t pgno = io::LoadBE32(&jb[off]);
    std::span<const uint8_t> page(&jb[off + 4], kPageSize);
    uint32_t stored = io::LoadBE32(&jb[off + 4 + kPageSize]);
    CAPTURE(pgno);
    REQUIRE(pgno >= 1);
    REQUIRE(pgno <= o.pages);
    CHECK(JournalWriter::RecordChecksum(nonce, page) == stored);
    CHECK(std::equal(page.begin(), page.end(), Page(o.bytes, pgno).begin()));
    records++;
    off += 8 + kPageSize;
  }
  CHECK(records >= 3);
}

TEST_CASE("SQLite rolls a JournalWriter journal back on its next read") {
  TempDir dir;
  const std::string db_path = dir / "hot.db";
  Original o = MakeDb(db_path);
  std::vector<uint32_t> pgnos = {1, 2, 5, o.pages / 2, o.pages};
  JournalThenDamage(db_path, o, pgnos, 5);
  {
    // A plain connection (unix VFS): its first read finds the hot journal.
    Sqlite db(db_path);
    CHECK(db.Int("SELECT count(*) FROM t1") == 200);
  }
  CheckRestored(db_path, o);
}

TEST_CASE("a journal without records still truncates the growth away") {
  TempDir dir;
  const std::string db_path = dir / "grow.db";
  Original o = MakeDb(db_path);
  JournalThenDamage(db_path, o, {}, 7);
  {
    Sqlite db(db_path);
    CHECK(db.Text("PRAGMA integrity_check") == "ok");
  }
  CheckRestored(db_path, o);
}

TEST_CASE("RollBackHotJournal rolls the journal back") {
  TempDir dir;
  const std::string db_path = dir / "roll.db";
  Original o = MakeDb(db_path);
  std::vector<uint32_t> pgnos;
  for (uint32_t p = 1; p <= o.pages; p += 3) pgnos.push_back(p);
  JournalThenDamage(db_path, o, pgnos, 3);
  Status st = RollBackHotJournal(db_path);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CheckRestored(db_path, o);
  // Without a journal it is a harmless read.
  st = RollBackHotJournal(db_path);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CheckRestored(db_path, o);
}

TEST_CASE("RollBackHotJournal reports a database it cannot open") {
  TempDir dir;
  Status st = RollBackHotJournal(dir / "missing.db");
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().find("missing.db") != std::string::npos);
}

}  // namespace
}  // namespace litefs::sqlite
