// libFuzzer target: the replication stream's frame decoder and position map
// on arbitrary bytes, fed in pieces whose sizes come from the input too.
#include <cstddef>
#include <cstdint>

#include "sidecar/stream_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)litefs::stream::DecodePosMap({data, size});
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;
  litefs::stream::FrameDecoder decoder;
  size_t off = 1;
  size_t stops = 0;
  while (off < size) {
    size_t n = std::min(piece, size - off);
    litefs::Result<size_t> used = decoder.Feed({data + off, n}, [&](const litefs::stream::Event& e) {
      // Stop now and then, as the replica does at the end of each LTX.
      return !(e.kind == litefs::stream::Event::Kind::kLtxEnd && (stops++ % 2 == 0));
    });
    if (!used.ok()) return 0;
    off += *used == 0 && n > 0 ? n : *used;  // a stop with nothing consumed: move on
  }
  return 0;
}
