// See micro_timer.h.
#include "sidecar/micro_timer.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdint>

namespace litefs {

MicroTimer* MicroTimer::Create(uv_loop_t* loop) {
  int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) return nullptr;
  auto* t = new MicroTimer;
  t->fd_ = fd;
  if (uv_poll_init(loop, &t->poll_, fd) != 0) {
    close(fd);
    t->fd_ = -1;
    delete t;
    return nullptr;
  }
  t->poll_.data = t;
  uv_unref(reinterpret_cast<uv_handle_t*>(&t->poll_));
  return t;
}

void MicroTimer::Destroy(MicroTimer* timer) {
  if (!timer) return;
  timer->Stop();
  timer->fn_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer->poll_),
           [](uv_handle_t* h) { delete static_cast<MicroTimer*>(h->data); });
}

MicroTimer::~MicroTimer() {
  if (fd_ >= 0) close(fd_);
}

void MicroTimer::Start(std::chrono::microseconds delay, std::function<void()> fn) {
  fn_ = std::move(fn);
  const int64_t us = delay.count() > 0 ? delay.count() : 1;  // 0 would disarm it
  struct itimerspec spec {};
  spec.it_value.tv_sec = us / 1000000;
  spec.it_value.tv_nsec = (us % 1000000) * 1000;
  timerfd_settime(fd_, 0, &spec, nullptr);
  if (!active_) uv_poll_start(&poll_, UV_READABLE, OnReadable);
  active_ = true;
}

void MicroTimer::Stop() {
  if (!active_) return;
  struct itimerspec none {};
  timerfd_settime(fd_, 0, &none, nullptr);
  uv_poll_stop(&poll_);
  active_ = false;
}

void MicroTimer::OnReadable(uv_poll_t* poll, int status, int) {
  auto* self = static_cast<MicroTimer*>(poll->data);
  uint64_t expirations;
  if (read(self->fd_, &expirations, sizeof expirations) != sizeof expirations && status == 0) {
    return;  // restarted since it fired: not due yet
  }
  self->Stop();
  std::function<void()> fn = std::move(self->fn_);
  self->fn_ = nullptr;
  if (fn) fn();
}

}  // namespace litefs
