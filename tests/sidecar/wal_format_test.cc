// Tests of sidecar/wal_format against WAL files SQLite itself wrote
// (sqlite-internals §4.1–4.3): the header checksum, the cumulative frame
// checksum, and ScanCommitted, whose answer is checked against SQLite's own
// wal-index (mxFrame) and a page->frame map computed here from the raw file.
#include "sidecar/wal_format.h"

#include <doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <random>
#include <vector>

#include "ltx/io.h"
#include "sidecar/db_view.h"
#include "sidecar/fsutil.h"
#include "sidecar_test_util.h"
#include "vfs/wal_index_header.h"

namespace litefs::wal {
namespace {

using test::Sqlite;
using test::TempDir;

// SQLite's walChecksumBytes, written out again for comparison: words read
// in the given byte order, consumed in pairs.
Checksum RefChecksum(Checksum c, const uint8_t* p, size_t n, bool big_endian) {
  uint32_t s0 = c.s0, s1 = c.s1;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint32_t a, b;
    if (big_endian) {
      a = io::LoadBE32(p + i);
      b = io::LoadBE32(p + i + 4);
    } else {
      a = uint32_t(p[i]) | uint32_t(p[i + 1]) << 8 | uint32_t(p[i + 2]) << 16 | uint32_t(p[i + 3]) << 24;
      b = uint32_t(p[i + 4]) | uint32_t(p[i + 5]) << 8 | uint32_t(p[i + 6]) << 16 |
          uint32_t(p[i + 7]) << 24;
    }
    s0 += a + s1;
    s1 += b + s0;
  }
  return {s0, s1};
}

// The wal-index header SQLite published (first copy of the -shm).
WalIndexHeader ShmHeader(const std::string& db_path) {
  std::vector<uint8_t> shm = test::ReadBytes(db_path + "-shm");
  REQUIRE(shm.size() >= 136);
  return WalIndexHeader::Decode(shm.data());
}

// The raw frames of a WAL file, parsed here without wal_format.
struct RawFrame {
  uint32_t pgno, commit, salt1, salt2, ck0, ck1;
};
struct RawWal {
  std::vector<uint8_t> bytes;
  uint32_t page_size = 0, salt1 = 0, salt2 = 0;
  std::vector<RawFrame> frames;  // [0] = frame 1; every whole frame in the file
};
RawWal ParseRaw(const std::vector<uint8_t>& bytes) {
  RawWal w;
  w.bytes = bytes;
  REQUIRE(bytes.size() >= 32);
  w.page_size = io::LoadBE32(&bytes[8]);
  w.salt1 = io::LoadBE32(&bytes[16]);
  w.salt2 = io::LoadBE32(&bytes[20]);
  const size_t fsz = 24 + w.page_size;
  for (size_t off = 32; off + fsz <= bytes.size(); off += fsz) {
    const uint8_t* p = &bytes[off];
    w.frames.push_back({io::LoadBE32(p), io::LoadBE32(p + 4), io::LoadBE32(p + 8), io::LoadBE32(p + 12),
                        io::LoadBE32(p + 16), io::LoadBE32(p + 20)});
  }
  return w;
}

// pgno -> last frame among frames 1..limit.
std::unordered_map<uint32_t, uint32_t> MapUpTo(const RawWal& w, uint32_t limit) {
  std::unordered_map<uint32_t, uint32_t> m;
  for (uint32_t i = 1; i <= limit; i++) m[w.frames[i - 1].pgno] = i;
  return m;
}

std::vector<uint32_t> CommitFrames(const RawWal& w, uint32_t limit) {
  std::vector<uint32_t> out;
  for (uint32_t i = 1; i <= limit; i++) {
    if (w.frames[i - 1].commit != 0) out.push_back(i);
  }
  return out;
}

Committed Scan(const std::string& path, uint32_t stop_after = 0) {
  Result<fs::UniqueFd> fd = fs::Open(path, O_RDONLY);
  REQUIRE_MESSAGE(fd.ok(), fd.message());
  Result<Committed> c = ScanCommitted(fd->get(), stop_after);
  REQUIRE_MESSAGE(c.ok(), c.message());
  return std::move(c).value();
}

using test::WalDb;

// Several transactions of various sizes, some touching the same pages again.
void WriteSeveral(Sqlite& db) {
  test::FillTable(db, "t1", 1, 300, 200);
  test::FillTable(db, "t2", 1, 40, 3000);
  db.Exec("UPDATE t1 SET b = b || 'x' WHERE a % 7 = 0");
  db.Exec("DELETE FROM t2 WHERE a % 3 = 0");
  db.Exec("BEGIN; UPDATE t1 SET b = upper(b) WHERE a < 50; INSERT INTO t2(b) VALUES (randomblob(5000)); COMMIT");
  test::FillTable(db, "t3", 1, 100, 50);
  db.Exec("UPDATE t3 SET b = 'same' WHERE a = 1");
}

TEST_CASE("wal_format: Update is SQLite's checksum in both byte orders") {
  std::mt19937 rng(1);
  std::vector<uint8_t> data(4096 + 8);
  for (uint8_t& b : data) b = uint8_t(rng());
  for (bool be : {false, true}) {
    CAPTURE(be);
    Checksum start{0x12345678, 0x9abcdef0};
    CHECK(Update(start, data, be) == RefChecksum(start, data.data(), data.size(), be));
    CHECK(Update({}, data, be) == RefChecksum({}, data.data(), data.size(), be));
    // Continuing in pieces is the same as one pass.
    Checksum two = Update(Update({}, std::span(data).first(24), be), std::span(data).subspan(24), be);
    CHECK(two == Update({}, data, be));
    CHECK(Update(start, {}, be) == start);
  }
  // The byte order matters.
  CHECK(Update({}, data, true) != Update({}, data, false));
}

TEST_CASE("wal_format: the checksums of a WAL SQLite wrote verify") {
  TempDir dir;
  WalDb w(dir / "cksum.db");
  WriteSeveral(w.db);
  RawWal raw = ParseRaw(test::ReadBytes(w.path + "-wal"));
  const std::vector<uint8_t>& b = raw.bytes;

  Result<Header> h = Header::Decode(b);
  REQUIRE_MESSAGE(h.ok(), h.message());
  CHECK(h->magic == kMagicLE);  // x86: little-endian checksum words
  CHECK_FALSE(h->big_endian());
  CHECK(h->version == kFormatVersion);
  CHECK(h->page_size == 4096);
  CHECK(h->salt1 == raw.salt1);
  CHECK(h->salt2 == raw.salt2);
  Checksum stored{io::LoadBE32(&b[24]), io::LoadBE32(&b[28])};
  CHECK(h->checksum == stored);
  CHECK(Update({}, std::span(b).first(24), false) == stored);
  uint8_t again[kHeaderSize];
  h->Encode(again);
  CHECK(std::equal(again, again + kHeaderSize, b.begin()));

  // Every frame's stored checksum is the running checksum.
  const uint32_t mx = ShmHeader(w.path).mx_frame;
  REQUIRE(mx >= 20);
  REQUIRE(raw.frames.size() >= mx);
  Checksum chain = stored;
  for (uint32_t i = 1; i <= mx; i++) {
    const uint8_t* f = &b[FrameOffset(i, 4096)];
    chain = Update(chain, {f, 8}, false);
    chain = Update(chain, {f + kFrameHeaderSize, 4096}, false);
    FrameHeader fh = FrameHeader::Decode(f);
    CAPTURE(i);
    REQUIRE(fh.checksum == chain);
    CHECK(fh.salt1 == h->salt1);
    CHECK(fh.salt2 == h->salt2);
  }
  // ... and SQLite's wal-index holds the same running checksum.
  WalIndexHeader ih = ShmHeader(w.path);
  CHECK(ih.frame_cksum[0] == chain.s0);
  CHECK(ih.frame_cksum[1] == chain.s1);
}

TEST_CASE("wal_format: ScanCommitted finds SQLite's last commit frame and page map") {
  TempDir dir;
  WalDb w(dir / "scan.db");
  WriteSeveral(w.db);
  const WalIndexHeader ih = ShmHeader(w.path);
  RawWal raw = ParseRaw(test::ReadBytes(w.path + "-wal"));
  REQUIRE(raw.frames.size() == ih.mx_frame);  // no tail yet

  Committed c = Scan(w.path + "-wal");
  CHECK(c.last_frame == ih.mx_frame);
  CHECK(c.db_pages == ih.n_page);
  CHECK(c.db_pages == raw.frames[ih.mx_frame - 1].commit);
  CHECK(c.checksum == Checksum{ih.frame_cksum[0], ih.frame_cksum[1]});
  CHECK(c.header.page_size == 4096);
  CHECK(c.header.salt1 == raw.salt1);
  CHECK(c.header.salt2 == raw.salt2);
  CHECK(c.frames == MapUpTo(raw, ih.mx_frame));
  CHECK(CommitFrames(raw, ih.mx_frame).size() >= 7);

  SUBCASE("an uncommitted tail (a spilled transaction rolled back) is ignored") {
    w.db.Exec("PRAGMA cache_size=10");
    w.db.Exec("BEGIN");
    test::FillTable(w.db, "spill", 1, 600, 1000);
    w.db.Exec("UPDATE t1 SET b = 'spilled' WHERE a < 100");
    // The spilled frames are in the file while the transaction is open.
    RawWal during = ParseRaw(test::ReadBytes(w.path + "-wal"));
    w.db.Exec("ROLLBACK");
    REQUIRE(ShmHeader(w.path).mx_frame == ih.mx_frame);
    RawWal after = ParseRaw(test::ReadBytes(w.path + "-wal"));
    REQUIRE(during.frames.size() > ih.mx_frame + 50);
    REQUIRE(after.frames.size() == during.frames.size());
    // The tail is made of valid frames (same salts) that never commit.
    for (size_t i = ih.mx_frame; i < after.frames.size(); i++) {
      CHECK(after.frames[i].salt1 == raw.salt1);
      CHECK(after.frames[i].commit == 0);
    }
    Committed t = Scan(w.path + "-wal");
    CHECK(t.last_frame == ih.mx_frame);
    CHECK(t.db_pages == ih.n_page);
    CHECK(t.checksum == c.checksum);
    CHECK(t.frames == c.frames);
  }

  SUBCASE("garbage appended after the last commit is ignored") {
    std::mt19937 rng(5);
    std::vector<uint8_t> junk(3 * (24 + 4096) + 100);
    for (uint8_t& b : junk) b = uint8_t(rng());
    // One frame header that looks right (pgno, commit, salts) but whose
    // checksum cannot match, then random bytes.
    io::StoreBE32(&junk[0], 2);
    io::StoreBE32(&junk[4], 5);
    io::StoreBE32(&junk[8], raw.salt1);
    io::StoreBE32(&junk[12], raw.salt2);
    const std::string copy = dir / "garbage.db-wal";
    std::vector<uint8_t> bytes = raw.bytes;
    bytes.insert(bytes.end(), junk.begin(), junk.end());
    test::WriteBytes(copy, bytes);
    Committed t = Scan(copy);
    CHECK(t.last_frame == ih.mx_frame);
    CHECK(t.frames == c.frames);
    CHECK(t.db_pages == c.db_pages);
  }

  SUBCASE("a corrupted frame stops the scan at the commit before it") {
    std::vector<uint32_t> commits = CommitFrames(raw, ih.mx_frame);
    REQUIRE(commits.size() >= 4);
    const uint32_t prev_commit = commits[commits.size() / 2 - 1];
    const uint32_t bad = prev_commit + 1;  // first frame of the next transaction
    struct Damage {
      const char* what;
      size_t offset;  // within the frame
    };
    for (Damage d : {Damage{"a page byte", 24 + 1000}, Damage{"the commit field", 4 + 3},
                     Damage{"salt-1", 8 + 2}, Damage{"salt-2", 12}, Damage{"checksum-2", 20 + 3},
                     Damage{"the page number", 0 + 3}}) {
      CAPTURE(d.what);
      std::vector<uint8_t> bytes = raw.bytes;
      bytes[FrameOffset(bad, 4096) + d.offset] ^= 0x40;
      const std::string copy = dir / "corrupt.db-wal";
      test::WriteBytes(copy, bytes);
      Committed t = Scan(copy);
      CHECK(t.last_frame == prev_commit);
      CHECK(t.db_pages == raw.frames[prev_commit - 1].commit);
      CHECK(t.checksum == Checksum{raw.frames[prev_commit - 1].ck0, raw.frames[prev_commit - 1].ck1});
      CHECK(t.frames == MapUpTo(raw, prev_commit));
    }
    // A damaged page in a later commit frame only drops that transaction.
    std::vector<uint8_t> bytes = raw.bytes;
    bytes[FrameOffset(ih.mx_frame, 4096) + 24 + 7] ^= 1;
    test::WriteBytes(dir / "last.db-wal", bytes);
    Committed t = Scan(dir / "last.db-wal");
    CHECK(t.last_frame == commits[commits.size() - 2]);
    // A damaged WAL header makes the whole WAL empty, as in SQLite.
    bytes = raw.bytes;
    bytes[17] ^= 1;
    test::WriteBytes(dir / "header.db-wal", bytes);
    t = Scan(dir / "header.db-wal");
    CHECK(t.last_frame == 0);
    CHECK(t.frames.empty());
  }

  SUBCASE("stop_after views the WAL as of a frame") {
    std::vector<uint32_t> commits = CommitFrames(raw, ih.mx_frame);
    uint32_t before = 0;
    for (uint32_t cf : commits) {
      CAPTURE(cf);
      Committed at = Scan(w.path + "-wal", cf);
      CHECK(at.last_frame == cf);
      CHECK(at.db_pages == raw.frames[cf - 1].commit);
      CHECK(at.frames == MapUpTo(raw, cf));
      CHECK(at.checksum == Checksum{raw.frames[cf - 1].ck0, raw.frames[cf - 1].ck1});
      if (cf - 1 > before) {
        // Stopping inside a transaction leaves the one before.
        Committed mid = Scan(w.path + "-wal", cf - 1);
        CHECK(mid.last_frame == before);
        CHECK(mid.frames == MapUpTo(raw, before));
      }
      before = cf;
    }
    // Beyond the end: everything.
    CHECK(Scan(w.path + "-wal", ih.mx_frame + 1000).last_frame == ih.mx_frame);
  }
}

TEST_CASE("wal_format: a WAL that SQLite restarted: frames of the old generation do not count") {
  TempDir dir;
  WalDb w(dir / "restart.db");
  WriteSeveral(w.db);
  const uint32_t old_mx = ShmHeader(w.path).mx_frame;
  RawWal old = ParseRaw(test::ReadBytes(w.path + "-wal"));
  w.db.Exec("PRAGMA wal_checkpoint(PASSIVE)");
  // The next write restarts the WAL at frame 1 with new salts, leaving the
  // older frames behind it in the file.
  w.db.Exec("UPDATE t1 SET b = 'new' WHERE a = 3");
  const WalIndexHeader ih = ShmHeader(w.path);
  RawWal now = ParseRaw(test::ReadBytes(w.path + "-wal"));
  REQUIRE(ih.mx_frame < old_mx);
  REQUIRE(now.frames.size() == old.frames.size());
  CHECK(now.salt1 == old.salt1 + 1);
  Committed c = Scan(w.path + "-wal");
  CHECK(c.last_frame == ih.mx_frame);
  CHECK(c.header.salt1 == now.salt1);
  CHECK(c.frames == MapUpTo(now, ih.mx_frame));
}

TEST_CASE("wal_format: Header Encode/Decode round trip and Decode's checks") {
  std::mt19937 rng(9);
  for (uint32_t magic : {kMagicLE, kMagicBE}) {
    for (uint32_t ps : {512u, 4096u, 65536u}) {
      Header h;
      h.magic = magic;
      h.page_size = ps;
      h.checkpoint_seq = uint32_t(rng());
      h.salt1 = uint32_t(rng());
      h.salt2 = uint32_t(rng());
      uint8_t b[kHeaderSize];
      h.Encode(b);
      CHECK(io::LoadBE32(b) == magic);
      CHECK(io::LoadBE32(b + 4) == kFormatVersion);
      CHECK(io::LoadBE32(b + 8) == ps);
      CHECK(io::LoadBE32(b + 12) == h.checkpoint_seq);
      CHECK(io::LoadBE32(b + 16) == h.salt1);
      CHECK(io::LoadBE32(b + 20) == h.salt2);
      Checksum ref = RefChecksum({}, b, 24, magic == kMagicBE);
      CHECK(io::LoadBE32(b + 24) == ref.s0);
      CHECK(io::LoadBE32(b + 28) == ref.s1);
      Result<Header> d = Header::Decode(b);
      REQUIRE_MESSAGE(d.ok(), d.message());
      CHECK(d->magic == magic);
      CHECK(d->big_endian() == (magic == kMagicBE));
      CHECK(d->version == kFormatVersion);
      CHECK(d->page_size == ps);
      CHECK(d->checkpoint_seq == h.checkpoint_seq);
      CHECK(d->salt1 == h.salt1);
      CHECK(d->salt2 == h.salt2);
      CHECK(d->checksum == ref);
      // Every byte counts.
      for (size_t i = 0; i < kHeaderSize; i++) {
        uint8_t bad[kHeaderSize];
        std::copy(b, b + kHeaderSize, bad);
        bad[i] ^= 0x10;
        CAPTURE(i);
        CHECK_FALSE(Header::Decode(bad).ok());
      }
    }
  }
  Header h;
  h.page_size = 4096;
  uint8_t b[kHeaderSize];
  h.Encode(b);
  CHECK(Header::Decode(std::span(b, kHeaderSize - 1)).message() == "WAL header is truncated");
  io::StoreBE32(b, 0x377f0681);
  CHECK(Header::Decode(b).message() == "not a WAL file (bad magic)");
  for (uint32_t ps : {0u, 256u, 1000u, 131072u}) {
    h.page_size = ps;
    h.Encode(b);
    CAPTURE(ps);
    CHECK(Header::Decode(b).message() == "bad WAL page size " + std::to_string(ps));
  }
  h.page_size = 4096;
  h.version = 3007001;
  h.Encode(b);
  CHECK(Header::Decode(b).message() == "unsupported WAL format version 3007001");
}

TEST_CASE("wal_format: FrameHeader Encode/Decode round trip") {
  FrameHeader f;
  f.pgno = 0x01020304;
  f.commit = 77;
  f.salt1 = 0xdeadbeef;
  f.salt2 = 0x0badf00d;
  f.checksum = {0x11223344, 0x55667788};
  uint8_t b[kFrameHeaderSize];
  f.Encode(b);
  const uint8_t want[kFrameHeaderSize] = {1, 2, 3, 4, 0, 0, 0, 77, 0xde, 0xad, 0xbe, 0xef,
                                          0x0b, 0xad, 0xf0, 0x0d, 0x11, 0x22, 0x33, 0x44,
                                          0x55, 0x66, 0x77, 0x88};
  CHECK(std::equal(b, b + kFrameHeaderSize, want));
  FrameHeader d = FrameHeader::Decode(b);
  CHECK(d.pgno == f.pgno);
  CHECK(d.commit == f.commit);
  CHECK(d.salt1 == f.salt1);
  CHECK(d.salt2 == f.salt2);
  CHECK(d.checksum == f.checksum);
  CHECK(FrameOffset(1, 4096) == 32);
  CHECK(FrameOffset(3, 4096) == 32 + 2 * 4120);
  CHECK(FrameOffset(100000, 65536) == 32 + uint64_t(99999) * (65536 + 24));  // no 32-bit overflow
}

TEST_CASE("wal_format: an empty, short, invalid or missing WAL is an empty result") {
  TempDir dir;
  auto check_empty = [&](const std::vector<uint8_t>& bytes) {
    test::WriteBytes(dir / "e.db-wal", bytes);
    Committed c = Scan(dir / "e.db-wal");
    CHECK(c.last_frame == 0);
    CHECK(c.db_pages == 0);
    CHECK(c.frames.empty());
    return c;
  };
  CHECK(check_empty({}).header.page_size == 0);
  CHECK(check_empty(std::vector<uint8_t>(31, 0x37)).header.page_size == 0);
  CHECK(check_empty(std::vector<uint8_t>(5000, 0)).header.page_size == 0);
  // A valid header and no frame: empty, but the header is known.
  Header h;
  h.page_size = 1024;
  h.salt1 = 7;
  std::vector<uint8_t> only(kHeaderSize);
  h.Encode(only.data());
  Committed c = check_empty(only);
  CHECK(c.header.page_size == 1024);
  CHECK(c.header.salt1 == 7);
  CHECK(c.checksum == c.header.checksum);
  // A header and half a frame.
  only.resize(kHeaderSize + 24 + 512);
  check_empty(only);
  // A bad descriptor is an error, not an empty WAL.
  CHECK_FALSE(ScanCommitted(-1).ok());

  // A database without a -wal file: DbView shows the file alone.
  {
    Sqlite db(dir / "nowal.db");
    test::FillTable(db, "t", 1, 50, 100);
  }
  REQUIRE_FALSE(test::FileExists(dir / "nowal.db-wal"));
  Result<DbView> v = DbView::Open(dir / "nowal.db");
  REQUIRE_MESSAGE(v.ok(), v.message());
  CHECK(v->wal().last_frame == 0);
  CHECK(v->wal().frames.empty());
  CHECK(v->page_count() == test::ReadBytes(dir / "nowal.db").size() / v->page_size());
}

}  // namespace
}  // namespace litefs::wal
