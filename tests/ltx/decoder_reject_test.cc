// Hand-built LTX files that break one rule each: the decoder must refuse them
// with an error naming the rule, even when the file checksum is right.
#include <doctest.h>

#include <string>

#include "ltx/checksum.h"
#include "ltx/decoder.h"
#include "ltx/pos.h"
#include "test_util.h"

namespace litefs::ltx::test {
namespace {

bool Mentions(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

// Header (encoded as is, never validated), frames for `pgnos` with pages
// filled with the page number, terminator, trailer with a correct file checksum.
std::vector<uint8_t> RawLtx(const Header& h, const std::vector<uint32_t>& pgnos,
                            uint64_t post_apply) {
  std::vector<uint8_t> out;
  const auto header = h.Encode();
  out.insert(out.end(), header.begin(), header.end());
  for (uint32_t pgno : pgnos) {
    uint8_t be[4];
    io::StoreBE32(be, pgno);
    out.insert(out.end(), be, be + 4);
    out.insert(out.end(), h.page_size, uint8_t(pgno));
  }
  out.insert(out.end(), 4, 0);
  Trailer t{.post_apply_checksum = post_apply};
  auto trailer = t.Encode();
  out.insert(out.end(), trailer.begin(), trailer.begin() + 8);
  t.file_checksum = Crc64(0, out) | kChecksumFlag;
  trailer = t.Encode();
  out.insert(out.end(), trailer.begin() + 8, trailer.end());
  return out;
}

uint64_t SnapshotChecksum(const Header& h, const std::vector<uint32_t>& pgnos) {
  RollingChecksum sum;
  for (uint32_t pgno : pgnos)
    sum.Toggle(PageChecksum(pgno, std::vector<uint8_t>(h.page_size, uint8_t(pgno))));
  return sum.value();
}

const Header kIncremental{.page_size = 512,
                          .commit = 10,
                          .min_txid = 3,
                          .max_txid = 4,
                          .pre_apply_checksum = kChecksumFlag | 99};
const Header kSnapshot{.page_size = 512, .commit = 3, .min_txid = 1, .max_txid = 2};

Status DecodeStatus(const std::vector<uint8_t>& bytes) {
  Result<DecodedLtx> d = DecodeAll(bytes);
  return d.ok() ? Status() : d.status();
}

TEST_CASE("the hand-built files are valid when they break no rule") {
  CHECK(DecodeStatus(RawLtx(kIncremental, {2, 5, 10}, kChecksumFlag | 1)).ok());
  CHECK(DecodeStatus(RawLtx(kSnapshot, {1, 2, 3}, SnapshotChecksum(kSnapshot, {1, 2, 3}))).ok());
}

TEST_CASE("the decoder refuses bad page order in incremental files") {
  CHECK(Mentions(DecodeStatus(RawLtx(kIncremental, {2, 1}, kChecksumFlag)),
                 "page 1 out of order after page 2"));
  CHECK(Mentions(DecodeStatus(RawLtx(kIncremental, {4, 4}, kChecksumFlag)),
                 "page 4 out of order after page 4"));
  CHECK(Mentions(DecodeStatus(RawLtx(kIncremental, {11}, kChecksumFlag)),
                 "page 11 is beyond the commit size of 10"));
}

TEST_CASE("the decoder refuses the lock page before reading its data") {
  const uint32_t lock = LockPgno(65536);
  const Header h{.page_size = 65536,
                 .commit = lock + 1,
                 .min_txid = 2,
                 .max_txid = 2,
                 .pre_apply_checksum = kChecksumFlag};
  std::vector<uint8_t> bytes = RawLtx(h, {lock}, kChecksumFlag);
  bytes.resize(kHeaderSize + 4);  // no page data follows: the page number alone must be refused
  CHECK(Mentions(DecodeStatus(bytes), "page " + std::to_string(lock) + " is the lock page"));
}

TEST_CASE("the decoder refuses gapped and incomplete snapshots") {
  CHECK(Mentions(DecodeStatus(RawLtx(kSnapshot, {2, 3}, kChecksumFlag)), "expected page 1"));
  CHECK(Mentions(DecodeStatus(RawLtx(kSnapshot, {1, 3}, kChecksumFlag)),
                 "snapshot page 3 out of sequence"));
  CHECK(Mentions(DecodeStatus(RawLtx(kSnapshot, {1, 2}, SnapshotChecksum(kSnapshot, {1, 2}))),
                 "incomplete snapshot: last page is 2, commit is 3 pages"));
}

TEST_CASE("the decoder recomputes a snapshot's post-apply checksum") {
  const uint64_t right = SnapshotChecksum(kSnapshot, {1, 2, 3});
  const Status s = DecodeStatus(RawLtx(kSnapshot, {1, 2, 3}, right ^ 1));
  CHECK(Mentions(s, "post-apply checksum mismatch: computed " + FormatChecksum(right)));
  CHECK(Mentions(s, "trailer says " + FormatChecksum(right ^ 1)));
}

TEST_CASE("the decoder refuses a post-apply checksum without the flag") {
  CHECK(Mentions(DecodeStatus(RawLtx(kIncremental, {2}, 0x1234)), "invalid post-apply checksum"));
}

TEST_CASE("the decoder refuses bad headers, naming the field") {
  std::vector<uint8_t> bytes = RawLtx(kIncremental, {2}, kChecksumFlag);
  bytes[0] = 'X';
  CHECK(Mentions(DecodeStatus(bytes), "magic"));

  Header h = kIncremental;
  h.flags = 0x80;
  CHECK(Mentions(DecodeStatus(RawLtx(h, {2}, kChecksumFlag)), "invalid flags: 0x00000080"));
  h = kIncremental;
  h.page_size = 1000;
  CHECK(Mentions(DecodeStatus(RawLtx(h, {}, kChecksumFlag)), "invalid page size: 1000"));
  h = kIncremental;
  h.pre_apply_checksum = 0;
  CHECK(Mentions(DecodeStatus(RawLtx(h, {2}, kChecksumFlag)), "pre-apply checksum required"));
}

TEST_CASE(
    "decoder call order: Finish too early fails, NextPage after the end returns 0, errors stick") {
  const std::vector<uint8_t> good = RawLtx(kIncremental, {2}, kChecksumFlag);
  io::BufferReader reader(good);
  Result<std::unique_ptr<Decoder>> dec = Decoder::Open(reader);
  REQUIRE_MESSAGE(dec.ok(), dec.message());
  CHECK(Mentions((*dec)->Finish().status(), "before NextPage reached the end"));
  std::vector<uint8_t> page;
  CHECK(*(*dec)->NextPage(page) == 2);
  CHECK(page == std::vector<uint8_t>(512, 2));
  CHECK(*(*dec)->NextPage(page) == 0);
  CHECK(*(*dec)->NextPage(page) == 0);
  CHECK((*dec)->Finish().ok());
  CHECK(Mentions((*dec)->Finish().status(), "already finished"));

  const std::vector<uint8_t> bad = RawLtx(kIncremental, {3, 2}, kChecksumFlag);
  io::BufferReader bad_reader(bad);
  dec = Decoder::Open(bad_reader);
  REQUIRE_MESSAGE(dec.ok(), dec.message());
  CHECK(*(*dec)->NextPage(page) == 3);
  CHECK(Mentions((*dec)->NextPage(page).status(), "out of order"));
  CHECK(Mentions((*dec)->NextPage(page).status(), "out of order"));
  CHECK(Mentions((*dec)->Finish().status(), "out of order"));
}

TEST_CASE("Verify returns the header and trailer of a good file and the error of a bad one") {
  const std::vector<uint8_t> good = Golden("small4k-incr-txid2.lz4.ltx");
  io::BufferReader reader(good);
  Result<std::pair<Header, Trailer>> v = Verify(reader);
  REQUIRE_MESSAGE(v.ok(), v.message());
  CHECK(v->first.min_txid == 2);
  CHECK(v->second.file_checksum == 0x88bcd1b851e9bcff);

  const std::vector<uint8_t> bad = Golden("small4k-snapshot.corrupt.ltx");
  io::BufferReader bad_reader(bad);
  CHECK(Mentions(Verify(bad_reader).status(), "file checksum mismatch"));
}

}  // namespace
}  // namespace litefs::ltx::test
