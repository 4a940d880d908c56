// Tests of sidecar/stream_protocol: the position map a replica POSTs and the
// frames of the replication stream (reference litefs-behaviour §1.3).
#include "sidecar/stream_protocol.h"

#include <doctest.h>

#include <random>
#include <string>
#include <vector>

namespace litefs::stream {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string Hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

// ---- position map -----------------------------------------------------------

TEST_CASE("EncodePosMap: exact bytes of a small example, sorted by name") {
  PosMap m;
  m["b.db"] = {2, 0x8000000000000003};
  m["a"] = {0x0102030405060708, 0x8877665544332211};
  // u32 count | per entry sorted by name: u32 len, name, u64 txid, u64 checksum (all BE)
  const std::string want =
      "00000002"
      "00000001" "61" "0102030405060708" "8877665544332211"
      "00000004" "622e6462" "0000000000000002" "8000000000000003";
  std::string got = EncodePosMap(m);
  CHECK(Hex(got) == want);
  CHECK(Hex(EncodePosMap({})) == "00000000");
}

TEST_CASE("DecodePosMap round trip") {
  PosMap m;
  m["zeta.db"] = {99, 0x8000000000000001};
  m["alpha.db"] = {1, 0x8123456789abcdef};
  m["Mixed Case.db"] = {0, 0};
  m[std::string(kMaxNameSize, 'n')] = {~uint64_t(0), ~uint64_t(0)};
  std::string wire = EncodePosMap(m);
  Result<PosMap> got = DecodePosMap(Bytes(wire));
  REQUIRE_MESSAGE(got.ok(), got.message());
  CHECK(*got == m);
  // Byte order of names: "Mixed Case.db" < "alpha.db" < "nnn..." < "zeta.db".
  CHECK(wire.compare(8, 13, "Mixed Case.db") == 0);

  Result<PosMap> empty = DecodePosMap(Bytes(EncodePosMap({})));
  REQUIRE(empty.ok());
  CHECK(empty->empty());
}

TEST_CASE("DecodePosMap accepts unsorted entries and sorts them") {
  // "b" then "a": LiteFS sends them sorted, but the map is keyed anyway.
  std::string wire;
  auto u32 = [&](uint32_t v) {
    for (int i = 3; i >= 0; i--) wire.push_back(char(v >> (8 * i)));
  };
  auto u64 = [&](uint64_t v) {
    for (int i = 7; i >= 0; i--) wire.push_back(char(v >> (8 * i)));
  };
  u32(2);
  u32(1); wire += "b"; u64(5); u64(0x8000000000000005);
  u32(1); wire += "a"; u64(6); u64(0x8000000000000006);
  Result<PosMap> got = DecodePosMap(Bytes(wire));
  REQUIRE_MESSAGE(got.ok(), got.message());
  REQUIRE(got->size() == 2);
  CHECK(got->begin()->first == "a");
  CHECK((*got)["b"] == ltx::Pos{5, 0x8000000000000005});
  // Re-encoding puts them in order.
  CHECK(EncodePosMap(*got).substr(8, 1) == "a");
}

TEST_CASE("DecodePosMap rejects truncation, trailing bytes and oversized names") {
  PosMap m;
  m["one.db"] = {1, 0x8000000000000001};
  m["two.db"] = {2, 0x8000000000000002};
  std::string wire = EncodePosMap(m);
  for (size_t keep = 0; keep < wire.size(); keep++) {
    CAPTURE(keep);
    Result<PosMap> r = DecodePosMap(Bytes(wire).first(keep));
    REQUIRE_FALSE(r.ok());
    CHECK(r.message().find("truncated") != std::string::npos);
  }
  Result<PosMap> trailing = DecodePosMap(Bytes(wire + std::string(1, '\0')));
  REQUIRE_FALSE(trailing.ok());
  CHECK(trailing.message().find("trailing") != std::string::npos);

  std::string big = std::string("\x00\x00\x00\x01", 4) + std::string("\x00\x00\x04\x01", 4) +
                    std::string(kMaxNameSize + 1 + 16, 'x');
  Result<PosMap> r = DecodePosMap(Bytes(big));
  REQUIRE_FALSE(r.ok());
  CHECK(r.message().find("name too long") != std::string::npos);

  // A count far beyond what the body holds fails without trying to allocate it.
  Result<PosMap> huge = DecodePosMap(Bytes(std::string("\xff\xff\xff\xff", 4)));
  REQUIRE_FALSE(huge.ok());
  Result<PosMap> many = DecodePosMap(Bytes(std::string("\x00\x10\x00\x01", 4)));
  REQUIRE_FALSE(many.ok());
  CHECK(many.message().find("too many entries") != std::string::npos);
}

// ---- frames -------------------------------------------------------------------

// An event with its views copied out; LTX data events coalesced into one.
struct Rec {
  Event::Kind kind;
  std::string name;
  std::vector<uint8_t> data;
  uint64_t txid = 0;
  int64_t ts = 0;
  bool operator==(const Rec&) const = default;
};

class Recorder {
 public:
  bool Add(const Event& e) {
    if (e.kind == Event::Kind::kLtxData) {
      CHECK_FALSE(e.data.empty());
      if (recs.empty() || recs.back().kind != Event::Kind::kLtxData) {
        recs.push_back({Event::Kind::kLtxData, "", {}, 0, 0});
      }
      recs.back().data.insert(recs.back().data.end(), e.data.begin(), e.data.end());
      return true;
    }
    Rec r{e.kind, std::string(e.name), {}, e.txid, e.timestamp_ms};
    // Only the fields that belong to the kind are compared.
    if (e.kind != Event::Kind::kHwm) r.txid = 0;
    if (e.kind != Event::Kind::kHeartbeat) r.ts = 0;
    recs.push_back(std::move(r));
    return true;
  }
  std::vector<Rec> recs;
};

struct Sample {
  std::string bytes;
  std::vector<Rec> want;
  std::vector<size_t> ltx_end_offsets;  // just after each LTX end marker
};

Sample MakeSample() {
  Sample s;
  std::mt19937 rng(1234);
  std::vector<uint8_t> payload(200 * 1024);
  for (uint8_t& b : payload) b = uint8_t(rng());

  AppendLtxBegin(s.bytes, "app.db");
  AppendLtxChunks(s.bytes, payload);
  AppendLtxEnd(s.bytes);
  s.ltx_end_offsets.push_back(s.bytes.size());
  s.want.push_back({Event::Kind::kLtxBegin, "app.db", {}, 0, 0});
  s.want.push_back({Event::Kind::kLtxData, "", payload, 0, 0});
  s.want.push_back({Event::Kind::kLtxEnd, "", {}, 0, 0});

  AppendHwm(s.bytes, 77, "app.db");
  s.want.push_back({Event::Kind::kHwm, "app.db", {}, 77, 0});
  AppendReady(s.bytes);
  s.want.push_back({Event::Kind::kReady, "", {}, 0, 0});
  AppendHeartbeat(s.bytes, 1700000000123);
  s.want.push_back({Event::Kind::kHeartbeat, "", {}, 0, 1700000000123});

  // A small LTX written as two AppendLtxChunks calls, and one with no payload.
  std::vector<uint8_t> small = {1, 2, 3, 4, 5};
  AppendLtxBegin(s.bytes, "other.db");
  AppendLtxChunks(s.bytes, std::span<const uint8_t>(small).first(2));
  AppendLtxChunks(s.bytes, std::span<const uint8_t>(small).subspan(2));
  AppendLtxEnd(s.bytes);
  s.ltx_end_offsets.push_back(s.bytes.size());
  s.want.push_back({Event::Kind::kLtxBegin, "other.db", {}, 0, 0});
  s.want.push_back({Event::Kind::kLtxData, "", small, 0, 0});
  s.want.push_back({Event::Kind::kLtxEnd, "", {}, 0, 0});
  AppendLtxBegin(s.bytes, "e.db");
  AppendLtxEnd(s.bytes);
  s.ltx_end_offsets.push_back(s.bytes.size());
  s.want.push_back({Event::Kind::kLtxBegin, "e.db", {}, 0, 0});
  s.want.push_back({Event::Kind::kLtxEnd, "", {}, 0, 0});

  AppendDropDb(s.bytes, "gone.db");
  s.want.push_back({Event::Kind::kDropDb, "gone.db", {}, 0, 0});
  AppendHeartbeat(s.bytes, -1);
  s.want.push_back({Event::Kind::kHeartbeat, "", {}, 0, -1});
  AppendHandoff(s.bytes, "lease-42");
  s.want.push_back({Event::Kind::kHandoff, "lease-42", {}, 0, 0});
  AppendEnd(s.bytes);
  s.want.push_back({Event::Kind::kEnd, "", {}, 0, 0});
  // Empty names, the very last thing in the stream.
  AppendDropDb(s.bytes, "");
  s.want.push_back({Event::Kind::kDropDb, "", {}, 0, 0});
  AppendHwm(s.bytes, 0xfedcba9876543210, "");
  s.want.push_back({Event::Kind::kHwm, "", {}, 0xfedcba9876543210, 0});
  return s;
}

// Feeds `bytes` in pieces chosen by `next_size`; every piece must be consumed.
std::vector<Rec> FeedInPieces(const std::string& bytes, const std::function<size_t()>& next_size) {
  FrameDecoder dec;
  Recorder rec;
  size_t off = 0;
  while (off < bytes.size()) {
    size_t n = std::min(bytes.size() - off, next_size());
    Result<size_t> used =
        dec.Feed(Bytes(bytes).subspan(off, n), [&](const Event& e) { return rec.Add(e); });
    REQUIRE_MESSAGE(used.ok(), used.message());
    REQUIRE(*used == n);
    off += n;
  }
  CHECK(dec.AtFrameBoundary());
  return rec.recs;
}

TEST_CASE("frame writers: exact bytes") {
  std::string out;
  AppendLtxBegin(out, "ab");
  CHECK(Hex(out) == "00000001" "0000000000000000" "00000002" "6162");
  out.clear();
  AppendLtxChunks(out, std::vector<uint8_t>{9, 8, 7});
  AppendLtxEnd(out);
  CHECK(Hex(out) == "0003" "090807" "0000");
  out.clear();
  AppendReady(out);
  AppendEnd(out);
  CHECK(Hex(out) == "00000002" "00000003");
  out.clear();
  AppendDropDb(out, "x");
  AppendHandoff(out, "y");
  CHECK(Hex(out) == "00000004" "00000001" "78" "00000005" "00000001" "79");
  out.clear();
  AppendHwm(out, 0x0102, "z");
  CHECK(Hex(out) == "00000006" "0000000000000102" "00000001" "7a");
  out.clear();
  AppendHeartbeat(out, 0x0102030405);
  CHECK(Hex(out) == "00000007" "0000000102030405");
}

TEST_CASE("a 200 KB LTX payload is split into chunks of at most 65535 bytes") {
  std::vector<uint8_t> payload(200 * 1024, 0x5a);
  std::string out;
  AppendLtxChunks(out, payload);
  AppendLtxEnd(out);
  std::vector<size_t> lengths;
  size_t off = 0;
  for (;;) {
    REQUIRE(off + 2 <= out.size());
    size_t n = size_t(uint8_t(out[off])) << 8 | uint8_t(out[off + 1]);
    off += 2;
    if (n == 0) break;
    lengths.push_back(n);
    off += n;
  }
  CHECK(off == out.size());
  std::vector<size_t> want = {65535, 65535, 65535, 200 * 1024 - 3 * 65535};
  CHECK(lengths == want);
}

TEST_CASE("every frame kind decodes whatever the split of the input") {
  Sample s = MakeSample();
  SUBCASE("all at once") {
    CHECK(FeedInPieces(s.bytes, [&] { return s.bytes.size(); }) == s.want);
  }
  SUBCASE("one byte at a time") {
    CHECK(FeedInPieces(s.bytes, [] { return size_t(1); }) == s.want);
  }
  SUBCASE("random small pieces") {
    for (unsigned seed = 0; seed < 5; seed++) {
      std::mt19937 rng(seed);
      CHECK(FeedInPieces(s.bytes, [&] { return size_t(1 + rng() % 17); }) == s.want);
    }
  }
  SUBCASE("random large pieces") {
    for (unsigned seed = 0; seed < 20; seed++) {
      std::mt19937 rng(seed);
      CHECK(FeedInPieces(s.bytes, [&] { return size_t(1 + rng() % 100000); }) == s.want);
    }
  }
}

TEST_CASE("AtFrameBoundary is false inside a frame") {
  Sample s = MakeSample();
  FrameDecoder dec;
  CHECK(dec.AtFrameBoundary());
  auto ignore = [](const Event&) { return true; };
  for (size_t n : {size_t(2), size_t(4), size_t(12), size_t(20), size_t(100)}) {
    FrameDecoder d;
    Result<size_t> used = d.Feed(Bytes(s.bytes).first(n), ignore);
    REQUIRE(used.ok());
    CHECK(*used == n);
    CHECK_FALSE(d.AtFrameBoundary());
  }
  Result<size_t> used = dec.Feed(Bytes(s.bytes).first(s.ltx_end_offsets[0]), ignore);
  REQUIRE(used.ok());
  CHECK(dec.AtFrameBoundary());
}

TEST_CASE("stopping at kLtxEnd returns the consumed count; the rest continues") {
  Sample s = MakeSample();
  for (size_t piece : {s.bytes.size(), size_t(1), size_t(7), size_t(65536)}) {
    CAPTURE(piece);
    FrameDecoder dec;
    Recorder rec;
    size_t ltx_ends = 0;
    size_t off = 0;
    while (off < s.bytes.size()) {
      size_t n = std::min(piece, s.bytes.size() - off);
      bool stopped = false;
      Result<size_t> used = dec.Feed(Bytes(s.bytes).subspan(off, n), [&](const Event& e) {
        REQUIRE_FALSE(stopped);  // nothing after a refused event
        rec.Add(e);
        if (e.kind == Event::Kind::kLtxEnd) {
          stopped = true;
          return false;
        }
        return true;
      });
      REQUIRE_MESSAGE(used.ok(), used.message());
      if (stopped) {
        REQUIRE(ltx_ends < s.ltx_end_offsets.size());
        CHECK(off + *used == s.ltx_end_offsets[ltx_ends]);
        ltx_ends++;
        CHECK(dec.AtFrameBoundary());
      } else {
        CHECK(*used == n);
      }
      off += *used;
    }
    CHECK(ltx_ends == s.ltx_end_offsets.size());
    CHECK(rec.recs == s.want);
  }
}

TEST_CASE("stopping after every single event still reproduces the stream") {
  Sample s = MakeSample();
  FrameDecoder dec;
  Recorder rec;
  size_t off = 0;
  int feeds = 0;
  while (off < s.bytes.size()) {
    Result<size_t> used = dec.Feed(Bytes(s.bytes).subspan(off), [&](const Event& e) {
      rec.Add(e);
      return false;
    });
    REQUIRE_MESSAGE(used.ok(), used.message());
    REQUIRE(feeds++ < 1000);
    off += *used;
  }
  CHECK(rec.recs == s.want);
}

TEST_CASE("unknown frame types and oversized names are errors") {
  auto ignore = [](const Event&) { return true; };
  for (uint32_t t : {0u, 8u, 0x100u, 0xffffffffu}) {
    CAPTURE(t);
    std::string bytes;
    for (int i = 3; i >= 0; i--) bytes.push_back(char(t >> (8 * i)));
    FrameDecoder dec;
    Result<size_t> r = dec.Feed(Bytes(bytes), ignore);
    REQUIRE_FALSE(r.ok());
    CHECK(r.message().find("unknown stream frame type " + std::to_string(t)) != std::string::npos);
  }
  // An unknown type after good frames.
  {
    std::string bytes;
    AppendReady(bytes);
    bytes += std::string("\x00\x00\x00\x09", 4);
    FrameDecoder dec;
    int readies = 0;
    Result<size_t> r = dec.Feed(Bytes(bytes), [&](const Event& e) {
      readies += e.kind == Event::Kind::kReady;
      return true;
    });
    REQUIRE_FALSE(r.ok());
    CHECK(readies == 1);
  }
  const std::string too_long(kMaxNameSize + 1, 'n');
  const std::string longest(kMaxNameSize, 'n');
  std::vector<std::pair<std::string, std::string>> cases;
  std::string b;
  AppendLtxBegin(b, too_long);
  cases.push_back({"LTX", b});
  b.clear();
  AppendDropDb(b, too_long);
  cases.push_back({"DROP_DB", b});
  b.clear();
  AppendHandoff(b, too_long);
  cases.push_back({"HANDOFF", b});
  b.clear();
  AppendHwm(b, 1, too_long);
  cases.push_back({"HWM", b});
  for (const auto& [what, bytes] : cases) {
    CAPTURE(what);
    FrameDecoder dec;
    Result<size_t> r = dec.Feed(Bytes(bytes), ignore);
    REQUIRE_FALSE(r.ok());
    CHECK(r.message().find(std::to_string(kMaxNameSize + 1) + " bytes") != std::string::npos);
  }
  // The longest allowed name is fine.
  std::string ok;
  AppendDropDb(ok, longest);
  FrameDecoder dec;
  Recorder rec;
  Result<size_t> r = dec.Feed(Bytes(ok), [&](const Event& e) { return rec.Add(e); });
  REQUIRE(r.ok());
  REQUIRE(rec.recs.size() == 1);
  CHECK(rec.recs[0].name == longest);
}

}  // namespace
}  // namespace litefs::stream
