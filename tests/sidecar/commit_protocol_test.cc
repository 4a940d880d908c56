// Tests of vfs/commit_protocol: message round trips, the incremental frame
// reader, rejection of malformed frames, and RangeSet.
#include "vfs/commit_protocol.h"

#include <doctest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace litefs::wire {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::vector<Message> SampleMessages() {
  std::vector<Message> out;
  Message m;
  m.type = MsgType::kHello;
  m.version = kProtocolVersion;
  m.pid = 0xdeadbeef;
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kBegin;
  m.text = "app.db";
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kCommit;
  m.text = "app.db";
  m.flags = kCommitSynced;
  m.ranges = {{0, 4096}, {8192, 12288}, {uint64_t(1) << 40, 65536}, {~uint64_t(0) - 1, 1}};
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kCommit;
  m.text = "empty-tx.db";
  m.flags = 0;
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kCommit;  // an async rollback-mode commit names its change counter
  m.text = "app.db";
  m.flags = kCommitSynced | kCommitAsync | kCommitCounter;
  m.ranges = {{0, 4096}};
  m.change_counter = 0xfedcba98;
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kCommit;
  m.text = "wal.db";
  m.flags = kCommitWal | kCommitAsync;
  m.wal = {0x11111111, 0x22222222, 3, 7, 4096, 12};
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kAbort;
  m.text = std::string("we\0ird\xff", 7);
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kAwaitCapture;
  m.text = "app.db";
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kBegun;
  m.text = "app.db";
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kOk;
  m.txid = 0x0102030405060708;
  m.checksum = 0x8877665544332211;
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kOk;  // the plain Ok of Hello/Begin
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kOk;  // Begin approved, with the database's capture slot
  m.capture_slot = 504;
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kReadOnly;
  m.text = "primary-host.internal";
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kError;
  m.text = "something went wrong";
  out.push_back(m);

  m = Message{};
  m.type = MsgType::kBusy;
  m.text = "";
  out.push_back(m);
  return out;
}

void CheckSame(const Message& got, const Message& want) {
  CHECK(got.type == want.type);
  CHECK(got.version == want.version);
  CHECK(got.pid == want.pid);
  CHECK(got.text == want.text);
  CHECK(got.flags == want.flags);
  CHECK(got.ranges == want.ranges);
  CHECK(got.wal == want.wal);
  CHECK(got.change_counter == want.change_counter);
  CHECK(got.txid == want.txid);
  CHECK(got.checksum == want.checksum);
  CHECK(got.capture_slot == want.capture_slot);
}

uint32_t LoadLE32(const std::string& s, size_t off) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) v |= uint32_t(uint8_t(s[off + size_t(i)])) << (8 * i);
  return v;
}

// A frame with the given body (type byte included).
std::string Frame(const std::string& body) {
  std::string out;
  uint32_t len = uint32_t(body.size());
  for (int i = 0; i < 4; i++) out.push_back(char(len >> (8 * i)));
  return out + body;
}

// Feeds `bytes` to a fresh FrameReader in one piece and returns Next()'s result.
Result<bool> NextOf(const std::string& bytes) {
  FrameReader reader;
  reader.Append(Bytes(bytes));
  Message msg;
  return reader.Next(msg);
}

TEST_CASE("every message type survives encode and decode") {
  for (const Message& want : SampleMessages()) {
    CAPTURE(int(want.type));
    std::string frame;
    EncodeMessage(want, frame);
    REQUIRE(frame.size() >= kFrameHeaderSize);
    CHECK(LoadLE32(frame, 0) == frame.size() - 4);
    CHECK(uint8_t(frame[4]) == uint8_t(want.type));
    Result<Message> got = DecodeMessage(Bytes(frame).subspan(4));
    REQUIRE_MESSAGE(got.ok(), got.message());
    CheckSame(*got, want);
  }
}

TEST_CASE("the wire layout is little-endian with length-prefixed strings") {
  Message m;
  m.type = MsgType::kCommit;
  m.text = "db";
  m.flags = kCommitSynced;
  m.ranges = {{0x0102, 0x1000}};
  std::string frame;
  EncodeMessage(m, frame);
  const std::string want = std::string("\x1c\x00\x00\x00", 4) + "\x03" +
                           std::string("\x02\x00\x00\x00", 4) + "db" + "\x01" +
                           std::string("\x01\x00\x00\x00", 4) +
                           std::string("\x02\x01\x00\x00\x00\x00\x00\x00", 8) +
                           std::string("\x00\x10\x00\x00\x00\x00\x00\x00", 8);
  CHECK(frame == want);
}

TEST_CASE("EncodeMessage appends to what is already in the buffer") {
  std::string out = "prefix";
  std::vector<Message> msgs = SampleMessages();
  for (const Message& m : msgs) EncodeMessage(m, out);
  REQUIRE(out.compare(0, 6, "prefix") == 0);
  FrameReader reader;
  reader.Append(Bytes(out).subspan(6));
  for (const Message& want : msgs) {
    Message got;
    Result<bool> r = reader.Next(got);
    REQUIRE_MESSAGE(r.ok(), r.message());
    REQUIRE(*r);
    CheckSame(got, want);
  }
  Message none;
  Result<bool> r = reader.Next(none);
  REQUIRE(r.ok());
  CHECK_FALSE(*r);
}

TEST_CASE("FrameReader fed one byte at a time yields the same messages") {
  std::vector<Message> msgs = SampleMessages();
  std::string stream;
  for (int round = 0; round < 3; round++) {
    for (const Message& m : msgs) EncodeMessage(m, stream);
  }
  FrameReader reader;
  std::vector<Message> got;
  for (size_t i = 0; i < stream.size(); i++) {
    reader.Append(Bytes(stream).subspan(i, 1));
    for (;;) {
      Message m;
      Result<bool> r = reader.Next(m);
      REQUIRE_MESSAGE(r.ok(), r.message());
      if (!*r) break;
      got.push_back(m);
    }
  }
  REQUIRE(got.size() == 3 * msgs.size());
  for (size_t i = 0; i < got.size(); i++) CheckSame(got[i], msgs[i % msgs.size()]);
}

TEST_CASE("FrameReader handles megabytes of frames in odd pieces (buffer compaction)") {
  std::mt19937_64 rng(7);
  std::vector<Message> sent;
  std::string stream;
  for (int i = 0; i < 3000; i++) {
    Message m;
    m.type = MsgType::kCommit;
    m.text = "db" + std::to_string(i);
    m.flags = uint8_t(i & 1);
    m.ranges.resize(size_t(rng() % 200));
    for (ByteRange& r : m.ranges) r = {rng(), rng()};
    EncodeMessage(m, stream);
    sent.push_back(std::move(m));
  }
  REQUIRE(stream.size() > (4u << 20));
  FrameReader reader;
  size_t next = 0, off = 0;
  while (off < stream.size()) {
    size_t n = std::min<size_t>(stream.size() - off, 1 + rng() % 70000);
    reader.Append(Bytes(stream).subspan(off, n));
    off += n;
    for (;;) {
      Message m;
      Result<bool> r = reader.Next(m);
      REQUIRE_MESSAGE(r.ok(), r.message());
      if (!*r) break;
      REQUIRE(next < sent.size());
      CheckSame(m, sent[next++]);
    }
  }
  CHECK(next == sent.size());
}

TEST_CASE("malformed frames are errors") {
  SUBCASE("length 0") {
    Result<bool> r = NextOf(std::string("\0\0\0\0", 4));
    REQUIRE_FALSE(r.ok());
    CHECK(r.message().find("bad frame length 0") != std::string::npos);
  }
  SUBCASE("length above kMaxFrameSize is refused before the body arrives") {
    uint32_t len = kMaxFrameSize + 1;
    std::string head;
    for (int i = 0; i < 4; i++) head.push_back(char(len >> (8 * i)));
    Result<bool> r = NextOf(head);
    REQUIRE_FALSE(r.ok());
    CHECK(r.message().find("bad frame length " + std::to_string(len)) != std::string::npos);
  }
  SUBCASE("length exactly kMaxFrameSize just waits for more bytes") {
    uint32_t len = kMaxFrameSize;
    std::string head;
    for (int i = 0; i < 4; i++) head.push_back(char(len >> (8 * i)));
    Result<bool> r = NextOf(head + "\x01");
    REQUIRE(r.ok());
    CHECK_FALSE(*r);
  }
  SUBCASE("truncated commit range list") {
    Message m;
    m.type = MsgType::kCommit;
    m.text = "app.db";
    m.ranges = {{0, 4096}, {4096, 4096}};
    std::string frame;
    EncodeMessage(m, frame);
    std::string body = frame.substr(4);
    for (size_t cut : {size_t(1), size_t(8), size_t(16), size_t(17)}) {
      CAPTURE(cut);
      Result<bool> r = NextOf(Frame(body.substr(0, body.size() - cut)));
      REQUIRE_FALSE(r.ok());
      CHECK(r.message().find("malformed message of type 3") != std::string::npos);
    }
    // Count says 3, two ranges follow.
    std::string lying = body;
    size_t count_at = 1 + 4 + m.text.size() + 1;
    lying[count_at] = 3;
    Result<bool> r = NextOf(Frame(lying));
    REQUIRE_FALSE(r.ok());
    CHECK(r.message().find("malformed") != std::string::npos);
    // A huge count cannot make the decoder allocate or read out of bounds.
    lying[count_at] = '\xff';
    lying[count_at + 1] = '\xff';
    lying[count_at + 2] = '\xff';
    lying[count_at + 3] = '\xff';
    r = NextOf(Frame(lying));
    REQUIRE_FALSE(r.ok());
  }
  SUBCASE("a commit whose change counter is cut short") {
    Message m;
    m.type = MsgType::kCommit;
    m.text = "app.db";
    m.flags = kCommitAsync | kCommitCounter;
    m.ranges = {{0, 4096}};
    m.change_counter = 7;
    std::string frame;
    EncodeMessage(m, frame);
    std::string body = frame.substr(4);
    for (size_t cut : {size_t(1), size_t(4)}) {
      CAPTURE(cut);
      Result<bool> r = NextOf(Frame(body.substr(0, body.size() - cut)));
      REQUIRE_FALSE(r.ok());
      CHECK(r.message().find("malformed message of type 3") != std::string::npos);
    }
  }
  SUBCASE("string length past the end of the frame") {
    std::string body = std::string("\x02", 1) + std::string("\x10\x00\x00\x00", 4) + "abc";
    Result<bool> r = NextOf(Frame(body));
    REQUIRE_FALSE(r.ok());
    CHECK(r.message().find("malformed message of type 2") != std::string::npos);
  }
  SUBCASE("unknown type") {
    for (uint8_t t : {uint8_t(0), uint8_t(7), uint8_t(0x80), uint8_t(0x85), uint8_t(0xff)}) {
      CAPTURE(int(t));
      Result<bool> r = NextOf(Frame(std::string(1, char(t)) + std::string(16, '\0')));
      REQUIRE_FALSE(r.ok());
      CHECK(r.message().find("unknown message type " + std::to_string(t)) != std::string::npos);
    }
  }
  SUBCASE("trailing bytes after any message") {
    for (const Message& m : SampleMessages()) {
      CAPTURE(int(m.type));
      std::string frame;
      EncodeMessage(m, frame);
      Result<bool> r = NextOf(Frame(frame.substr(4) + "x"));
      REQUIRE_FALSE(r.ok());
      CHECK(r.message().find("malformed message of type " + std::to_string(int(m.type))) !=
            std::string::npos);
    }
  }
  SUBCASE("fixed-size bodies cut short") {
    for (const Message& m : SampleMessages()) {
      if (m.type != MsgType::kHello && m.type != MsgType::kOk) continue;
      std::string frame;
      EncodeMessage(m, frame);
      std::string body = frame.substr(4);
      for (size_t keep = 1; keep < body.size(); keep++) {
        if (m.capture_slot != 0 && keep == 1 + 16) continue;  // a valid Ok without the slot
        Result<bool> r = NextOf(Frame(body.substr(0, keep)));
        REQUIRE_FALSE(r.ok());
      }
    }
  }
  SUBCASE("DecodeMessage of an empty body") {
    Result<Message> r = DecodeMessage({});
    REQUIRE_FALSE(r.ok());
    CHECK(r.message().find("empty") != std::string::npos);
  }
}

TEST_CASE("a partial frame is not an error, and the message comes once complete") {
  Message m;
  m.type = MsgType::kBegin;
  m.text = "app.db";
  std::string frame;
  EncodeMessage(m, frame);
  FrameReader reader;
  reader.Append(Bytes(frame).first(frame.size() - 1));
  Message got;
  Result<bool> r = reader.Next(got);
  REQUIRE(r.ok());
  CHECK_FALSE(*r);
  reader.Append(Bytes(frame).last(1));
  r = reader.Next(got);
  REQUIRE(r.ok());
  REQUIRE(*r);
  CHECK(got.text == "app.db");
}

// ---- RangeSet ---------------------------------------------------------------

TEST_CASE("RangeSet coalesces sequential writes") {
  RangeSet set;
  CHECK(set.empty());
  for (uint64_t p = 0; p < 10000; p++) set.Add(p * 4096, 4096);
  // A rewrite inside the last run, and a write extending it partially.
  set.Add(4096 * 9999 + 10, 100);
  set.Add(4096 * 10000 - 10, 20);
  CHECK_FALSE(set.empty());
  const std::vector<ByteRange>& n = set.Normalized();
  REQUIRE(n.size() == 1);
  CHECK(n[0] == ByteRange{0, 4096 * 10000 + 10});
}

TEST_CASE("RangeSet merges overlapping and adjacent ranges after Normalized()") {
  RangeSet set;
  set.Add(8192, 4096);
  set.Add(0, 4096);
  set.Add(4096, 4096);  // adjacent on both sides
  set.Add(100000, 50);
  set.Add(99990, 20);   // overlaps the start of the previous one
  set.Add(200000, 10);
  set.Add(199000, 2000);  // contains the previous one
  set.Add(300000, 10);
  set.Add(300020, 10);  // a gap of 10 bytes: stays separate
  set.Add(5, 0);        // empty: ignored
  std::vector<ByteRange> want = {
      {0, 12288}, {99990, 60}, {199000, 2000}, {300000, 10}, {300020, 10}};
  CHECK(set.Normalized() == want);
  // Normalized() is idempotent.
  CHECK(set.Normalized() == want);
}

TEST_CASE("RangeSet: 1e6 random page-sized writes stay exact and bounded") {
  constexpr uint64_t kPages = 1 << 18;
  constexpr uint64_t kPageSize = 4096;
  std::mt19937_64 rng(42);
  std::vector<bool> hit(kPages, false);
  RangeSet set;
  for (int i = 0; i < 1000000; i++) {
    uint64_t p = rng() % kPages;
    hit[p] = true;
    set.Add(p * kPageSize, kPageSize);
  }
  std::vector<ByteRange> want;
  for (uint64_t p = 0; p < kPages; p++) {
    if (!hit[p]) continue;
    if (!want.empty() && want.back().offset + want.back().length == p * kPageSize) {
      want.back().length += kPageSize;
    } else {
      want.push_back({p * kPageSize, kPageSize});
    }
  }
  const std::vector<ByteRange>& got = set.Normalized();
  CHECK(got.size() == want.size());
  CHECK(got == want);
  CHECK(got.size() < kPages / 16);  // far fewer runs than writes
}

TEST_CASE("RangeSet: Clear empties the set and it can be reused") {
  RangeSet set;
  for (int i = 0; i < 5000; i++) set.Add(uint64_t(i) * 8192, 4096);  // 5000 separate runs
  CHECK(set.Normalized().size() == 5000);
  set.Clear();
  CHECK(set.empty());
  CHECK(set.Normalized().empty());
  set.Add(10, 10);
  set.Add(0, 10);
  std::vector<ByteRange> want = {{0, 20}};
  CHECK(set.Normalized() == want);
}

}  // namespace
}  // namespace litefs::wire
