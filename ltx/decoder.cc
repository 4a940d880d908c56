// Streaming, validating LTX decoder (see decoder.h). Memory: the caller's page
// buffer, plus one LZ4 block of input and liblz4's context for compressed files.
#include "ltx/decoder.h"

#include <optional>
#include <string>

#include "ltx/checksum.h"
#include "ltx/lz4_frame.h"
#include "ltx/page_order.h"
#include "ltx/pos.h"

namespace litefs::ltx {

struct Decoder::Impl {
  enum class Stage { kPages, kTrailer, kDone };

  Impl(io::Reader& r, const Header& h) : in(r), header(h) {}

  // Where page-block bytes come from: the LZ4 frame or the file itself.
  io::Reader& block() { return lz4 ? static_cast<io::Reader&>(*lz4) : in; }

  Status ReadBlock(std::span<uint8_t> buf, const char* what) {
    LITEFS_RETURN_IF_ERROR(io::ReadFull(block(), buf, what));
    crc = Crc64(crc, buf);
    return Status();
  }

  // Any error ends decoding: later calls report the first one again.
  Status Remember(Status s) {
    if (!s.ok()) error = s;
    return s;
  }
  // (Rebuilt from the message: copying the stored Status trips a GCC 12
  // -Wmaybe-uninitialized false positive under the sanitizers.)
  Status Remembered() const { return error.ok() ? Status() : Status::Error(error.message()); }

  Status EndPageBlock();

  io::Reader& in;
  Header header;
  std::optional<Lz4FrameReader> lz4;
  uint64_t crc = 0;  // CRC-64 of header + uncompressed page block so far
  uint32_t prev_pgno = 0;
  RollingChecksum snapshot_checksum;  // of the pages, for snapshots
  Stage stage = Stage::kPages;
  Status error;
};

// Called after the zero page number: the snapshot must be complete and the
// LZ4 frame must end here (which also verifies its content checksum).
Status Decoder::Impl::EndPageBlock() {
  LITEFS_RETURN_IF_ERROR(CheckPageBlockComplete(header, prev_pgno));
  if (lz4) {
    uint8_t extra;
    Result<size_t> n = lz4->Read(std::span(&extra, 1));
    if (!n.ok()) return n.status();
    if (*n != 0) return Status::Error("lz4 frame continues after the page block terminator");
  }
  stage = Stage::kTrailer;
  return Status();
}

Decoder::Decoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Decoder::~Decoder() = default;

const Header& Decoder::header() const { return impl_->header; }

Result<std::unique_ptr<Decoder>> Decoder::Open(io::Reader& in) {
  std::array<uint8_t, kHeaderSize> bytes;
  LITEFS_RETURN_IF_ERROR(io::ReadFull(in, bytes, "ltx header"));
  Result<Header> header = Header::Decode(bytes);
  if (!header.ok()) return header.status();
  auto impl = std::make_unique<Impl>(in, *header);
  impl->crc = Crc64(0, bytes);
  if (header->Compressed()) impl->lz4.emplace(in);
  return std::unique_ptr<Decoder>(new Decoder(std::move(impl)));
}

Result<uint32_t> Decoder::NextPage(std::vector<uint8_t>& page) {
  Impl& d = *impl_;
  LITEFS_RETURN_IF_ERROR(d.Remembered());
  if (d.stage != Impl::Stage::kPages) return uint32_t(0);

  uint8_t pgno_be[kPageHeaderSize];
  if (Status s = d.ReadBlock(pgno_be, "page header"); !s.ok()) {
    return d.Remember(s.Context("after page " + std::to_string(d.prev_pgno)));
  }
  const uint32_t pgno = io::LoadBE32(pgno_be);
  if (pgno == 0) {
    LITEFS_RETURN_IF_ERROR(d.Remember(d.EndPageBlock()));
    return uint32_t(0);
  }
  LITEFS_RETURN_IF_ERROR(d.Remember(CheckPageOrder(d.header, d.prev_pgno, pgno)));
  page.resize(d.header.page_size);
  if (Status s = d.ReadBlock(page, "page data"); !s.ok()) {
    return d.Remember(s.Context("page " + std::to_string(pgno)));
  }
  if (d.header.IsSnapshot()) d.snapshot_checksum.Toggle(PageChecksum(pgno, page));
  d.prev_pgno = pgno;
  return pgno;
}

Result<Trailer> Decoder::Finish() {
  Impl& d = *impl_;
  LITEFS_RETURN_IF_ERROR(d.Remembered());
  if (d.stage == Impl::Stage::kPages) {
    return Status::Error(
        "ltx decoder: Finish called before NextPage reached the end of the page block");
  }
  if (d.stage == Impl::Stage::kDone) return Status::Error("ltx decoder already finished");

  std::array<uint8_t, kTrailerSize> bytes;
  LITEFS_RETURN_IF_ERROR(d.Remember(io::ReadFull(d.in, bytes, "ltx trailer")));
  const Trailer trailer = Trailer::Decode(bytes);
  const uint64_t computed = Crc64(d.crc, std::span(bytes).first(8)) | kChecksumFlag;
  if (computed != trailer.file_checksum) {
    return d.Remember(Status::Error("file checksum mismatch: computed " + FormatChecksum(computed) +
                                    ", trailer says " + FormatChecksum(trailer.file_checksum)));
  }
  if (!(trailer.post_apply_checksum & kChecksumFlag)) {
    return d.Remember(Status::Error("invalid post-apply checksum " +
                                    FormatChecksum(trailer.post_apply_checksum) +
                                    ": checksum flag (bit 63) not set"));
  }
  if (d.header.IsSnapshot() && d.snapshot_checksum.value() != trailer.post_apply_checksum) {
    return d.Remember(Status::Error(
        "post-apply checksum mismatch: computed " + FormatChecksum(d.snapshot_checksum.value()) +
        " from the snapshot's pages, trailer says " + FormatChecksum(trailer.post_apply_checksum)));
  }
  d.stage = Impl::Stage::kDone;
  return trailer;
}

Result<std::pair<Header, Trailer>> Verify(io::Reader& in) {
  Result<std::unique_ptr<Decoder>> dec = Decoder::Open(in);
  if (!dec.ok()) return dec.status();
  std::vector<uint8_t> page;
  for (;;) {
    Result<uint32_t> pgno = (*dec)->NextPage(page);
    if (!pgno.ok()) return pgno.status();
    if (*pgno == 0) break;
  }
  Result<Trailer> trailer = (*dec)->Finish();
  if (!trailer.ok()) return trailer.status();
  return std::make_pair((*dec)->header(), *trailer);
}

}  // namespace litefs::ltx
