// CRC-64/ISO, page checksums, the lock page, and the rolling checksum.
#include "ltx/checksum.h"

#include <doctest.h>

#include <string_view>
#include <vector>

namespace litefs::ltx {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Bit-at-a-time CRC-64/ISO, the definition the table version must match.
uint64_t ReferenceCrc64(std::span<const uint8_t> data) {
  uint64_t crc = ~uint64_t(0);
  for (uint8_t b : data) {
    crc ^= b;
    for (int i = 0; i < 8; i++) crc = (crc & 1) ? (crc >> 1) ^ 0xD800000000000000ull : crc >> 1;
  }
  return ~crc;
}

std::vector<uint8_t> Noise(size_t n) {
  std::vector<uint8_t> v(n);
  uint64_t x = 0x243F6A8885A308D3;
  for (auto& b : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    b = uint8_t(x >> 24);
  }
  return v;
}

TEST_CASE("CRC-64/ISO check value") {
  CHECK(Crc64(0, Bytes("123456789")) == 0xb90956c775a41001);
  CHECK(Crc64(0, {}) == 0);
  CHECK(ReferenceCrc64(Bytes("123456789")) == 0xb90956c775a41001);
}

TEST_CASE("the slicing-by-8 CRC equals the bitwise one for every length and alignment") {
  const std::vector<uint8_t> data = Noise(4096 + 64);
  for (size_t offset = 0; offset < 8; offset++) {
    for (size_t len = 0; len <= 80; len++) {
      CAPTURE(offset);
      CAPTURE(len);
      auto piece = std::span(data).subspan(offset, len);
      REQUIRE(Crc64(0, piece) == ReferenceCrc64(piece));
    }
  }
  CHECK(Crc64(0, data) == ReferenceCrc64(data));
}

TEST_CASE("the CRC continues across pieces") {
  const std::vector<uint8_t> data = Noise(1000);
  const uint64_t whole = Crc64(0, data);
  for (size_t split :
       {size_t(0), size_t(1), size_t(7), size_t(8), size_t(333), size_t(999), size_t(1000)}) {
    CAPTURE(split);
    CHECK(Crc64(Crc64(0, std::span(data).first(split)), std::span(data).subspan(split)) == whole);
  }
}

TEST_CASE("page checksum = CRC(pgno BE || page) with the flag") {
  const std::vector<uint8_t> page = Noise(4096);
  std::vector<uint8_t> framed = {0x00, 0x01, 0x02, 0x03};
  framed.insert(framed.end(), page.begin(), page.end());
  const uint64_t want = ReferenceCrc64(framed) | kChecksumFlag;
  CHECK(PageChecksum(0x00010203, page) == want);
  CHECK(PageChecksum(0x00010204, page) != want);
  CHECK((PageChecksum(1, page) & kChecksumFlag) != 0);
}

TEST_CASE("the lock page holds byte 0x40000000") {
  CHECK(LockPgno(512) == 2097153);
  CHECK(LockPgno(4096) == 262145);
  CHECK(LockPgno(65536) == 16385);
}

TEST_CASE("rolling checksum: empty is the flag, toggling twice undoes") {
  RollingChecksum sum;
  CHECK(sum.value() == kChecksumFlag);
  sum.Toggle(0x8000000000000005);
  sum.Toggle(0x8000000000000003);
  CHECK(sum.value() == (kChecksumFlag | 6));
  sum.Toggle(0x8000000000000005);
  sum.Toggle(0x8000000000000003);
  CHECK(sum.value() == kChecksumFlag);
}

}  // namespace
}  // namespace litefs::ltx
