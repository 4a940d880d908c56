// Streaming LTX encoder (see encoder.h). Memory: one 256 KiB output buffer,
// plus one LZ4 block and its compression bound for compressed files.
#include "ltx/encoder.h"

#include <optional>
#include <string>

#include "ltx/checksum.h"
#include "ltx/lz4_frame.h"
#include "ltx/page_order.h"
#include "ltx/pos.h"

namespace litefs::ltx {
namespace {

constexpr size_t kOutputBufferSize = 256 * 1024;

}  // namespace

struct Encoder::Impl {
  Impl(io::Writer& out, const Header& h) : header(h), buffered(out, kOutputBufferSize) {}

  // Page-block bytes, before compression: they count in the file checksum.
  Status WriteBlock(std::span<const uint8_t> data) {
    crc = Crc64(crc, data);
    return lz4 ? lz4->Write(data) : buffered.Write(data);
  }

  // A failed write leaves the output unusable: later calls report it again.
  Status Remember(Status s) {
    if (!s.ok()) io_error = s;
    return s;
  }
  // (Rebuilt from the message: copying the stored Status trips a GCC 12
  // -Wmaybe-uninitialized false positive under the sanitizers.)
  Status Remembered() const { return io_error.ok() ? Status() : Status::Error(io_error.message()); }

  Header header;
  io::BufferedWriter buffered;
  std::optional<Lz4FrameWriter> lz4;
  uint64_t crc = 0;  // CRC-64 of header + uncompressed page block so far
  uint32_t prev_pgno = 0;
  uint32_t pages = 0;
  bool finished = false;
  Status io_error;
};

Encoder::Encoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Encoder::~Encoder() = default;

const Header& Encoder::header() const { return impl_->header; }
uint32_t Encoder::pages_written() const { return impl_->pages; }

Result<std::unique_ptr<Encoder>> Encoder::Begin(io::Writer& out, const Header& header) {
  LITEFS_RETURN_IF_ERROR(header.Validate().Context("invalid ltx header"));
  auto impl = std::make_unique<Impl>(out, header);
  const std::array<uint8_t, kHeaderSize> bytes = header.Encode();
  impl->crc = Crc64(0, bytes);
  LITEFS_RETURN_IF_ERROR(impl->buffered.Write(bytes));
  if (header.Compressed()) {
    impl->lz4.emplace(impl->buffered);
    LITEFS_RETURN_IF_ERROR(impl->lz4->Begin());
  }
  return std::unique_ptr<Encoder>(new Encoder(std::move(impl)));
}

Status Encoder::EncodePage(uint32_t pgno, std::span<const uint8_t> page) {
  Impl& e = *impl_;
  if (e.finished) return Status::Error("ltx encoder already finished");
  LITEFS_RETURN_IF_ERROR(e.Remembered());
  const Header& h = e.header;
  if (page.size() != h.page_size) {
    return Status::Error("page " + std::to_string(pgno) + " has " + std::to_string(page.size()) +
                         " bytes, page size is " + std::to_string(h.page_size));
  }
  LITEFS_RETURN_IF_ERROR(CheckPageOrder(h, e.prev_pgno, pgno));

  uint8_t pgno_be[kPageHeaderSize];
  io::StoreBE32(pgno_be, pgno);
  LITEFS_RETURN_IF_ERROR(e.Remember(e.WriteBlock(pgno_be)));
  LITEFS_RETURN_IF_ERROR(e.Remember(e.WriteBlock(page)));
  e.prev_pgno = pgno;
  e.pages++;
  return Status();
}

Result<Trailer> Encoder::Finish(uint64_t post_apply_checksum) {
  Impl& e = *impl_;
  if (e.finished) return Status::Error("ltx encoder already finished");
  LITEFS_RETURN_IF_ERROR(e.Remembered());
  const Header& h = e.header;
  LITEFS_RETURN_IF_ERROR(CheckPageBlockComplete(h, e.prev_pgno));
  if (!(post_apply_checksum & kChecksumFlag)) {
    return Status::Error("invalid post-apply checksum " + FormatChecksum(post_apply_checksum) +
                         ": checksum flag (bit 63) not set");
  }

  const uint8_t terminator[kPageHeaderSize] = {0, 0, 0, 0};
  LITEFS_RETURN_IF_ERROR(e.Remember(e.WriteBlock(terminator)));
  if (e.lz4) LITEFS_RETURN_IF_ERROR(e.Remember(e.lz4->End()));

  Trailer trailer;
  trailer.post_apply_checksum = post_apply_checksum;
  std::array<uint8_t, kTrailerSize> bytes = trailer.Encode();
  trailer.file_checksum = Crc64(e.crc, std::span(bytes).first(8)) | kChecksumFlag;
  bytes = trailer.Encode();
  LITEFS_RETURN_IF_ERROR(e.Remember(e.buffered.Write(bytes)));
  LITEFS_RETURN_IF_ERROR(e.Remember(e.buffered.Flush()));
  e.finished = true;
  return trailer;
}

}  // namespace litefs::ltx
