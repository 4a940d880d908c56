// One LZ4 frame as the LTX page block uses it (internal to ltx/).
//
// Lz4FrameWriter compresses everything written to it into a single frame with
// the parameters pierrec/lz4 uses for LiteFS: independent 64 KiB blocks,
// content checksum, no block checksums, no content size, fast level
// (FLG=0x64, BD=0x40). Memory is bounded by one block plus its bound.
//
// Lz4FrameReader returns the decompressed bytes of exactly one frame and then
// 0 (end of input). It asks its source for exactly the number of bytes
// liblz4 hints, so it never consumes a byte past the end of the frame: the
// LTX trailer that follows stays unread. The content checksum is verified
// when present; a damaged or truncated frame is an error naming the cause.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ltx/io.h"
#include "ltx/status.h"

struct LZ4F_cctx_s;
struct LZ4F_dctx_s;

namespace litefs::ltx {

class Lz4FrameWriter final : public io::Writer {
 public:
  // Compressed bytes go to `out` (not owned).
  explicit Lz4FrameWriter(io::Writer& out);
  ~Lz4FrameWriter() override;
  Lz4FrameWriter(const Lz4FrameWriter&) = delete;
  Lz4FrameWriter& operator=(const Lz4FrameWriter&) = delete;

  // Writes the frame header; call once before anything else.
  Status Begin();
  Status Write(std::span<const uint8_t> data) override;
  // Flushes the last block, writes the end mark and the content checksum.
  Status End();

 private:
  io::Writer& out_;
  LZ4F_cctx_s* cctx_ = nullptr;
  std::vector<uint8_t> dst_;
};

class Lz4FrameReader final : public io::Reader {
 public:
  explicit Lz4FrameReader(io::Reader& in);
  ~Lz4FrameReader() override;
  Lz4FrameReader(const Lz4FrameReader&) = delete;
  Lz4FrameReader& operator=(const Lz4FrameReader&) = delete;

  Result<size_t> Read(std::span<uint8_t> buf) override;

 private:
  io::Reader& in_;
  LZ4F_dctx_s* dctx_ = nullptr;
  std::vector<uint8_t> src_;  // compressed bytes read, not yet consumed
  size_t src_pos_ = 0, src_len_ = 0;
  size_t hint_;  // bytes liblz4 wants next; 0 once the frame ended
};

}  // namespace litefs::ltx
