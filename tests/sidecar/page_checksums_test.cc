// Tests of sidecar/page_checksums and sidecar/db_pages against a real SQLite
// database and against a from-scratch reference computation.
#include "sidecar/page_checksums.h"

#include <doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <random>
#include <vector>

#include "ltx/checksum.h"
#include "ltx/db_file.h"
#include "ltx/io.h"
#include "sidecar/db_pages.h"
#include "sidecar_test_util.h"

namespace litefs {
namespace {

using test::Sqlite;
using test::TempDir;

uint64_t Recompute(const std::vector<uint64_t>& ref) {  // ref[pgno], [0] unused
  uint64_t acc = 0;
  for (size_t p = 1; p < ref.size(); p++) acc ^= ref[p];
  return acc | ltx::kChecksumFlag;
}

TEST_CASE("an empty table is the flag alone") {
  PageChecksums c;
  CHECK(c.value() == ltx::kChecksumFlag);
  CHECK(c.page_count() == 0);
  c.Set(3, 0x8000000000001234);
  CHECK(c.value() != ltx::kChecksumFlag);
  c.Reset(4096);
  CHECK(c.value() == ltx::kChecksumFlag);
  CHECK(c.page_size() == 4096);
  CHECK(c.page_count() == 0);
  c.Truncate(0);
  CHECK(c.value() == ltx::kChecksumFlag);

  TempDir dir;
  test::WriteBytes(dir / "empty.db", {});
  int fd = open((dir / "empty.db").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  Status st = c.Load(fd, 4096, 0);
  close(fd);
  REQUIRE(st.ok());
  CHECK(c.value() == ltx::kChecksumFlag);
  Result<uint64_t> sum = ltx::ChecksumDbPath(dir / "empty.db");
  REQUIRE(sum.ok());
  CHECK(*sum == ltx::kChecksumFlag);
}

TEST_CASE("Load of a real database equals ltx::ChecksumDbPath") {
  TempDir dir;
  const std::string path = dir / "real.db";
  for (int page_size : {512, 4096, 65536}) {
    CAPTURE(page_size);
    unlink(path.c_str());
    {
      Sqlite db(path);
      db.Exec("PRAGMA page_size=" + std::to_string(page_size));
      test::FillTable(db, "t1", 1, 300, 200);
      test::FillTable(db, "t2", 1, 100, 900);
      db.Exec("CREATE INDEX t2b ON t2(b)");
    }
    int fd = open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    Result<DbShape> shape = ReadDbShape(fd, path);
    REQUIRE_MESSAGE(shape.ok(), shape.message());
    CHECK(shape->page_size == uint32_t(page_size));
    CHECK(uint64_t(shape->page_count) * uint32_t(page_size) == test::ReadBytes(path).size());
    CHECK(shape->write_version == 1);
    PageChecksums c;
    Status st = c.Load(fd, shape->page_size, shape->page_count);
    close(fd);
    REQUIRE_MESSAGE(st.ok(), st.message());
    Result<uint64_t> want = ltx::ChecksumDbPath(path);
    REQUIRE(want.ok());
    CHECK(c.value() == *want);
    CHECK(c.page_count() == shape->page_count);
    CHECK(c.page_size() == uint32_t(page_size));

    // And it is the XOR of the page checksums, page by page.
    std::vector<uint8_t> bytes = test::ReadBytes(path);
    uint64_t acc = 0;
    for (uint32_t p = 1; p <= shape->page_count; p++) {
      std::span<const uint8_t> page(bytes.data() + size_t(p - 1) * uint32_t(page_size),
                                    size_t(page_size));
      CHECK(c.Get(p) == ltx::PageChecksum(p, page));
      acc ^= ltx::PageChecksum(p, page);
    }
    CHECK(c.value() == (acc | ltx::kChecksumFlag));
  }
}

TEST_CASE("ReadDbShape: an empty file is an empty database; garbage is refused") {
  TempDir dir;
  test::WriteBytes(dir / "e.db", {});
  int fd = open((dir / "e.db").c_str(), O_RDONLY);
  Result<DbShape> shape = ReadDbShape(fd, dir / "e.db");
  close(fd);
  REQUIRE(shape.ok());
  CHECK(shape->page_count == 0);
  CHECK(shape->page_size == 0);

  test::WriteBytes(dir / "g.db", std::vector<uint8_t>(4096, 'g'));
  fd = open((dir / "g.db").c_str(), O_RDONLY);
  shape = ReadDbShape(fd, dir / "g.db");
  close(fd);
  REQUIRE_FALSE(shape.ok());
  CHECK(shape.message().find("g.db") != std::string::npos);

  test::WriteBytes(dir / "s.db", std::vector<uint8_t>(50, 0));
  fd = open((dir / "s.db").c_str(), O_RDONLY);
  shape = ReadDbShape(fd, dir / "s.db");
  close(fd);
  REQUIRE_FALSE(shape.ok());
  CHECK(shape.message().find("shorter than its header") != std::string::npos);
}

TEST_CASE("ReadDbShape trusts the in-header size only when SQLite would") {
  TempDir dir;
  const std::string path = dir / "shape.db";
  {
    Sqlite db(path);
    test::FillTable(db, "t1", 1, 200, 100);
  }
  std::vector<uint8_t> bytes = test::ReadBytes(path);
  const uint32_t pages = uint32_t(bytes.size() / 4096);
  REQUIRE(pages > 3);
  io::StoreBE32(&bytes[28], 2);  // a smaller in-header size...
  test::WriteBytes(path, bytes);
  auto shape_of = [&] {
    int fd = open(path.c_str(), O_RDONLY);
    Result<DbShape> shape = ReadDbShape(fd, path);
    close(fd);
    REQUIRE_MESSAGE(shape.ok(), shape.message());
    return *shape;
  };
  CHECK(shape_of().page_count == 2);  // ...trusted: version-valid-for matches
  io::StoreBE32(&bytes[92], io::LoadBE32(&bytes[24]) + 1);  // written by a legacy version
  test::WriteBytes(path, bytes);
  CHECK(shape_of().page_count == pages);  // the file size decides
  io::StoreBE32(&bytes[92], io::LoadBE32(&bytes[24]));
  io::StoreBE32(&bytes[28], 0);
  test::WriteBytes(path, bytes);
  CHECK(shape_of().page_count == pages);
}

TEST_CASE("ForEachPage visits pages in order and stops at the first failure") {
  TempDir dir;
  std::vector<uint8_t> bytes(10 * 1024);
  for (size_t i = 0; i < bytes.size(); i++) bytes[i] = uint8_t(i / 1024);
  test::WriteBytes(dir / "p", bytes);
  int fd = open((dir / "p").c_str(), O_RDONLY);
  std::vector<uint32_t> seen;
  Status st = ForEachPage(fd, 1024, 10, [&](uint32_t pgno, std::span<const uint8_t> page) {
    REQUIRE(page.size() == 1024);
    CHECK(page[0] == uint8_t(pgno - 1));
    CHECK(page[1023] == uint8_t(pgno - 1));
    seen.push_back(pgno);
    return Status();
  });
  REQUIRE(st.ok());
  CHECK(seen == std::vector<uint32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  seen.clear();
  st = ForEachPage(fd, 1024, 10, [&](uint32_t pgno, std::span<const uint8_t>) {
    seen.push_back(pgno);
    return pgno == 4 ? Status::Error("stop here") : Status();
  });
  close(fd);
  REQUIRE_FALSE(st.ok());
  CHECK(st.message() == "stop here");
  CHECK(seen.size() == 4);
}

TEST_CASE("Set and Truncate keep value() equal to a from-scratch computation") {
  std::mt19937_64 rng(99);
  PageChecksums c;
  c.Reset(4096);
  std::vector<uint64_t> ref(1, 0);
  auto checksum = [&] { return rng() | ltx::kChecksumFlag; };
  for (int step = 0; step < 20000; step++) {
    uint64_t dice = rng() % 100;
    if (dice < 80) {
      // Update a page, or grow the database by a few pages.
      uint32_t count = uint32_t(ref.size() - 1);
      uint32_t pgno = 1 + uint32_t(rng() % (count + 5));
      uint64_t v = checksum();
      c.Set(pgno, v);
      if (pgno >= ref.size()) ref.resize(size_t(pgno) + 1, 0);
      ref[pgno] = v;
    } else if (dice < 95) {
      uint32_t count = uint32_t(ref.size() - 1);
      uint32_t to = count == 0 ? 0 : uint32_t(rng() % (count + 1));
      c.Truncate(to);
      ref.resize(size_t(to) + 1);
    } else {
      // Truncate to a larger size: new pages are unknown until set.
      uint32_t to = uint32_t(ref.size() - 1) + uint32_t(rng() % 4);
      c.Truncate(to);
      ref.resize(size_t(to) + 1, 0);
    }
    REQUIRE(c.value() == Recompute(ref));
    REQUIRE(c.page_count() == ref.size() - 1);
  }
  for (size_t p = 0; p < ref.size() + 3; p++) CHECK(c.Get(uint32_t(p)) == (p < ref.size() ? ref[p] : 0));
  c.Truncate(0);
  CHECK(c.value() == ltx::kChecksumFlag);
  CHECK(c.page_count() == 0);
}

TEST_CASE("Set and Truncate after Load track a database file being rewritten") {
  TempDir dir;
  const std::string path = dir / "rw.db";
  constexpr uint32_t kPageSize = 1024;
  std::mt19937_64 rng(5);
  std::vector<uint8_t> file(size_t(kPageSize) * 40);
  for (uint8_t& b : file) b = uint8_t(rng());
  test::WriteBytes(path, file);
  int fd = open(path.c_str(), O_RDONLY);
  PageChecksums c;
  REQUIRE(c.Load(fd, kPageSize, 40).ok());
  close(fd);
  auto from_file = [&] {
    uint64_t acc = 0;
    for (size_t p = 1; p <= file.size() / kPageSize; p++) {
      acc ^= ltx::PageChecksum(uint32_t(p), {file.data() + (p - 1) * kPageSize, kPageSize});
    }
    return acc | ltx::kChecksumFlag;
  };
  CHECK(c.value() == from_file());
  for (int step = 0; step < 500; step++) {
    uint32_t pages = uint32_t(file.size() / kPageSize);
    if (rng() % 5 == 0) {
      uint32_t to = 1 + uint32_t(rng() % (pages + 3));
      if (to < pages) {
        file.resize(size_t(to) * kPageSize);
        c.Truncate(to);
      } else {
        // Growth: the new pages are written and set.
        file.resize(size_t(to) * kPageSize);
        c.Truncate(to);
        for (uint32_t p = pages + 1; p <= to; p++) {
          uint8_t* page = file.data() + size_t(p - 1) * kPageSize;
          for (uint32_t i = 0; i < kPageSize; i++) page[i] = uint8_t(rng());
          c.Set(p, ltx::PageChecksum(p, {page, kPageSize}));
        }
      }
    } else {
      uint32_t p = 1 + uint32_t(rng() % pages);
      uint8_t* page = file.data() + size_t(p - 1) * kPageSize;
      page[rng() % kPageSize] ^= uint8_t(1 + rng() % 255);
      c.Set(p, ltx::PageChecksum(p, {page, kPageSize}));
    }
    REQUIRE(c.value() == from_file());
  }
}

}  // namespace
}  // namespace litefs
