// libFuzzer target: the LTX decoder on arbitrary bytes must fail cleanly
// (a Status), never crash, hang or leak. Seeds: tests/testdata/ltx.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "ltx/decoder.h"
#include "ltx/io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  litefs::io::BufferReader reader({data, size});
  litefs::Result<std::unique_ptr<litefs::ltx::Decoder>> dec = litefs::ltx::Decoder::Open(reader);
  if (!dec.ok()) return 0;
  std::vector<uint8_t> page;
  for (;;) {
    litefs::Result<uint32_t> pgno = (*dec)->NextPage(page);
    if (!pgno.ok() || *pgno == 0) break;
  }
  (void)(*dec)->Finish();
  return 0;
}
