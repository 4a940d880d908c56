// See sidecar_lock.h.
#include "sidecar/sidecar_lock.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "vfs/connection_page.h"

namespace litefs {
namespace {

namespace page_layout = connection_page::sidecar_lock;

pthread_mutex_t* Mutex(uint8_t* page) {
  static_assert(sizeof(pthread_mutex_t) <= page_layout::kMutexRoom);
  return reinterpret_cast<pthread_mutex_t*>(page + page_layout::kMutexOffset);
}

uint32_t FutexWord(uint8_t* page) {
  return __atomic_load_n(reinterpret_cast<uint32_t*>(page + page_layout::kMutexOffset),
                         __ATOMIC_SEQ_CST);
}

Status Errno(const char* what) { return Status::Error(std::string(what) + ": " + strerror(errno)); }

}  // namespace

Result<std::unique_ptr<SidecarLock>> SidecarLock::Create() {
  int raw = memfd_create("litefs-sidecar-lock", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (raw < 0) return Errno("memfd_create");
  fs::UniqueFd fd(raw);
  if (ftruncate(fd.get(), off_t(page_layout::kSize)) != 0) return Errno("ftruncate");
  void* p = mmap(nullptr, page_layout::kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return Errno("mmap");
  std::unique_ptr<SidecarLock> lock(new SidecarLock(std::move(fd), static_cast<uint8_t*>(p)));
  std::memcpy(lock->page_, page_layout::kMagic, sizeof page_layout::kMagic);

  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  int rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (rc == 0) rc = pthread_mutex_init(Mutex(lock->page_), &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc == 0) rc = pthread_mutex_lock(Mutex(lock->page_));
  if (rc != 0) return Status::Error(std::string("robust mutex: ") + strerror(rc));
  lock->held_ = true;
  // Apps read the futex word, not the mutex: it must name this thread.
  if ((FutexWord(lock->page_) & FUTEX_TID_MASK) != uint32_t(gettid())) {
    return Status::Error("this C library's mutex does not keep its owner in its first word");
  }
  // No one maps it writable from now on; this mapping stays writable.
  if (fcntl(lock->fd_.get(), F_ADD_SEALS,
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0) {
    return Errno("sealing the sidecar lock page");
  }
  return lock;
}

void SidecarLock::Release() {
  if (!held_) return;
  pthread_mutex_unlock(Mutex(page_));
  held_ = false;
}

SidecarLock::~SidecarLock() {
  Release();
  munmap(page_, page_layout::kSize);
}

}  // namespace litefs
