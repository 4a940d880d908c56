// Decoding every golden LTX file, and re-encoding the uncompressed ones byte
// for byte.
#include <doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include "golden_table.h"
#include "ltx/checksum.h"
#include "ltx/encoder.h"
#include "test_util.h"

namespace litefs::ltx::test {
namespace {

TEST_CASE("every golden LTX file decodes with the fields the README lists") {
  for (const GoldenLtx& g : GoldenFiles()) {
    CAPTURE(g.name);
    const std::vector<uint8_t> bytes = Golden(g.name);
    REQUIRE(bytes.size() == g.bytes);

    io::BufferReader reader(bytes);
    Result<DecodedLtx> d = DecodeAll(reader);
    REQUIRE_MESSAGE(d.ok(), d.message());
    CHECK(reader.offset() == bytes.size());

    const Header& h = d->header;
    CHECK(h.flags == g.flags);
    CHECK(h.Compressed() == (g.flags == kFlagCompressLZ4));
    CHECK(h.page_size == g.page_size);
    CHECK(h.commit == g.commit);
    CHECK(h.min_txid == g.min_txid);
    CHECK(h.max_txid == g.max_txid);
    CHECK(h.timestamp_ms == g.timestamp_ms);
    CHECK(h.pre_apply_checksum == g.pre_apply);
    CHECK(h.wal_offset == 0);
    CHECK(h.wal_size == 0);
    CHECK(h.wal_salt1 == 0);
    CHECK(h.wal_salt2 == 0);
    CHECK(h.node_id == 0);
    CHECK(h.IsSnapshot() == (g.min_txid == 1));
    for (size_t i = 80; i < kHeaderSize; i++) CHECK(bytes[i] == 0);

    std::vector<uint32_t> pgnos;
    for (const auto& [pgno, page] : d->pages) {
      pgnos.push_back(pgno);
      CHECK(page.size() == g.page_size);
    }
    CHECK(pgnos == g.pages);
    CHECK(d->trailer.post_apply_checksum == g.post_apply);
    CHECK(d->trailer.file_checksum == g.file_checksum);
  }
}

TEST_CASE("snapshot pages hash to the post-apply checksum") {
  for (const GoldenLtx& g : GoldenFiles()) {
    if (g.min_txid != 1) continue;
    CAPTURE(g.name);
    Result<DecodedLtx> d = DecodeAll(Golden(g.name));
    REQUIRE_MESSAGE(d.ok(), d.message());
    RollingChecksum sum;
    for (const auto& [pgno, page] : d->pages) sum.Toggle(PageChecksum(pgno, page));
    CHECK(sum.value() == g.post_apply);
  }
}

TEST_CASE("uncompressed golden files re-encode byte for byte") {
  for (const GoldenLtx& g : GoldenFiles()) {
    if (g.flags != 0) continue;
    CAPTURE(g.name);
    const std::vector<uint8_t> golden = Golden(g.name);
    Result<DecodedLtx> d = DecodeAll(golden);
    REQUIRE_MESSAGE(d.ok(), d.message());

    io::BufferWriter out;
    Result<std::unique_ptr<Encoder>> enc = Encoder::Begin(out, d->header);
    REQUIRE_MESSAGE(enc.ok(), enc.message());
    for (const auto& [pgno, page] : d->pages) {
      Status s = (*enc)->EncodePage(pgno, page);
      REQUIRE_MESSAGE(s.ok(), s.message());
    }
    CHECK((*enc)->pages_written() == g.pages.size());
    Result<Trailer> trailer = (*enc)->Finish(d->trailer.post_apply_checksum);
    REQUIRE_MESSAGE(trailer.ok(), trailer.message());
    CHECK(trailer->file_checksum == g.file_checksum);
    CHECK(out.data() == golden);
  }
}

TEST_CASE("large5m snapshot decodes streaming from a file descriptor") {
  const int fd = open(GoldenPath("large5m-snapshot.lz4.ltx").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  io::FdReader reader(fd);
  Result<std::unique_ptr<Decoder>> dec = Decoder::Open(reader);
  REQUIRE_MESSAGE(dec.ok(), dec.message());
  std::vector<uint8_t> page;  // the only page buffer: memory stays one page
  RollingChecksum sum;
  uint32_t count = 0;
  for (;;) {
    Result<uint32_t> pgno = (*dec)->NextPage(page);
    REQUIRE_MESSAGE(pgno.ok(), pgno.message());
    if (*pgno == 0) break;
    sum.Toggle(PageChecksum(*pgno, page));
    count++;
  }
  Result<Trailer> trailer = (*dec)->Finish();
  REQUIRE_MESSAGE(trailer.ok(), trailer.message());
  close(fd);
  CHECK(count == 1353);
  CHECK(sum.value() == 0xea3cdd725eb6e6c0);
  CHECK(trailer->post_apply_checksum == 0xea3cdd725eb6e6c0);
  CHECK(trailer->file_checksum == 0xf6494aaf77733d13);
}

}  // namespace
}  // namespace litefs::ltx::test
