// See commit_window.h.
#include "sidecar/commit_window.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "vfs/commit_window.h"

namespace litefs {
namespace {

std::atomic_ref<uint64_t> Word(uint8_t* map, size_t offset) {
  return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(map + offset));
}

// CLOCK_MONOTONIC nanoseconds of `t` for the apps (steady_clock is
// CLOCK_MONOTONIC on Linux); a time before the clock's start means closed.
uint64_t MonotonicWord(std::chrono::steady_clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return ns <= 0 ? window::kClosed : uint64_t(ns);
}

}  // namespace

Result<std::unique_ptr<CommitWindow>> CommitWindow::Open(const std::string& dir) {
  const std::string path = dir + "/" + window::kFileName;
  Result<fs::UniqueFd> fd = fs::Open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (!fd.ok()) return fd.status();
  // One sidecar per directory: a second one (another data dir) would take
  // over the commit socket and record the same commits in its own history.
  // (flock is independent of the OFD record locks apps take on the file.)
  if (flock(fd->get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return Status::Error("another litefs serves dir " + dir + " (" + path + " is locked)");
    return fs::ErrnoError("lock", path);
  }
  // Apps running as another user only need to read it.
  if (fchmod(fd->get(), 0644) != 0) return fs::ErrnoError("chmod", path);
  struct stat st {};
  if (fstat(fd->get(), &st) != 0) return fs::ErrnoError("stat", path);
  if (size_t(st.st_size) != window::kFileSize && ftruncate(fd->get(), off_t(window::kFileSize)) != 0) {
    return fs::ErrnoError("truncate", path);
  }
  void* p = mmap(nullptr, window::kFileSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd->get(), 0);
  if (p == MAP_FAILED) return fs::ErrnoError("mmap", path);
  auto* map = static_cast<uint8_t*>(p);
  std::unique_ptr<CommitWindow> w(new CommitWindow(std::move(*fd), map));
  w->Close();  // before the magic: a reader that sees the magic sees a valid word
  // A previous sidecar's armed words mean nothing now; Close() bumped the
  // generation first, so an app that read one of them does not trust it.
  for (uint32_t slot = 1; slot <= window::kCaptureSlots; slot++) {
    w->ArmCapture(slot, false);
    w->PublishRollbackCaptured(slot, std::nullopt);
  }
  std::memcpy(map + window::kMagicOffset, window::kMagic, sizeof window::kMagic);
  return w;
}

CommitWindow::~CommitWindow() {
  Close();  // apps must not commit on the word of a sidecar that is gone
  munmap(map_, window::kFileSize);
}

void CommitWindow::Publish(size_t offset, uint64_t value) {
  Word(map_, offset).store(value, std::memory_order_release);
}

void CommitWindow::OpenUntil(std::optional<std::chrono::steady_clock::time_point> deadline,
                             std::chrono::nanoseconds approval_lead) {
  if (!deadline) {
    Publish(window::kApproveUntilOffset, window::kNoDeadline);
    return Publish(window::kOpenUntilOffset, window::kNoDeadline);
  }
  Publish(window::kApproveUntilOffset, MonotonicWord(*deadline - approval_lead));
  Publish(window::kOpenUntilOffset, MonotonicWord(*deadline));
}

void CommitWindow::Close() {
  Publish(window::kOpenUntilOffset, window::kClosed);
  Publish(window::kApproveUntilOffset, window::kClosed);
  WithdrawApprovals();
}

void CommitWindow::WithdrawApprovals() {
  // seq_cst: before the drain reads the apps' connection pages, as an app
  // marks its page before it reads the generation (vfs/db_file.cc).
  Word(map_, window::kGenerationOffset).fetch_add(1, std::memory_order_seq_cst);
}

uint32_t CommitWindow::AssignCaptureSlot() {
  if (capture_slots_assigned_ >= window::kCaptureSlots) return 0;
  return ++capture_slots_assigned_;
}

void CommitWindow::ArmCapture(uint32_t slot, bool armed) {
  if (slot == 0 || slot > window::kCaptureSlots) return;
  // seq_cst: disarming is ordered before the capture's read of the
  // wal-index, as the app orders its publish before reading this word.
  Word(map_, window::CaptureArmedOffset(slot)).store(armed ? 1 : 0, std::memory_order_seq_cst);
}

void CommitWindow::PublishRollbackCaptured(uint32_t slot, std::optional<uint32_t> change_counter) {
  if (slot == 0 || slot > window::kCaptureSlots) return;
  // Release: the capture's reads of the database happened before a writer
  // that sees the word overwrites what they read.
  Publish(window::RollbackCapturedOffset(slot),
          change_counter ? window::kRollbackTracked | *change_counter : window::kRollbackUntracked);
}

bool CommitWindow::NoCommitInFlight() {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = window::kLockOffset;
  fl.l_len = window::kLockLength;
  if (fcntl(fd_.get(), F_OFD_SETLK, &fl) != 0) return false;
  fl.l_type = F_UNLCK;
  fcntl(fd_.get(), F_OFD_SETLK, &fl);
  return true;
}

}  // namespace litefs
