// LTX header and trailer: byte layout and the validation rules of
// superfly/ltx v0.3.14.
#include "ltx/header.h"

#include <doctest.h>

#include <string>

#include "ltx/checksum.h"
#include "test_util.h"

namespace litefs::ltx {
namespace {

bool Mentions(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

const Header kValid{.page_size = 4096,
                    .commit = 8,
                    .min_txid = 2,
                    .max_txid = 2,
                    .timestamp_ms = 1700000060456,
                    .pre_apply_checksum = 0x837729c5a4821b1a};

TEST_CASE("the header of small4k-incr-txid2.ltx encodes to the README's bytes") {
  const auto b = kValid.Encode();
  const uint8_t want[48] = {0x4c, 0x54, 0x58, 0x31, 0,    0,    0,    0,    0,    0,    0x10, 0,
                            0,    0,    0,    8,    0,    0,    0,    0,    0,    0,    0,    2,
                            0,    0,    0,    0,    0,    0,    0,    2,    0,    0,    0x01, 0x8b,
                            0xcf, 0xe6, 0x54, 0x28, 0x83, 0x77, 0x29, 0xc5, 0xa4, 0x82, 0x1b, 0x1a};
  CHECK(std::equal(want, want + 48, b.begin()));
  for (size_t i = 48; i < kHeaderSize; i++) CHECK(b[i] == 0);
  const std::vector<uint8_t> golden = test::Golden("small4k-incr-txid2.ltx");
  CHECK(std::equal(b.begin(), b.end(), golden.begin()));
}

TEST_CASE("every header field survives Encode then Decode") {
  const Header h{.flags = kFlagCompressLZ4,
                 .page_size = 65536,
                 .commit = 0x01020304,
                 .min_txid = 0x1112131415161718,
                 .max_txid = 0x2122232425262728,
                 .timestamp_ms = -5,
                 .pre_apply_checksum = 0x8132333435363738,
                 .wal_offset = 0x4142434445464748,
                 .wal_size = 0x5152535455565758,
                 .wal_salt1 = 0x61626364,
                 .wal_salt2 = 0x71727374,
                 .node_id = 0x8182838485868788};
  REQUIRE(h.Validate().ok());
  Result<Header> back = Header::Decode(h.Encode());
  REQUIRE_MESSAGE(back.ok(), back.message());
  CHECK(back->flags == h.flags);
  CHECK(back->page_size == h.page_size);
  CHECK(back->commit == h.commit);
  CHECK(back->min_txid == h.min_txid);
  CHECK(back->max_txid == h.max_txid);
  CHECK(back->timestamp_ms == h.timestamp_ms);
  CHECK(back->pre_apply_checksum == h.pre_apply_checksum);
  CHECK(back->wal_offset == h.wal_offset);
  CHECK(back->wal_size == h.wal_size);
  CHECK(back->wal_salt1 == h.wal_salt1);
  CHECK(back->wal_salt2 == h.wal_salt2);
  CHECK(back->node_id == h.node_id);
  CHECK(back->Compressed());
  CHECK_FALSE(back->IsSnapshot());
}

TEST_CASE("Validate enforces the v0.3.14 rules and names the bad field") {
  CHECK(kValid.Validate().ok());
  auto with = [](auto change) {
    Header h = kValid;
    change(h);
    return h.Validate();
  };
  CHECK(Mentions(with([](Header& h) { h.flags = 0x2; }), "invalid flags: 0x00000002"));
  CHECK(Mentions(with([](Header& h) { h.flags = 0x80000001; }), "invalid flags: 0x80000001"));
  for (uint32_t size : {0u, 256u, 1000u, 4095u, 131072u}) {
    CAPTURE(size);
    CHECK(Mentions(with([size](Header& h) { h.page_size = size; }),
                   "invalid page size: " + std::to_string(size)));
  }
  for (uint32_t size = 512; size <= 65536; size *= 2)
    CHECK(with([size](Header& h) { h.page_size = size; }).ok());
  CHECK(Mentions(with([](Header& h) { h.min_txid = 0; }), "minimum transaction id required"));
  CHECK(Mentions(with([](Header& h) { h.max_txid = 0; }), "maximum transaction id required"));
  CHECK(Mentions(with([](Header& h) { h.min_txid = 3; }),
                 "transaction ids out of order: min 3 > max 2"));
  CHECK(Mentions(with([](Header& h) { h.wal_offset = -1; }), "wal offset cannot be negative"));
  CHECK(Mentions(with([](Header& h) { h.wal_size = -1; }), "wal size cannot be negative"));
  CHECK(
      Mentions(with([](Header& h) { h.wal_salt1 = 7; }), "wal offset required if wal salt exists"));
  CHECK(Mentions(with([](Header& h) { h.wal_salt2 = 7, h.wal_offset = 32; }),
                 "wal size required if wal salt exists"));
  CHECK(Mentions(with([](Header& h) { h.wal_offset = 32; }),
                 "wal size required if wal offset exists"));
  CHECK(Mentions(with([](Header& h) { h.wal_size = 4128; }),
                 "wal offset required if wal size exists"));
  CHECK(with([](Header& h) {
          h.wal_offset = 32, h.wal_size = 4128, h.wal_salt1 = 1, h.wal_salt2 = 2;
        }).ok());
  CHECK(Mentions(with([](Header& h) { h.min_txid = h.max_txid = 1; }),
                 "pre-apply checksum must be zero on snapshots"));
  CHECK(with([](Header& h) { h.min_txid = 1, h.pre_apply_checksum = 0; }).ok());
  CHECK(Mentions(with([](Header& h) { h.pre_apply_checksum = 0; }),
                 "pre-apply checksum required on non-snapshot"));
  CHECK(Mentions(with([](Header& h) { h.pre_apply_checksum = 0x037729c5a4821b1a; }),
                 "invalid pre-apply checksum format"));
  CHECK(with([](Header& h) { h.commit = 0; }).ok());  // deletion marker
}

TEST_CASE("Decode refuses bad magic, short input and invalid headers") {
  auto bytes = kValid.Encode();
  CHECK(Header::Decode(bytes).ok());
  CHECK(Mentions(Header::Decode(std::span(bytes).first(99)).status(), "too short"));
  bytes[3] = '2';
  CHECK(Mentions(Header::Decode(bytes).status(), "magic"));
  Header bad = kValid;
  bad.page_size = 3000;
  CHECK(Mentions(Header::Decode(bad.Encode()).status(), "invalid page size: 3000"));
}

TEST_CASE("trailer: post-apply checksum then file checksum, big-endian") {
  const Trailer t{.post_apply_checksum = 0x0102030405060708, .file_checksum = 0x1112131415161718};
  const auto b = t.Encode();
  CHECK(b[0] == 0x01);
  CHECK(b[7] == 0x08);
  CHECK(b[8] == 0x11);
  CHECK(b[15] == 0x18);
  const Trailer back = Trailer::Decode(b);
  CHECK(back.post_apply_checksum == t.post_apply_checksum);
  CHECK(back.file_checksum == t.file_checksum);
}

}  // namespace
}  // namespace litefs::ltx
