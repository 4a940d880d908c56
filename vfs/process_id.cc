// See process_id.h.
#include "vfs/process_id.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>

namespace litefs::vfs {
namespace {

std::atomic<pid_t> cached_pid{0};

void RefreshInChild() { cached_pid.store(getpid(), std::memory_order_relaxed); }

}  // namespace

pid_t CurrentPid() {
  static const bool registered = [] {
    cached_pid.store(getpid(), std::memory_order_relaxed);
    pthread_atfork(nullptr, nullptr, RefreshInChild);
    return true;
  }();
  (void)registered;
  return cached_pid.load(std::memory_order_relaxed);
}

}  // namespace litefs::vfs
