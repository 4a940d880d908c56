// Streams an HTTP request body into a new file with backpressure: reading
// the socket pauses while a piece is written (libuv's thread-pool file I/O,
// never blocking the loop), so memory stays at about one socket read
// whatever the body size. The first `head_bytes` (fewer only when that is
// the whole body) are shown to `check_head` before anything is written, so
// an upload of the wrong kind is refused without storing it.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "ltx/status.h"
#include "proxy/http/exchange.h"

namespace litefs {

struct UploadLimits {
  size_t head_bytes = 100;
  uint64_t max_bytes = uint64_t(1) << 40;  // refuse anything larger
};

// `done` runs once on the loop: ok with the byte count once the body is
// complete and written, or the first error (client gone, write failure,
// `check_head` refusal, too large). On error the caller removes `path`.
void UploadToFile(uv_loop_t* loop, std::shared_ptr<http::Exchange> ex, std::string path,
                  UploadLimits limits, std::function<Status(std::span<const uint8_t>)> check_head,
                  std::function<void(Result<uint64_t>)> done);

}  // namespace litefs
