// Tests of sidecar/pos_file: readers of `<db>-pos` never see it torn or
// missing while it is rewritten, and a reader holding the previous file open
// keeps reading what it opened.
#include "sidecar/pos_file.h"

#include <doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <thread>

#include "sidecar/fsutil.h"
#include "sidecar_test_util.h"

namespace litefs {
namespace {

using test::TempDir;

// Position i, with a checksum derived from the TXID so that a mix of two
// positions is detectable.
std::string PosText(uint64_t txid) {
  char buf[64];
  snprintf(buf, sizeof buf, "%016" PRIx64 "/%016" PRIx64 "\n", txid, uint64_t(txid * 0x9E3779B97F4A7C15ull));
  return buf;
}

// The TXID of `text` if it is a whole, consistent position; 0 otherwise.
uint64_t ParsePosText(const std::string& text) {
  uint64_t txid = 0, checksum = 0;
  if (text.size() != 34 || sscanf(text.c_str(), "%16" SCNx64 "/%16" SCNx64, &txid, &checksum) != 2) return 0;
  return PosText(txid) == text ? txid : 0;
}

std::string ReadAt(int fd) {
  char buf[64];
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  return n < 0 ? std::string() : std::string(buf, size_t(n));
}

TEST_CASE("pos file: concurrent readers never see it torn, missing or going back") {
  TempDir dir;
  PosFile pos(dir / "db-pos");
  REQUIRE(pos.Write(PosText(1), nullptr).ok());
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0}, bad{0};
  auto reader = [&] {
    uint64_t last = 0;
    while (!done.load()) {
      int fd = open((dir / "db-pos").c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        bad++;  // missing
        continue;
      }
      uint64_t txid = ParsePosText(ReadAt(fd));
      close(fd);
      if (txid == 0 || txid < last) bad++;
      last = txid;
      reads++;
    }
  };
  std::thread r1(reader), r2(reader);
  for (uint64_t txid = 2; txid <= 3000; txid++) REQUIRE(pos.Write(PosText(txid), nullptr).ok());
  done = true;
  r1.join();
  r2.join();
  CHECK(bad.load() == 0);
  CHECK(reads.load() > 0);
  CHECK(test::ReadText(dir / "db-pos") == PosText(3000));
}

TEST_CASE("pos file: a reader holding the file keeps its content") {
  TempDir dir;
  PosFile pos(dir / "db-pos");
  REQUIRE(pos.Write(PosText(1), nullptr).ok());
  REQUIRE(pos.Write(PosText(2), nullptr).ok());
  const uint64_t created_by_swap = pos.swaps();  // the first write has nothing to rewrite
  int held = open((dir / "db-pos").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(held >= 0);
  // The held file cannot be rewritten in place (the lease is refused): the
  // spare is swapped in, and the held file, now the spare, is left alone.
  for (uint64_t txid = 3; txid <= 6; txid++) {
    REQUIRE(pos.Write(PosText(txid), nullptr).ok());
    CHECK(ReadAt(held) == PosText(2));
    CHECK(test::ReadText(dir / "db-pos") == PosText(txid));
  }
  CHECK(pos.swaps() == created_by_swap + 1);
  CHECK(pos.fallbacks() == 0);
  // The spare is still held at the next swap: then the old way.
  int held_too = open((dir / "db-pos").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(held_too >= 0);
  REQUIRE(pos.Write(PosText(7), nullptr).ok());
  CHECK(pos.fallbacks() == 1);
  CHECK(ReadAt(held) == PosText(2));
  CHECK(ReadAt(held_too) == PosText(6));
  CHECK(test::ReadText(dir / "db-pos") == PosText(7));
  close(held);
  close(held_too);
  // Once released, the file is rewritten in place again.
  const uint64_t swaps = pos.swaps(), fallbacks = pos.fallbacks();
  for (uint64_t txid = 8; txid <= 12; txid++) REQUIRE(pos.Write(PosText(txid), nullptr).ok());
  CHECK(pos.swaps() == swaps);
  CHECK(pos.fallbacks() == fallbacks);
  CHECK(test::ReadText(dir / "db-pos") == PosText(12));
}

TEST_CASE("pos file: rewritten in place, keeping its inode and mode, with the mtime given") {
  TempDir dir;
  PosFile pos(dir / "db-pos");
  struct timespec mtime = {1700000000, 123000000};
  REQUIRE(pos.Write(PosText(1), &mtime).ok());
  const uint64_t created_by_swap = pos.swaps();
  struct stat a;
  REQUIRE(stat((dir / "db-pos").c_str(), &a) == 0);
  for (uint64_t txid = 2; txid <= 5; txid++) REQUIRE(pos.Write(PosText(txid), &mtime).ok());
  struct stat a2;
  REQUIRE(stat((dir / "db-pos").c_str(), &a2) == 0);
  CHECK(a2.st_ino == a.st_ino);
  CHECK((a2.st_mode & 0777) == 0644);
  CHECK(a2.st_mtim.tv_sec == mtime.tv_sec);
  CHECK(a2.st_mtim.tv_nsec == mtime.tv_nsec);
  CHECK(pos.swaps() == created_by_swap);
  CHECK(pos.fallbacks() == 0);
  CHECK(test::ReadText(dir / "db-pos") == PosText(5));
}

TEST_CASE("pos file: deleted or replaced behind its back, it is written anew") {
  TempDir dir;
  PosFile pos(dir / "db-pos");
  REQUIRE(pos.Write(PosText(1), nullptr).ok());
  REQUIRE(pos.Write(PosText(2), nullptr).ok());
  REQUIRE(unlink((dir / "db-pos").c_str()) == 0);
  REQUIRE(pos.Write(PosText(3), nullptr).ok());
  CHECK(test::ReadText(dir / "db-pos") == PosText(3));
  REQUIRE(fs::WriteFileAtomic(dir / "db-pos", "someone else's\n", false, 0644, nullptr).ok());
  REQUIRE(pos.Write(PosText(4), nullptr).ok());
  CHECK(test::ReadText(dir / "db-pos") == PosText(4));
  REQUIRE(pos.Write(PosText(5), nullptr).ok());
  CHECK(test::ReadText(dir / "db-pos") == PosText(5));
}

TEST_CASE("pos file: a longer old content is cut to the new one") {
  TempDir dir;
  REQUIRE(fs::WriteFileAtomic(dir / "db-pos", PosText(1) + "trailing garbage\n", false, 0644, nullptr).ok());
  PosFile pos(dir / "db-pos");
  REQUIRE(pos.Write(PosText(2), nullptr).ok());
  CHECK(test::ReadText(dir / "db-pos") == PosText(2));
}

}  // namespace
}  // namespace litefs
