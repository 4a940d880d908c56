// Byte sinks and sources: buffers, file descriptors, and exact reads.
#include "ltx/io.h"

#include <doctest.h>

#include <string>

#include "test_util.h"

namespace litefs::ltx::test {
namespace {

std::vector<uint8_t> Sequence(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i++) v[i] = uint8_t(i * 7 + i / 251);
  return v;
}

TEST_CASE("big-endian helpers") {
  uint8_t b[8];
  io::StoreBE16(b, 0x0102);
  CHECK(io::LoadBE16(b) == 0x0102);
  CHECK(b[0] == 0x01);
  io::StoreBE32(b, 0xa1b2c3d4);
  CHECK(b[0] == 0xa1);
  CHECK(io::LoadBE32(b) == 0xa1b2c3d4);
  io::StoreBE64(b, 0x0102030405060708);
  CHECK(b[0] == 0x01);
  CHECK(b[7] == 0x08);
  CHECK(io::LoadBE64(b) == 0x0102030405060708);
}

TEST_CASE("ReadFull reads across short reads and names what was cut short") {
  const std::vector<uint8_t> data = Sequence(100);
  io::BufferReader buffer(data);
  TrickleReader reader(buffer, 3);
  std::vector<uint8_t> got(60);
  REQUIRE(io::ReadFull(reader, got, "first part").ok());
  CHECK(std::equal(got.begin(), got.end(), data.begin()));
  Status s = io::ReadFull(reader, got, "second part");
  REQUIRE_FALSE(s.ok());
  CHECK(s.message() == "unexpected end of input reading second part (got 40 of 60 bytes)");
  CHECK(*buffer.Read(got) == 0);
}

TEST_CASE("BufferedWriter coalesces small writes and passes large ones through") {
  io::BufferWriter sink;
  class Counting final : public io::Writer {
   public:
    explicit Counting(io::Writer& out) : out_(out) {}
    Status Write(std::span<const uint8_t> d) override {
      writes++;
      return out_.Write(d);
    }
    int writes = 0;

   private:
    io::Writer& out_;
  } counting(sink);
  io::BufferedWriter w(counting, 100);
  const std::vector<uint8_t> data = Sequence(1000);
  REQUIRE(w.Write(std::span(data).first(40)).ok());
  REQUIRE(w.Write(std::span(data).subspan(40, 40)).ok());
  CHECK(counting.writes == 0);
  REQUIRE(w.Write(std::span(data).subspan(80, 40)).ok());  // does not fit: flushes the first 80
  CHECK(counting.writes == 1);
  REQUIRE(
      w.Write(std::span(data).subspan(120, 500)).ok());  // large: flush 40, then straight through
  CHECK(counting.writes == 3);
  REQUIRE(w.Write(std::span(data).subspan(620)).ok());
  REQUIRE(w.Flush().ok());
  REQUIRE(w.Flush().ok());
  CHECK(sink.data() == data);
}

TEST_CASE("FdWriter and FdReader move bytes through a file, in any read size") {
  TempFile file;
  const std::vector<uint8_t> data = Sequence(300 * 1024);
  io::FdWriter writer(file.fd());
  REQUIRE(writer.Write(std::span(data).first(1000)).ok());
  REQUIRE(writer.Write(std::span(data).subspan(1000)).ok());
  CHECK(writer.bytes_written() == data.size());

  for (size_t step : {size_t(1) << 10, size_t(5), size_t(64) * 1024, size_t(200) * 1024}) {
    CAPTURE(step);
    REQUIRE(lseek(file.fd(), 0, SEEK_SET) == 0);
    io::FdReader reader(file.fd());
    std::vector<uint8_t> got;
    std::vector<uint8_t> buf(step);
    for (;;) {
      Result<size_t> n = reader.Read(buf);
      REQUIRE(n.ok());
      if (*n == 0) break;
      got.insert(got.end(), buf.begin(), buf.begin() + *n);
    }
    CHECK(got == data);
  }
}

TEST_CASE("FdReader and FdWriter report errors from the system") {
  io::FdReader reader(-1);
  uint8_t b[4];
  Result<size_t> n = reader.Read(b);
  REQUIRE_FALSE(n.ok());
  CHECK(n.message().find("Bad file descriptor") != std::string::npos);
  io::FdWriter writer(-1);
  CHECK(writer.Write(b).message().find("Bad file descriptor") != std::string::npos);
}

}  // namespace
}  // namespace litefs::ltx::test
