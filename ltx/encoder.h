// Streaming LTX encoder. Pages are written one at a time (strictly ascending,
// never the lock page, every page 1..commit for snapshots); the page block is
// LZ4-framed when the header says so. Output is byte-identical to
// superfly/ltx v0.3.14 for uncompressed files.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "ltx/header.h"
#include "ltx/io.h"
#include "ltx/status.h"

namespace litefs::ltx {

class Encoder {
 public:
  // Validates and writes the header. Output is buffered (256 KiB): bytes
  // reach `out` in large pieces, and all of them once Finish succeeds. A page
  // EncodePage refuses leaves the encoder usable; a write error is sticky.
  static Result<std::unique_ptr<Encoder>> Begin(io::Writer& out, const Header& header);
  ~Encoder();

  Status EncodePage(uint32_t pgno, std::span<const uint8_t> page);

  // Writes the page-block terminator (and closes the LZ4 frame) and the
  // trailer. Returns the trailer written (post-apply and file checksums).
  Result<Trailer> Finish(uint64_t post_apply_checksum);

  const Header& header() const;
  uint32_t pages_written() const;

 private:
  struct Impl;
  explicit Encoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace litefs::ltx
