// SQLite header parsing and the rolling checksum of a database file.
#include "ltx/db_file.h"

#include <doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "ltx/checksum.h"
#include "test_util.h"

namespace litefs::ltx::test {
namespace {

bool Mentions(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

TEST_CASE("ParseDbHeader reads the golden databases") {
  const std::vector<uint8_t> db = Golden("small4k.db");
  Result<DbHeader> h = ParseDbHeader(db);
  REQUIRE_MESSAGE(h.ok(), h.message());
  CHECK(h->page_size == 4096);
  CHECK(h->page_count == 8);
  CHECK(h->page_count_valid);
  CHECK(h->write_version == 1);  // rollback journal
  CHECK(h->read_version == 1);

  const std::vector<uint8_t> v2 = Golden("small4k-v2.db");
  Result<DbHeader> h2 = ParseDbHeader(v2);
  REQUIRE(h2.ok());
  CHECK(h2->change_counter == h->change_counter + 1);

  Result<DbHeader> small = ParseDbHeader(Golden("small512.db"));
  REQUIRE(small.ok());
  CHECK(small->page_size == 512);
  CHECK(small->page_count == 15);
}

TEST_CASE("ParseDbHeader: page size 1 means 65536; bad sizes, magic and short input are refused") {
  std::vector<uint8_t> db = Golden("small4k.db");
  db.resize(kDbHeaderSize);
  auto with_page_size = [&](uint16_t raw) {
    std::vector<uint8_t> b = db;
    io::StoreBE16(b.data() + 16, raw);
    return ParseDbHeader(b);
  };
  CHECK(with_page_size(1)->page_size == 65536);
  CHECK(with_page_size(512)->page_size == 512);
  CHECK(with_page_size(32768)->page_size == 32768);
  for (uint16_t raw : {0, 2, 256, 1000, 4097}) {
    CAPTURE(raw);
    CHECK(Mentions(with_page_size(raw).status(), "page size " + std::to_string(raw)));
  }
  CHECK(Mentions(ParseDbHeader(std::span(db).first(99)).status(), "too short"));
  std::vector<uint8_t> bad_magic = db;
  bad_magic[15] = ' ';
  CHECK(Mentions(ParseDbHeader(bad_magic).status(), "not an SQLite database"));
}

TEST_CASE("ParseDbHeader trusts the page count only when nonzero and offset 24 equals offset 92") {
  std::vector<uint8_t> db = Golden("small4k.db");
  REQUIRE(ParseDbHeader(db)->page_count_valid);
  std::vector<uint8_t> stale = db;
  io::StoreBE32(stale.data() + 92, io::LoadBE32(db.data() + 24) - 1);
  CHECK_FALSE(ParseDbHeader(stale)->page_count_valid);
  std::vector<uint8_t> zero = db;
  io::StoreBE32(zero.data() + 28, 0);
  CHECK_FALSE(ParseDbHeader(zero)->page_count_valid);
}

TEST_CASE("ChecksumDbPath equals the README's `ltx checksum` values") {
  CHECK(*ChecksumDbPath(GoldenPath("small4k.db")) == 0x837729c5a4821b1a);
  CHECK(*ChecksumDbPath(GoldenPath("small4k-v2.db")) == 0xee32fe3749230f90);
  CHECK(*ChecksumDbPath(GoldenPath("small512.db")) == 0x97dd9846327860dd);
}

TEST_CASE("ChecksumDbFile checksums the first page_count pages") {
  const int fd = open(GoldenPath("small4k.db").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  CHECK(*ChecksumDbFile(fd, 4096, 8) == 0x837729c5a4821b1a);
  CHECK(*ChecksumDbFile(fd, 4096, 0) == kChecksumFlag);
  const std::vector<uint8_t> db = Golden("small4k.db");
  RollingChecksum first3;
  for (uint32_t pgno = 1; pgno <= 3; pgno++)
    first3.Toggle(PageChecksum(pgno, std::span(db).subspan((pgno - 1) * 4096, 4096)));
  CHECK(*ChecksumDbFile(fd, 4096, 3) == first3.value());
  Result<uint64_t> past_end = ChecksumDbFile(fd, 4096, 9);
  REQUIRE_FALSE(past_end.ok());
  CHECK(Mentions(past_end.status(), "holds 8 whole pages, expected 9"));
  CHECK(Mentions(ChecksumDbFile(fd, 1000, 1).status(), "invalid page size 1000"));
  close(fd);
}

TEST_CASE("ChecksumDbFile skips the lock page (1 GiB sparse file)") {
  // 64 KiB pages 1..16386, all zero except the lock page 16385, which is
  // filled with 0xff and must not count. The expected value was computed
  // once with a bitwise CRC over the zero pages 1..16384 and 16386.
  const uint32_t page_size = 65536, lock = LockPgno(page_size);
  REQUIRE(lock == 16385);
  TempFile file;
  REQUIRE(ftruncate(file.fd(), off_t(lock + 1) * page_size) == 0);
  const std::vector<uint8_t> junk(page_size, 0xff);
  REQUIRE(pwrite(file.fd(), junk.data(), junk.size(), off_t(lock - 1) * page_size) ==
          ssize_t(page_size));
  Result<uint64_t> sum = ChecksumDbFile(file.fd(), page_size, lock + 1);
  REQUIRE_MESSAGE(sum.ok(), sum.message());
  CHECK(*sum == 0xfa5e2a4dfdf12cb0);
}

TEST_CASE("ChecksumDbPath: empty file, missing file, header count versus file size") {
  TempFile empty;
  CHECK(*ChecksumDbPath(empty.path()) == kChecksumFlag);

  Result<uint64_t> missing = ChecksumDbPath("/nonexistent/litefs/test.db");
  REQUIRE_FALSE(missing.ok());
  CHECK(Mentions(missing.status(), "open /nonexistent/litefs/test.db"));

  const std::vector<uint8_t> db = Golden("small4k.db");
  {  // Pages past the valid header count are not part of the database.
    TempFile longer;
    longer.Write(db);
    longer.Write(std::vector<uint8_t>(4096, 0x55));
    CHECK(*ChecksumDbPath(longer.path()) == 0x837729c5a4821b1a);
  }
  {  // A stale header count: the file size decides, and it must be whole pages.
    std::vector<uint8_t> stale = db;
    io::StoreBE32(stale.data() + 92, 0);
    TempFile file;
    file.Write(stale);
    Result<uint64_t> whole = ChecksumDbPath(file.path());
    REQUIRE(whole.ok());
    CHECK(*whole == *ChecksumDbFile(file.fd(), 4096, 8));
    file.Write(std::vector<uint8_t>(100));
    CHECK(Mentions(ChecksumDbPath(file.path()).status(), "not a multiple of the page size 4096"));
  }
  {  // A valid header count beyond the end of the file.
    TempFile truncated;
    truncated.Write(std::span(db).first(4 * 4096));
    CHECK(Mentions(ChecksumDbPath(truncated.path()).status(), "holds 4 whole pages, expected 8"));
  }
  {
    TempFile garbage;
    garbage.Write(std::vector<uint8_t>(50, 'x'));
    CHECK(Mentions(ChecksumDbPath(garbage.path()).status(), "not an SQLite database"));
  }
}

}  // namespace
}  // namespace litefs::ltx::test
