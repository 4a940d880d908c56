// What the encoder refuses, and how it behaves after a refusal or an I/O error.
#include "ltx/encoder.h"

#include <doctest.h>

#include <string>

#include "ltx/checksum.h"
#include "test_util.h"

namespace litefs::ltx::test {
namespace {

bool Mentions(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

const Header kIncremental{.page_size = 4096,
                          .commit = 10,
                          .min_txid = 2,
                          .max_txid = 2,
                          .pre_apply_checksum = kChecksumFlag | 42};
const Header kSnapshot{.page_size = 4096, .commit = 3, .min_txid = 1, .max_txid = 1};

std::unique_ptr<Encoder> MustBegin(io::Writer& out, const Header& h) {
  Result<std::unique_ptr<Encoder>> enc = Encoder::Begin(out, h);
  REQUIRE_MESSAGE(enc.ok(), enc.message());
  return std::move(enc).value();
}

class FailingWriter final : public io::Writer {
 public:
  Status Write(std::span<const uint8_t>) override { return Status::Error("disk on fire"); }
};

TEST_CASE("Begin refuses an invalid header and writes nothing") {
  io::BufferWriter out;
  Header h = kIncremental;
  h.flags = 0x2;
  Result<std::unique_ptr<Encoder>> enc = Encoder::Begin(out, h);
  REQUIRE_FALSE(enc.ok());
  CHECK(Mentions(enc.status(), "invalid flags: 0x00000002"));
  CHECK(out.data().empty());
}

TEST_CASE("the encoder refuses pages out of order, out of range, the lock page, and wrong sizes") {
  const std::vector<uint8_t> page(4096, 0xab);
  io::BufferWriter out;
  std::unique_ptr<Encoder> enc = MustBegin(out, kIncremental);
  REQUIRE(enc->EncodePage(5, page).ok());
  CHECK(Mentions(enc->EncodePage(3, page), "page 3 out of order after page 5"));
  CHECK(Mentions(enc->EncodePage(5, page), "page 5 out of order after page 5"));
  CHECK(Mentions(enc->EncodePage(0, page), "page number 0"));
  CHECK(Mentions(enc->EncodePage(11, page), "beyond the commit size of 10"));
  CHECK(Mentions(enc->EncodePage(6, std::vector<uint8_t>(512)),
                 "page 6 has 512 bytes, page size is 4096"));
  CHECK(enc->pages_written() == 1);

  // A refused page changes nothing: the encoder carries on.
  REQUIRE(enc->EncodePage(9, page).ok());
  Result<Trailer> trailer = enc->Finish(kChecksumFlag | 7);
  REQUIRE_MESSAGE(trailer.ok(), trailer.message());
  Result<DecodedLtx> d = DecodeAll(out.data());
  REQUIRE_MESSAGE(d.ok(), d.message());
  REQUIRE(d->pages.size() == 2);
  CHECK(d->pages[0].first == 5);
  CHECK(d->pages[1].first == 9);
}

TEST_CASE("the encoder refuses the lock page") {
  const uint32_t lock = LockPgno(65536);
  io::BufferWriter out;
  std::unique_ptr<Encoder> enc = MustBegin(out, Header{.page_size = 65536,
                                                       .commit = lock + 1,
                                                       .min_txid = 2,
                                                       .max_txid = 2,
                                                       .pre_apply_checksum = kChecksumFlag});
  CHECK(Mentions(enc->EncodePage(lock, std::vector<uint8_t>(65536)), "is the lock page"));
  CHECK(enc->EncodePage(lock + 1, std::vector<uint8_t>(65536)).ok());
}

TEST_CASE("the encoder refuses gaps in snapshots and incomplete snapshots") {
  const std::vector<uint8_t> page(4096);
  io::BufferWriter out;
  std::unique_ptr<Encoder> enc = MustBegin(out, kSnapshot);
  CHECK(Mentions(enc->EncodePage(2, page), "expected page 1"));
  REQUIRE(enc->EncodePage(1, page).ok());
  CHECK(Mentions(enc->EncodePage(3, page), "snapshot page 3 out of sequence: expected page 2"));
  REQUIRE(enc->EncodePage(2, page).ok());
  Result<Trailer> early = enc->Finish(kChecksumFlag);
  REQUIRE_FALSE(early.ok());
  CHECK(Mentions(early.status(), "incomplete snapshot: last page is 2, commit is 3 pages"));
  REQUIRE(enc->EncodePage(3, page).ok());
  RollingChecksum sum;
  for (uint32_t pgno = 1; pgno <= 3; pgno++) sum.Toggle(PageChecksum(pgno, page));
  CHECK(enc->Finish(sum.value()).ok());
}

TEST_CASE("Finish refuses a post-apply checksum without the flag, and a second Finish") {
  io::BufferWriter out;
  std::unique_ptr<Encoder> enc = MustBegin(out, kIncremental);
  Result<Trailer> bad = enc->Finish(0x1234);
  REQUIRE_FALSE(bad.ok());
  CHECK(Mentions(bad.status(), "post-apply checksum 0000000000001234"));
  REQUIRE(enc->Finish(kChecksumFlag | 0x1234).ok());
  CHECK(Mentions(enc->Finish(kChecksumFlag | 0x1234).status(), "already finished"));
  CHECK(Mentions(enc->EncodePage(1, std::vector<uint8_t>(4096)), "already finished"));
}

TEST_CASE("a write error is reported, then reported again by every later call") {
  for (uint32_t flags : {0u, kFlagCompressLZ4}) {
    CAPTURE(flags);
    FailingWriter out;
    Header h = kIncremental;
    h.flags = flags;
    // Output is buffered: the failure surfaces when Finish flushes.
    std::unique_ptr<Encoder> enc = MustBegin(out, h);
    REQUIRE(enc->EncodePage(1, std::vector<uint8_t>(4096)).ok());
    Result<Trailer> trailer = enc->Finish(kChecksumFlag);
    REQUIRE_FALSE(trailer.ok());
    CHECK(Mentions(trailer.status(), "disk on fire"));
    CHECK(Mentions(enc->Finish(kChecksumFlag).status(), "disk on fire"));
    CHECK(Mentions(enc->EncodePage(2, std::vector<uint8_t>(4096)), "disk on fire"));
  }
}

TEST_CASE("output is written in large pieces, not one write per page") {
  class CountingWriter final : public io::Writer {
   public:
    Status Write(std::span<const uint8_t> data) override {
      writes++;
      bytes += data.size();
      return Status();
    }
    size_t writes = 0, bytes = 0;
  } out;
  Header h = kIncremental;
  h.commit = 100;
  std::unique_ptr<Encoder> enc = MustBegin(out, h);
  for (uint32_t pgno = 1; pgno <= 100; pgno++)
    REQUIRE(enc->EncodePage(pgno, std::vector<uint8_t>(4096)).ok());
  REQUIRE(enc->Finish(kChecksumFlag).ok());
  CHECK(out.bytes == kHeaderSize + 100 * 4100 + 4 + kTrailerSize);
  CHECK(out.writes <= 3);
}

}  // namespace
}  // namespace litefs::ltx::test
