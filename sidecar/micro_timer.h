// A one-shot timer with microsecond resolution on a libuv loop (libuv's own
// timers count whole milliseconds): a timerfd watched by a uv_poll_t. Loop
// thread only. Like a uv handle it never keeps the loop alive, and it is
// freed through the loop: Destroy(), never delete.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>

namespace litefs {

class MicroTimer {
 public:
  // nullptr if the system has no timerfd.
  static MicroTimer* Create(uv_loop_t* loop);
  // Stops it and frees it once the loop has closed its handle.
  static void Destroy(MicroTimer* timer);

  // Runs `fn` once, `delay` from now (replacing a pending start).
  void Start(std::chrono::microseconds delay, std::function<void()> fn);
  void Stop();
  bool active() const { return active_; }

 private:
  MicroTimer() = default;
  ~MicroTimer();
  static void OnReadable(uv_poll_t* poll, int status, int events);

  int fd_ = -1;
  uv_poll_t poll_;
  bool active_ = false;
  std::function<void()> fn_;
};

}  // namespace litefs
