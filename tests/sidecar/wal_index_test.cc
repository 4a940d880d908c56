// Tests of sidecar/wal_index against the wal-index SQLite itself maintains
// (sqlite-internals §4.5): for the same WAL, an Index built from outside must
// hold byte-identical page-number arrays and hash tables in every 32 KiB
// block, and a header SQLite would accept (same fields, same checksum).
#include "sidecar/wal_index.h"

#include <doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "ltx/io.h"
#include "sidecar/wal_format.h"
#include "sidecar_test_util.h"

namespace litefs::wal {
namespace {

using test::Sqlite;
using test::TempDir;

uint32_t BlockOfFrame(uint32_t frame) {
  return frame <= kFirstBlockPages ? 0 : 1 + (frame - kFirstBlockPages - 1) / kHashPages;
}

// Page numbers of frames 1..n of a WAL file, and where its transactions end.
struct WalFrames {
  std::vector<uint32_t> pgnos;    // [i] = page of frame i+1
  std::vector<uint32_t> commits;  // commit frames, ascending
};
WalFrames RawFrames(const std::string& wal_path, uint32_t n) {
  std::vector<uint8_t> b = test::ReadBytes(wal_path);
  const uint32_t ps = io::LoadBE32(&b[8]);
  WalFrames out;
  for (uint32_t i = 1; i <= n; i++) {
    const uint64_t off = FrameOffset(i, ps);
    REQUIRE(off + 24 + ps <= b.size());
    out.pgnos.push_back(io::LoadBE32(&b[off]));
    if (io::LoadBE32(&b[off + 4]) != 0) out.commits.push_back(i);
  }
  return out;
}

Index OpenIndex(const std::string& path) {
  Result<Index> idx = Index::Open(path, 0644);
  REQUIRE_MESSAGE(idx.ok(), idx.message());
  return std::move(idx).value();
}

// The header SQLite would publish for the WAL at `wal_path`, built from
// ScanCommitted; iChange is the caller's.
WalIndexHeader HeaderFor(const std::string& wal_path, uint32_t change) {
  Result<fs::UniqueFd> fd = fs::Open(wal_path, O_RDONLY);
  REQUIRE(fd.ok());
  Result<Committed> c = ScanCommitted(fd->get());
  REQUIRE_MESSAGE(c.ok(), c.message());
  uint8_t raw[kHeaderSize];
  c->header.Encode(raw);
  WalIndexHeader h;
  h.version = kIndexVersion;
  h.change = change;
  h.is_init = 1;
  h.big_end_cksum = c->header.big_endian();
  h.page_size_field = c->header.page_size == 65536 ? 1 : uint16_t(c->header.page_size);
  h.mx_frame = c->last_frame;
  h.n_page = c->db_pages;
  h.frame_cksum[0] = c->checksum.s0;
  h.frame_cksum[1] = c->checksum.s1;
  std::memcpy(h.salt, raw + 16, 8);
  return h;
}

// Compares aPgno and aHash of every block up to the one holding `mx`.
void CompareBlocks(const std::vector<uint8_t>& sqlite_shm, const std::vector<uint8_t>& ours, uint32_t mx) {
  const uint32_t last = BlockOfFrame(mx);
  REQUIRE(sqlite_shm.size() >= (last + 1) * kIndexBlockSize);
  REQUIRE(ours.size() >= (last + 1) * kIndexBlockSize);
  for (uint32_t blk = 0; blk <= last; blk++) {
    CAPTURE(blk);
    const size_t base = size_t(blk) * kIndexBlockSize;
    const size_t from = base + (blk == 0 ? kIndexHeaderBytes : 0);
    const size_t hash = base + kHashPages * 4;
    const bool pgno_same = std::memcmp(&sqlite_shm[from], &ours[from], hash - from) == 0;
    const bool hash_same = std::memcmp(&sqlite_shm[hash], &ours[hash], base + kIndexBlockSize - hash) == 0;
    CHECK(pgno_same);
    CHECK(hash_same);
    if (!pgno_same) {
      for (size_t off = from; off < hash; off += 4) {
        uint32_t a, b;
        std::memcpy(&a, &sqlite_shm[off], 4);
        std::memcpy(&b, &ours[off], 4);
        if (a != b) {
          FAIL_CHECK("first aPgno difference at byte " << off << ": sqlite " << a << ", ours " << b);
          break;
        }
      }
    }
  }
}

// A WAL-mode database with ~10,600 frames (three hash blocks) written by
// SQLite, whose connection stays open so that -wal and -shm survive.
struct BigWal {
  explicit BigWal(const std::string& p) : path(p), db(p) {
    db.Exec("PRAGMA page_size=1024");
    db.Exec("PRAGMA journal_mode=WAL");
    db.Exec("PRAGMA wal_autocheckpoint=0");
    db.Exec("PRAGMA synchronous=OFF");
    db.Exec("PRAGMA cache_size=-262144");  // no spill: one frame per page and transaction
    db.Exec("CREATE TABLE t(a INTEGER PRIMARY KEY, b BLOB)");
    db.Exec("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<3000) "
            "INSERT INTO t SELECT x, randomblob(800) FROM c");
    for (int i = 0; i < 1500; i++) {
      db.Exec("UPDATE t SET b = randomblob(800) WHERE a = " + std::to_string(1 + (i * 97) % 3000));
    }
    db.Exec("WITH RECURSIVE c(x) AS (SELECT 3001 UNION ALL SELECT x+1 FROM c WHERE x<8000) "
            "INSERT INTO t SELECT x, randomblob(800) FROM c");
    for (int i = 0; i < 1000; i++) {
      db.Exec("UPDATE t SET b = randomblob(800) WHERE a = " + std::to_string(1 + (i * 31) % 8000));
    }
    shm = test::ReadBytes(path + "-shm");
    sqlite_header = WalIndexHeader::Decode(shm.data());
    frames = RawFrames(path + "-wal", sqlite_header.mx_frame);
  }
  std::string path;
  Sqlite db;
  std::vector<uint8_t> shm;
  WalIndexHeader sqlite_header;
  WalFrames frames;
};

TEST_CASE("wal_index: an Index built from outside equals SQLite's wal-index") {
  TempDir dir;
  BigWal w(dir / "big.db");
  const uint32_t mx = w.sqlite_header.mx_frame;
  REQUIRE(mx > kFirstBlockPages + kHashPages);  // at least three blocks
  REQUIRE(w.frames.commits.back() == mx);
  CHECK(BlockOfFrame(mx) == 2);
  // SQLite's own two header copies agree.
  REQUIRE(std::memcmp(&w.shm[0], &w.shm[48], 48) == 0);

  const std::string ours_path = dir / "ours-shm";
  auto build_and_compare = [&](const std::function<void(const Index&)>& append) {
    Index idx = OpenIndex(ours_path);
    REQUIRE(idx.Clear().ok());
    append(idx);
    WalIndexHeader h = HeaderFor(w.path + "-wal", w.sqlite_header.change);
    CHECK(h.mx_frame == mx);
    CHECK(h.n_page == w.sqlite_header.n_page);
    CHECK(h.frame_cksum[0] == w.sqlite_header.frame_cksum[0]);
    CHECK(h.frame_cksum[1] == w.sqlite_header.frame_cksum[1]);
    CHECK(std::memcmp(h.salt, w.sqlite_header.salt, 8) == 0);
    CHECK(h.page_size_field == w.sqlite_header.page_size_field);
    REQUIRE(idx.WriteHeader(h).ok());
    std::vector<uint8_t> ours = test::ReadBytes(ours_path);
    CHECK(ours.size() % kIndexBlockSize == 0);
    CHECK(ours.size() == (BlockOfFrame(mx) + 1) * kIndexBlockSize);
    // Both header copies byte for byte, the checksum included.
    CHECK(std::memcmp(&ours[0], &w.shm[0], 48) == 0);
    CHECK(std::memcmp(&ours[48], &w.shm[48], 48) == 0);
    CompareBlocks(w.shm, ours, mx);
    Result<Index::HeaderState> st = idx.ReadHeader();
    REQUIRE(st.ok());
    CHECK(st->valid);
    CHECK(st->header.mx_frame == mx);
    unlink(ours_path.c_str());
  };

  SUBCASE("one Append of every frame") {
    build_and_compare([&](const Index& idx) {
      Status s = idx.Append(1, w.frames.pgnos, 0);
      REQUIRE_MESSAGE(s.ok(), s.message());
    });
  }
  SUBCASE("one Append per transaction, as the WAL applier does") {
    build_and_compare([&](const Index& idx) {
      uint32_t prev = 0;
      for (uint32_t c : w.frames.commits) {
        Status s = idx.Append(prev + 1, std::span(w.frames.pgnos).subspan(prev, c - prev), prev);
        REQUIRE_MESSAGE(s.ok(), s.message());
        prev = c;
      }
    });
  }
  SUBCASE("leftovers of dead writers are cleaned up first") {
    build_and_compare([&](const Index& idx) {
      std::mt19937 rng(3);
      uint32_t prev = 0;
      int junk_runs = 0;
      for (uint32_t c : w.frames.commits) {
        // Before some transactions, a writer appended frames and died.
        const bool crossing = prev < kFirstBlockPages && c > kFirstBlockPages;
        if (rng() % 50 == 0 || crossing) {
          // Across a block boundary the leftovers reach into the next block,
          // past where the real transaction ends.
          std::vector<uint32_t> junk(crossing ? c - prev + 40 : 1 + rng() % (c - prev + 40));
          for (uint32_t& p : junk) p = 1 + rng() % 9000;
          REQUIRE(idx.Append(prev + 1, junk, prev).ok());
          junk_runs++;
        }
        Status s = idx.Append(prev + 1, std::span(w.frames.pgnos).subspan(prev, c - prev), prev);
        REQUIRE_MESSAGE(s.ok(), s.message());
        prev = c;
      }
      CHECK(junk_runs > 10);
    });
  }
}

TEST_CASE("wal_index: an Index kept across a WAL restart equals SQLite's wal-index") {
  TempDir dir;
  BigWal w(dir / "restart.db");
  const uint32_t mx1 = w.sqlite_header.mx_frame;
  const std::string ours_path = dir / "ours-shm";
  Index idx = OpenIndex(ours_path);
  REQUIRE(idx.Clear().ok());
  auto append_all = [&](const WalFrames& f) {
    uint32_t prev = 0;
    for (uint32_t c : f.commits) {
      Status s = idx.Append(prev + 1, std::span(f.pgnos).subspan(prev, c - prev), prev);
      REQUIRE_MESSAGE(s.ok(), s.message());
      prev = c;
    }
  };
  append_all(w.frames);
  REQUIRE(idx.WriteHeader(HeaderFor(w.path + "-wal", w.sqlite_header.change)).ok());
  CompareBlocks(w.shm, test::ReadBytes(ours_path), mx1);

  // SQLite backfills, then its next writer restarts the WAL at frame 1 and
  // writes over the old generation's hash tables.
  REQUIRE(w.db.Text("PRAGMA wal_checkpoint(PASSIVE)") == "0");
  w.db.Exec("WITH RECURSIVE c(x) AS (SELECT 20001 UNION ALL SELECT x+1 FROM c WHERE x<24500) "
            "INSERT INTO t SELECT x, randomblob(800) FROM c");
  for (int i = 0; i < 300; i++) {
    w.db.Exec("UPDATE t SET b = randomblob(800) WHERE a = " + std::to_string(20001 + (i * 7) % 4500));
  }
  std::vector<uint8_t> shm = test::ReadBytes(w.path + "-shm");
  WalIndexHeader sq = WalIndexHeader::Decode(shm.data());
  REQUIRE(sq.mx_frame < mx1);
  REQUIRE(sq.mx_frame > kFirstBlockPages + 100);  // into block 1 again
  CHECK(sq.salt1() == w.sqlite_header.salt1() + 1);
  WalFrames gen2 = RawFrames(w.path + "-wal", sq.mx_frame);
  append_all(gen2);
  REQUIRE(idx.WriteHeader(HeaderFor(w.path + "-wal", sq.change)).ok());
  std::vector<uint8_t> ours = test::ReadBytes(ours_path);
  CHECK(std::memcmp(&ours[0], &shm[0], 96) == 0);
  // Every block, the stale ones of the first generation included.
  CompareBlocks(shm, ours, std::max(mx1, sq.mx_frame));
}

TEST_CASE("wal_index: WriteHeader writes SQLite's header; ReadHeader checks it") {
  for (int ps : {512, 4096, 65536}) {
    CAPTURE(ps);
    TempDir dir;
    Sqlite db(dir / "h.db");
    db.Exec("PRAGMA page_size=" + std::to_string(ps));
    db.Exec("PRAGMA journal_mode=WAL");
    db.Exec("PRAGMA wal_autocheckpoint=0");
    test::FillTable(db, "t", 1, 100, 200);
    db.Exec("UPDATE t SET b = 'z' WHERE a = 7");
    const std::string shm_path = dir / "h.db-shm";
    std::vector<uint8_t> shm = test::ReadBytes(shm_path);
    WalIndexHeader sq = WalIndexHeader::Decode(shm.data());
    REQUIRE(sq.mx_frame > 0);

    // SetChecksum computes what SQLite stored.
    WalIndexHeader h = sq;
    h.cksum[0] = h.cksum[1] = 0;
    Index::SetChecksum(h);
    CHECK(h.cksum[0] == sq.cksum[0]);
    CHECK(h.cksum[1] == sq.cksum[1]);

    // ReadHeader of SQLite's own -shm (read only through pread).
    {
      Index live = OpenIndex(shm_path);
      Result<Index::HeaderState> st = live.ReadHeader();
      REQUIRE(st.ok());
      CHECK(st->valid);
      CHECK(st->header.mx_frame == sq.mx_frame);
      CHECK(st->header.page_size() == uint32_t(ps));
      Result<CheckpointInfo> info = live.ReadCheckpointInfo();
      REQUIRE(info.ok());
      uint32_t raw[10];
      std::memcpy(raw, &shm[96], 40);
      CHECK(info->backfill == raw[0]);
      for (int i = 0; i < 5; i++) CHECK(info->read_mark[i] == raw[1 + i]);
      CHECK(info->backfill_attempted == raw[8]);
      CHECK(info->read_mark[0] == 0);
    }

    // WriteHeader into a copy: both copies, byte-identical to SQLite's.
    const std::string copy = dir / "copy-shm";
    std::vector<uint8_t> zeros(kIndexBlockSize, 0);
    test::WriteBytes(copy, zeros);
    Index idx = OpenIndex(copy);
    WalIndexHeader w = sq;
    w.cksum[0] = 1;  // recomputed
    w.cksum[1] = 2;
    REQUIRE(idx.WriteHeader(w).ok());
    std::vector<uint8_t> out = test::ReadBytes(copy);
    CHECK(std::memcmp(&out[0], &shm[0], 48) == 0);
    CHECK(std::memcmp(&out[48], &shm[48], 48) == 0);
    Result<Index::HeaderState> st = idx.ReadHeader();
    REQUIRE(st.ok());
    CHECK(st->valid);

    // Any flipped byte of either copy makes the header invalid.
    for (size_t i = 0; i < 96; i++) {
      std::vector<uint8_t> bad = out;
      bad[i] ^= 0x04;
      test::WriteBytes(copy, bad);
      Result<Index::HeaderState> b = idx.ReadHeader();
      REQUIRE(b.ok());
      CAPTURE(i);
      CHECK_FALSE(b->valid);
    }
    // So does a header with a good checksum that is not initialised or has
    // another version.
    test::WriteBytes(copy, zeros);
    WalIndexHeader x = sq;
    x.is_init = 0;
    REQUIRE(idx.WriteHeader(x).ok());
    CHECK_FALSE(idx.ReadHeader()->valid);
    x = sq;
    x.version = 3007001;
    REQUIRE(idx.WriteHeader(x).ok());
    CHECK_FALSE(idx.ReadHeader()->valid);
    // A file shorter than the two copies is invalid too.
    test::WriteBytes(copy, std::vector<uint8_t>(out.begin(), out.begin() + 60));
    CHECK_FALSE(idx.ReadHeader()->valid);
  }
}

TEST_CASE("wal_index: Clear and WriteCheckpointInfo never touch the lock bytes") {
  TempDir dir;
  const std::string path = dir / "x-shm";
  std::vector<uint8_t> junk(kIndexBlockSize + 100);
  for (size_t i = 0; i < junk.size(); i++) junk[i] = uint8_t(i * 13 + 1);
  test::WriteBytes(path, junk);
  Index idx = OpenIndex(path);
  REQUIRE(idx.Clear().ok());
  std::vector<uint8_t> b = test::ReadBytes(path);
  for (size_t i = 0; i < kIndexBlockSize; i++) {
    if (i >= 120 && i < 128) {
      CHECK(b[i] == junk[i]);
    } else if (b[i] != 0) {
      FAIL_CHECK("byte " << i << " not cleared");
      break;
    }
  }
  CHECK_FALSE(idx.ReadHeader()->valid);

  CheckpointInfo info;
  info.backfill = 11;
  for (int i = 0; i < 5; i++) info.read_mark[i] = 100 + i;
  info.backfill_attempted = 17;
  REQUIRE(idx.WriteCheckpointInfo(info).ok());
  b = test::ReadBytes(path);
  uint32_t v;
  std::memcpy(&v, &b[96], 4);
  CHECK(v == 11);
  for (int i = 0; i < 5; i++) {
    std::memcpy(&v, &b[100 + 4 * i], 4);
    CHECK(v == uint32_t(100 + i));
  }
  std::memcpy(&v, &b[128], 4);
  CHECK(v == 17);
  for (size_t i = 120; i < 128; i++) CHECK(b[i] == junk[i]);
  for (size_t i = 132; i < 136; i++) CHECK(b[i] == 0);
  Result<CheckpointInfo> back = idx.ReadCheckpointInfo();
  REQUIRE(back.ok());
  CHECK(back->backfill == 11);
  CHECK(back->read_mark[4] == 104);
  CHECK(back->backfill_attempted == 17);
}

TEST_CASE("wal_index: a new Index file grows by whole blocks without holes") {
  TempDir dir;
  const std::string path = dir / "new-shm";
  Index idx = OpenIndex(path);
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK(st.st_size == 0);
  std::vector<uint32_t> pgnos(kFirstBlockPages + 10);
  for (size_t i = 0; i < pgnos.size(); i++) pgnos[i] = uint32_t(i % 700 + 1);
  REQUIRE(idx.Append(1, pgnos, 0).ok());
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK(st.st_size == 2 * kIndexBlockSize);
  CHECK(uint64_t(st.st_blocks) * 512 >= 2 * kIndexBlockSize);  // every page allocated
  // Frame 1's page number sits at byte 136; the first of block 1 at 32768.
  std::vector<uint8_t> b = test::ReadBytes(path);
  uint32_t v;
  std::memcpy(&v, &b[136], 4);
  CHECK(v == 1);
  std::memcpy(&v, &b[kIndexBlockSize], 4);
  CHECK(v == pgnos[kFirstBlockPages]);
  // The hash slot of page 5 in block 0 (5*383 mod 8192, probing) names frame 5.
  uint16_t slot;
  std::memcpy(&slot, &b[kHashPages * 4 + 2 * ((5 * 383) & 8191)], 2);
  CHECK(slot == 5);
}

}  // namespace
}  // namespace litefs::wal
