// `<dir>/.lag` as LiteFS shows it (reference §6): the replication lag in
// milliseconds, printf "%+010d\n" (11 bytes up to +999999999): +000000000
// on the primary, +2147483647 before the first heartbeat, otherwise local time
// minus the last primary timestamp (the latest heartbeat or applied LTX).
// Rewritten atomically every second, so a replica cut off from its primary
// shows a growing lag; its mtime is the last primary timestamp.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

namespace litefs {

class LagFile {
 public:
  // `last_primary_ms` returns the timestamp, 0 meaning "this is the primary".
  LagFile(uv_loop_t* loop, std::string path, std::function<int64_t()> last_primary_ms);
  ~LagFile();
  void Start();
  void Stop();
  // The lag now, in milliseconds, as shown in the file.
  int64_t LagMs() const;

 private:
  void Write();

  uv_loop_t* loop_;
  std::string path_;
  std::function<int64_t()> last_primary_ms_;
  uv_timer_t* timer_ = nullptr;
};

std::string FormatLag(int64_t lag_ms);  // "%+010d\n", clamped to 2147483647

}  // namespace litefs
