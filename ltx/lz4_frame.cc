// LZ4 frame writer/reader over liblz4's lz4frame API (see lz4_frame.h).
#include "ltx/lz4_frame.h"

#include <lz4frame.h>

#include <algorithm>
#include <string>

namespace litefs::ltx {
namespace {

// Input is handed to LZ4F_compressUpdate in pieces of at most one block, so
// that the output buffer needs only LZ4F_compressBound(one block).
constexpr size_t kBlockSize = 64 * 1024;

// The smallest frame is a 7-byte header followed by the 4-byte end mark;
// liblz4 asks for exactly this much when nothing has been fed yet.
constexpr size_t kFirstHint = LZ4F_HEADER_SIZE_MIN + 4;

LZ4F_preferences_t PageBlockPreferences() {
  LZ4F_preferences_t prefs = LZ4F_INIT_PREFERENCES;
  prefs.frameInfo.blockSizeID = LZ4F_max64KB;
  prefs.frameInfo.blockMode = LZ4F_blockIndependent;
  prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
  prefs.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum;
  prefs.frameInfo.contentSize = 0;
  prefs.compressionLevel = 0;  // fast
  return prefs;
}

Status Lz4Error(const char* what, size_t code) {
  return Status::Error(std::string(what) + ": " + LZ4F_getErrorName(code));
}

}  // namespace

Lz4FrameWriter::Lz4FrameWriter(io::Writer& out) : out_(out) {}

Lz4FrameWriter::~Lz4FrameWriter() { LZ4F_freeCompressionContext(cctx_); }

Status Lz4FrameWriter::Begin() {
  size_t rc = LZ4F_createCompressionContext(&cctx_, LZ4F_VERSION);
  if (LZ4F_isError(rc)) return Lz4Error("lz4 compression context", rc);
  const LZ4F_preferences_t prefs = PageBlockPreferences();
  dst_.resize(std::max<size_t>(LZ4F_compressBound(kBlockSize, &prefs), LZ4F_HEADER_SIZE_MAX));
  size_t n = LZ4F_compressBegin(cctx_, dst_.data(), dst_.size(), &prefs);
  if (LZ4F_isError(n)) return Lz4Error("lz4 frame header", n);
  return out_.Write(std::span(dst_.data(), n));
}

Status Lz4FrameWriter::Write(std::span<const uint8_t> data) {
  if (cctx_ == nullptr) return Status::Error("lz4 frame writer used before Begin");
  while (!data.empty()) {
    std::span<const uint8_t> piece = data.first(std::min(data.size(), kBlockSize));
    size_t n =
        LZ4F_compressUpdate(cctx_, dst_.data(), dst_.size(), piece.data(), piece.size(), nullptr);
    if (LZ4F_isError(n)) return Lz4Error("lz4 compress", n);
    if (n > 0) LITEFS_RETURN_IF_ERROR(out_.Write(std::span(dst_.data(), n)));
    data = data.subspan(piece.size());
  }
  return Status();
}

Status Lz4FrameWriter::End() {
  if (cctx_ == nullptr) return Status::Error("lz4 frame writer used before Begin");
  size_t n = LZ4F_compressEnd(cctx_, dst_.data(), dst_.size(), nullptr);
  if (LZ4F_isError(n)) return Lz4Error("lz4 frame end", n);
  return out_.Write(std::span(dst_.data(), n));
}

Lz4FrameReader::Lz4FrameReader(io::Reader& in) : in_(in), hint_(kFirstHint) {}

Lz4FrameReader::~Lz4FrameReader() { LZ4F_freeDecompressionContext(dctx_); }

Result<size_t> Lz4FrameReader::Read(std::span<uint8_t> buf) {
  if (dctx_ == nullptr) {
    size_t rc = LZ4F_createDecompressionContext(&dctx_, LZ4F_VERSION);
    if (LZ4F_isError(rc)) return Lz4Error("lz4 decompression context", rc);
  }
  while (!buf.empty() && hint_ != 0) {
    if (src_pos_ == src_len_) {
      // Everything fed so far is consumed, so the hint is exact: reading
      // this many bytes never crosses the end of the frame.
      if (src_.size() < hint_) src_.resize(hint_);
      LITEFS_RETURN_IF_ERROR(io::ReadFull(in_, std::span(src_.data(), hint_), "lz4 frame"));
      src_pos_ = 0;
      src_len_ = hint_;
    }
    size_t dst_size = buf.size();
    size_t src_size = src_len_ - src_pos_;
    size_t hint =
        LZ4F_decompress(dctx_, buf.data(), &dst_size, src_.data() + src_pos_, &src_size, nullptr);
    if (LZ4F_isError(hint)) return Lz4Error("corrupt lz4 frame", hint);
    src_pos_ += src_size;
    if (src_pos_ == src_len_) {
      hint_ = hint;
    } else if (hint == 0) {
      return Status::Error(
          "corrupt lz4 frame: frame ended before the bytes its own hints announced");
    }
    if (dst_size > 0) return dst_size;
  }
  return size_t(0);
}

}  // namespace litefs::ltx
