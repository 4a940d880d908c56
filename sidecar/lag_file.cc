// See lag_file.h.
#include "sidecar/lag_file.h"

#include <algorithm>
#include <cstdio>

#include "sidecar/fsutil.h"
#include "sidecar/clock.h"
#include "sidecar/log.h"

namespace litefs {
namespace {

constexpr int64_t kUnknownLag = 2147483647;

}  // namespace

std::string FormatLag(int64_t lag_ms) {
  char buf[32];
  snprintf(buf, sizeof buf, "%+010d\n", int(std::clamp<int64_t>(lag_ms, -kUnknownLag, kUnknownLag)));
  return buf;
}

LagFile::LagFile(uv_loop_t* loop, std::string path, std::function<int64_t()> last_primary_ms)
    : loop_(loop), path_(std::move(path)), last_primary_ms_(std::move(last_primary_ms)) {}

LagFile::~LagFile() { Stop(); }

void LagFile::Start() {
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  Write();
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<LagFile*>(t->data)->Write(); }, 1000, 1000);
}

void LagFile::Stop() {
  if (!timer_) return;
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  timer_ = nullptr;
}

int64_t LagFile::LagMs() const {
  int64_t last = last_primary_ms_();
  if (last == 0) return 0;               // the primary
  if (last < 0) return kUnknownLag;      // no heartbeat yet
  return std::max<int64_t>(0, WallClockMs() - last);
}

void LagFile::Write() {
  int64_t last = last_primary_ms_();
  struct timespec mtime;
  int64_t at = last > 0 ? last : WallClockMs();
  mtime.tv_sec = at / 1000;
  mtime.tv_nsec = (at % 1000) * 1000000;
  Status st = fs::WriteFileAtomic(path_, FormatLag(LagMs()), false, 0644, &mtime);
  if (!st.ok()) log::Warn("cannot update .lag", {{"error", st.message()}});
}

}  // namespace litefs
