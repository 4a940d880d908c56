// libFuzzer target: the commit socket's frame reader on arbitrary bytes
// (what a misbehaving or hostile local process could send the sidecar).
#include <cstddef>
#include <cstdint>

#include "vfs/commit_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  litefs::wire::FrameReader reader;
  reader.Append({data, size});
  litefs::wire::Message msg;
  for (int i = 0; i < 1000; i++) {
    litefs::Result<bool> got = reader.Next(msg);
    if (!got.ok() || !*got) break;
  }
  return 0;
}
