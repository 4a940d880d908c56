// Wall-clock time in milliseconds since the epoch: LTX timestamps,
// heartbeats and the lag LiteFS defines are all in this unit.
#pragma once

#include <sys/time.h>

#include <cstdint>

namespace litefs {

inline int64_t WallClockMs() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return int64_t(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

}  // namespace litefs
