// The sidecar lock page (vfs/connection_page.h): a sealed memfd whose
// robust mutex the sidecar's loop thread holds while it serves apps, so an
// app tells a live sidecar from a dead one with a load, no system call.
// Create, Release and the destructor run on the loop thread: the mutex
// belongs to the thread that locked it, and the kernel marks it dead when
// that thread ends.
#pragma once

#include <cstdint>
#include <memory>

#include "ltx/status.h"
#include "sidecar/fsutil.h"

namespace litefs {

class SidecarLock {
 public:
  // Maps, locks and seals a fresh page. An error where the platform's mutex
  // is not the one apps read (then apps peek at their sockets instead).
  static Result<std::unique_ptr<SidecarLock>> Create();
  ~SidecarLock();
  SidecarLock(const SidecarLock&) = delete;
  SidecarLock& operator=(const SidecarLock&) = delete;

  // The descriptor sent to each app with the answer to Hello (read-only
  // mappings only: the page is sealed against new writable ones).
  int fd() const { return fd_.get(); }
  // Apps see the sidecar gone from now on (it stops serving). Idempotent.
  void Release();
  bool held() const { return held_; }

 private:
  SidecarLock(fs::UniqueFd fd, uint8_t* page) : fd_(std::move(fd)), page_(page) {}

  fs::UniqueFd fd_;
  uint8_t* page_;
  bool held_ = false;
};

}  // namespace litefs
