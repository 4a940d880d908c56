// Encoder and decoder together: our LZ4 encoding of the golden files, applying
// LTX files to a database image, corrupt and truncated inputs, and reading
// exactly one file's bytes from a stream.
#include <doctest.h>

#include <cstring>

#include "golden_table.h"
#include "ltx/checksum.h"
#include "ltx/encoder.h"
#include "test_util.h"

namespace litefs::ltx::test {
namespace {

Result<Trailer> EncodeAll(io::Writer& out, const DecodedLtx& d) {
  Result<std::unique_ptr<Encoder>> enc = Encoder::Begin(out, d.header);
  if (!enc.ok()) return enc.status();
  for (const auto& [pgno, page] : d.pages) LITEFS_RETURN_IF_ERROR((*enc)->EncodePage(pgno, page));
  return (*enc)->Finish(d.trailer.post_apply_checksum);
}

TEST_CASE("compressed golden files: our LZ4 encoding decodes back with the golden file checksum") {
  for (const GoldenLtx& g : GoldenFiles()) {
    if (g.flags != kFlagCompressLZ4) continue;
    CAPTURE(g.name);
    Result<DecodedLtx> golden = DecodeAll(Golden(g.name));
    REQUIRE_MESSAGE(golden.ok(), golden.message());

    io::BufferWriter out;
    Result<Trailer> trailer = EncodeAll(out, *golden);
    REQUIRE_MESSAGE(trailer.ok(), trailer.message());
    // The file checksum covers the uncompressed page block, so it must match.
    CHECK(trailer->file_checksum == g.file_checksum);

    const std::vector<uint8_t>& ours = out.data();
    REQUIRE(ours.size() > kHeaderSize + 7 + kTrailerSize);
    // LZ4 frame magic, FLG=0x64, BD=0x40 and the header checksum, like pierrec/lz4.
    const uint8_t frame_start[] = {0x04, 0x22, 0x4D, 0x18, 0x64, 0x40, 0xA7};
    CHECK(std::memcmp(ours.data() + kHeaderSize, frame_start, sizeof frame_start) == 0);
    CHECK(std::equal(ours.begin(), ours.begin() + kHeaderSize, Golden(g.name).begin()));
    CHECK(ours.size() < kHeaderSize + g.pages.size() * (4 + g.page_size) / 2);  // it did compress

    Result<DecodedLtx> back = DecodeAll(ours);
    REQUIRE_MESSAGE(back.ok(), back.message());
    CHECK(back->pages == golden->pages);
    CHECK(back->trailer.file_checksum == g.file_checksum);
    CHECK(back->trailer.post_apply_checksum == g.post_apply);
  }
}

TEST_CASE("a snapshot then an incremental file, applied to a buffer, give small4k-v2.db") {
  const std::vector<uint8_t> v1 = Golden("small4k.db");
  const std::vector<uint8_t> v2 = Golden("small4k-v2.db");
  const char* pairs[][2] = {
      {"small4k-snapshot.ltx", "small4k-incr-txid2.ltx"},
      {"small4k-snapshot.lz4.ltx", "small4k-incr-txid2.lz4.ltx"},
      {"small4k-snapshot.ltx", "small4k-incr-txid2.lz4.ltx"},
  };
  for (const auto& [snapshot_name, incr_name] : pairs) {
    CAPTURE(snapshot_name);
    CAPTURE(incr_name);
    std::vector<uint8_t> db;
    uint64_t checksum = kChecksumFlag;
    for (const char* name : {snapshot_name, incr_name}) {
      Result<DecodedLtx> d = DecodeAll(Golden(name));
      REQUIRE_MESSAGE(d.ok(), d.message());
      CHECK(d->header.pre_apply_checksum == (d->header.IsSnapshot() ? 0 : checksum));
      db.resize(size_t(d->header.commit) * d->header.page_size);
      for (const auto& [pgno, page] : d->pages) {
        std::memcpy(db.data() + size_t(pgno - 1) * d->header.page_size, page.data(), page.size());
      }
      RollingChecksum sum;
      for (uint32_t pgno = 1; pgno <= d->header.commit; pgno++) {
        sum.Toggle(PageChecksum(pgno, std::span(db).subspan(size_t(pgno - 1) * 4096, 4096)));
      }
      CHECK(sum.value() == d->trailer.post_apply_checksum);
      checksum = d->trailer.post_apply_checksum;
      if (std::string(name) == snapshot_name) CHECK(db == v1);
    }
    CHECK(db == v2);
  }
}

TEST_CASE("a flipped byte in an uncompressed file fails the file checksum") {
  Result<DecodedLtx> d = DecodeAll(Golden("small4k-snapshot.corrupt.ltx"));
  REQUIRE_FALSE(d.ok());
  CHECK(d.message().find("file checksum mismatch") != std::string::npos);
  CHECK(d.message().find("trailer says ffc293110d4e1032") != std::string::npos);
}

TEST_CASE("a flipped byte inside an LZ4 block fails the LZ4 content checksum") {
  Result<DecodedLtx> d = DecodeAll(Golden("small4k-snapshot.lz4.corrupt.ltx"));
  REQUIRE_FALSE(d.ok());
  CHECK(d.message().find("lz4") != std::string::npos);
  CHECK(d.message().find("contentChecksum") != std::string::npos);
}

TEST_CASE("every truncation of a file is rejected") {
  for (const char* name : {"small4k-incr-txid2.lz4.ltx", "small512-snapshot.lz4.ltx",
                           "small512-snapshot.ltx", "small4k-incr-txid2.ltx"}) {
    CAPTURE(name);
    const std::vector<uint8_t> bytes = Golden(name);
    REQUIRE(DecodeAll(bytes).ok());
    for (size_t len = 0; len < bytes.size(); len++) {
      CAPTURE(len);
      Result<DecodedLtx> d = DecodeAll(std::span(bytes).first(len));
      REQUIRE_FALSE(d.ok());
      CHECK_FALSE(d.message().empty());
    }
  }
}

TEST_CASE("the decoder consumes exactly one file from a stream, however the bytes arrive") {
  for (const GoldenLtx& g : GoldenFiles()) {
    CAPTURE(g.name);
    std::vector<uint8_t> stream = Golden(g.name);
    const size_t file_size = stream.size();
    stream.insert(stream.end(),
                  {0xde, 0xad, 0xbe, 0xef, 0x04, 0x22, 0x4d, 0x18});  // the next frame, say
    for (size_t step : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
      CAPTURE(step);
      io::BufferReader buffer(stream);
      TrickleReader reader(buffer, step);
      Result<DecodedLtx> d = DecodeAll(reader);
      REQUIRE_MESSAGE(d.ok(), d.message());
      CHECK(reader.consumed() == file_size);
      CHECK(d->trailer.file_checksum == g.file_checksum);
    }
  }
}

TEST_CASE("a deletion marker (commit 0, no pages) round trips, compressed or not") {
  // Deletion marker: commit 0, no pages, post-apply checksum = flag only.
  for (uint32_t flags : {0u, kFlagCompressLZ4}) {
    CAPTURE(flags);
    DecodedLtx d;
    d.header = Header{.flags = flags,
                      .page_size = 4096,
                      .commit = 0,
                      .min_txid = 5,
                      .max_txid = 5,
                      .pre_apply_checksum = 0x8000000000001234};
    d.trailer.post_apply_checksum = kChecksumFlag;
    io::BufferWriter out;
    Result<Trailer> trailer = EncodeAll(out, d);
    REQUIRE_MESSAGE(trailer.ok(), trailer.message());
    if (flags == 0) CHECK(out.data().size() == kHeaderSize + 4 + kTrailerSize);
    Result<DecodedLtx> back = DecodeAll(out.data());
    REQUIRE_MESSAGE(back.ok(), back.message());
    CHECK(back->pages.empty());
    CHECK(back->trailer.post_apply_checksum == kChecksumFlag);
    CHECK(back->trailer.file_checksum == trailer->file_checksum);
  }
}

TEST_CASE("64 KiB pages and incompressible data survive an LZ4 round trip") {
  DecodedLtx d;
  d.header = Header{
      .flags = kFlagCompressLZ4, .page_size = 65536, .commit = 4, .min_txid = 1, .max_txid = 3};
  uint64_t x = 0x9E3779B97F4A7C15;
  RollingChecksum sum;
  for (uint32_t pgno = 1; pgno <= 4; pgno++) {
    std::vector<uint8_t> page(65536);
    for (auto& b : page) {  // xorshift noise: LZ4 stores these blocks raw
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      b = pgno == 2 ? uint8_t(pgno) : uint8_t(x);
    }
    sum.Toggle(PageChecksum(pgno, page));
    d.pages.emplace_back(pgno, std::move(page));
  }
  d.trailer.post_apply_checksum = sum.value();
  io::BufferWriter out;
  Result<Trailer> trailer = EncodeAll(out, d);
  REQUIRE_MESSAGE(trailer.ok(), trailer.message());
  Result<DecodedLtx> back = DecodeAll(out.data());
  REQUIRE_MESSAGE(back.ok(), back.message());
  CHECK(back->pages == d.pages);
  CHECK(back->trailer.file_checksum == trailer->file_checksum);
}

}  // namespace
}  // namespace litefs::ltx::test
