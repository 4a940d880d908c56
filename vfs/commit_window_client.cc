// See commit_window_client.h.
#include "vfs/commit_window_client.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "vfs/commit_window.h"
#include "vfs/process_id.h"

namespace litefs::vfs {
namespace {

bool SetLock(int fd, short type) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = window::kLockOffset;
  fl.l_len = window::kLockLength;
  while (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    if (errno != EINTR) return false;
  }
  return true;
}

uint64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

}  // namespace

CommitWindowClient::~CommitWindowClient() {
  if (pid_ == CurrentPid()) Leave();
  Unmap();
}

void CommitWindowClient::Unmap() {
  if (map_) munmap(const_cast<uint8_t*>(map_), window::kFileSize);
  if (fd_ >= 0) close(fd_);  // the lock is released with the last descriptor of its description
  map_ = nullptr;
  fd_ = -1;
  entered_ = false;
}

bool CommitWindowClient::Map() {
  if (map_ && pid_ == CurrentPid()) return true;
  Unmap();  // inherited across fork: the parent's lock is not ours to release
  int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error_ = "cannot open " + path_ + ": " + std::strerror(errno) + " (is the litefs sidecar running?)";
    return false;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || size_t(st.st_size) < window::kFileSize) {
    close(fd);
    error_ = path_ + " is not a commit window file (is the litefs sidecar older than this library?)";
    return false;
  }
  void* p = mmap(nullptr, window::kFileSize, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    error_ = "cannot map " + path_ + ": " + std::strerror(errno);
    close(fd);
    return false;
  }
  const auto* bytes = static_cast<const uint8_t*>(p);
  if (std::memcmp(bytes + window::kMagicOffset, window::kMagic, sizeof window::kMagic) != 0) {
    munmap(p, window::kFileSize);
    close(fd);
    error_ = path_ + " is not a commit window file (is the litefs sidecar older than this library?)";
    return false;
  }
  fd_ = fd;
  map_ = bytes;
  pid_ = CurrentPid();
  return true;
}

CommitWindowClient::Verdict CommitWindowClient::Enter() {
  if (entered_ && pid_ == CurrentPid()) return Verdict::kOpen;
  if (!Map()) return Verdict::kUnavailable;
  if (!SetLock(fd_, F_RDLCK)) {
    // The sidecar holds the exclusive lock: it is closing the window.
    error_ = "this node is handing over or stepping down as the primary";
    return Verdict::kClosed;
  }
  Verdict v = Check();
  if (v != Verdict::kOpen) {
    SetLock(fd_, F_UNLCK);
    return v;
  }
  entered_ = true;
  return Verdict::kOpen;
}

CommitWindowClient::Verdict CommitWindowClient::Check() {
  if (!Map()) return Verdict::kUnavailable;
  const uint64_t open_until = Word(window::kOpenUntilOffset);
  if (open_until == window::kClosed) {
    error_ = "this node is not the primary (any more)";
    return Verdict::kClosed;
  }
  if (open_until != window::kNoDeadline && MonotonicNs() >= open_until) {
    error_ = "the primary's lease could not be renewed in time";
    return Verdict::kExpired;
  }
  return Verdict::kOpen;
}

uint64_t CommitWindowClient::Word(size_t offset) const {
  auto* word = const_cast<uint64_t*>(reinterpret_cast<const volatile uint64_t*>(map_ + offset));
  return std::atomic_ref<uint64_t>(*word).load(std::memory_order_acquire);
}

std::optional<uint64_t> CommitWindowClient::Generation() {
  if (!Map()) return std::nullopt;
  return Word(window::kGenerationOffset);
}

bool CommitWindowClient::MayBeginUnasked(uint64_t generation) {
  if (!Map() || Word(window::kGenerationOffset) != generation) return false;
  const uint64_t approve_until = Word(window::kApproveUntilOffset);
  return approve_until == window::kNoDeadline ||
         (approve_until != window::kClosed && MonotonicNs() < approve_until);
}

bool CommitWindowClient::CaptureArmed(uint32_t slot, uint64_t generation) {
  if (slot == 0 || slot > window::kCaptureSlots || !Map()) return false;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // The armed word first: a sidecar bumps the generation before it arms
  // anything, so an armed word set by a later sidecar (whose slots differ)
  // comes with a generation this connection was not approved under.
  if (Word(window::CaptureArmedOffset(slot)) == 0) return false;
  return Word(window::kGenerationOffset) == generation;
}

std::optional<uint64_t> CommitWindowClient::RollbackCaptured(uint32_t slot, uint64_t generation) {
  if (slot == 0 || slot > window::kCaptureSlots || !Map()) return std::nullopt;
  // The word first, as in CaptureArmed: a later sidecar bumps the
  // generation before it publishes any word.
  const uint64_t word = Word(window::RollbackCapturedOffset(slot));
  if (Word(window::kGenerationOffset) != generation) return std::nullopt;
  return word;
}

void CommitWindowClient::Leave() {
  if (!entered_ || pid_ != CurrentPid()) return;
  SetLock(fd_, F_UNLCK);
  entered_ = false;
}

}  // namespace litefs::vfs
