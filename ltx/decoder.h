// Streaming LTX decoder that validates as it reads: header rules, page order
// (ascending, no lock page, snapshot completeness), LZ4 frame integrity, the
// file checksum, and for snapshots the post-apply checksum recomputed from
// the pages. It never reads past the trailer. Errors say what is wrong
// ("file checksum mismatch", "page 3 out of order after 5", ...).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "ltx/header.h"
#include "ltx/io.h"
#include "ltx/status.h"

namespace litefs::ltx {

class Decoder {
 public:
  // Reads and validates the header.
  static Result<std::unique_ptr<Decoder>> Open(io::Reader& in);
  ~Decoder();

  const Header& header() const;

  // Reads the next page into `page` (resized to the page size). Returns the
  // page number, or 0 once the page block has ended.
  Result<uint32_t> NextPage(std::vector<uint8_t>& page);

  // Reads the trailer (after NextPage returned 0) and verifies the file
  // checksum and, for snapshots, the post-apply checksum.
  Result<Trailer> Finish();

 private:
  struct Impl;
  explicit Decoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Reads a whole LTX from `in`, verifying everything, discarding the pages.
Result<std::pair<Header, Trailer>> Verify(io::Reader& in);

}  // namespace litefs::ltx
