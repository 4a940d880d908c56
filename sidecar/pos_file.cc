// See pos_file.h.
#include "sidecar/pos_file.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "sidecar/fsutil.h"

namespace litefs {
namespace {

constexpr mode_t kMode = 0644;

// A broken lease is signalled with SIGIO, whose default action ends the
// process; the writer never needs the signal (it releases its lease within
// microseconds anyway), so it is ignored unless someone handles it.
void IgnoreLeaseBreakSignal() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (sigaction(SIGIO, nullptr, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO)) {
      signal(SIGIO, SIG_IGN);
    }
  });
}

std::string SparePathFor(const std::string& path) {
  return fs::Dirname(path) + "/." + fs::Basename(path) + ".next";
}

}  // namespace

PosFile::PosFile(std::string path) : path_(std::move(path)), spare_path_(SparePathFor(path_)) {
  IgnoreLeaseBreakSignal();
}

Status PosFile::Write(std::string_view content, const struct timespec* mtime) {
  Result<Outcome> in_place = WriteInPlace(content, mtime);
  if (!in_place.ok()) return in_place.status();
  if (*in_place == Outcome::kDone) return Status();
  fd_.Reset();  // the name is about to point to another file
  Result<Outcome> swapped = WriteSpareAndSwap(content, mtime);
  if (!swapped.ok()) return swapped.status();
  if (*swapped == Outcome::kDone) {
    swaps_++;
    return Status();
  }
  fallbacks_++;
  return fs::WriteFileAtomic(path_, content, /*sync=*/false, kMode, mtime);
}

namespace {

// Writes `content` (and `mtime`) over the file open as `fd` (`sb` its
// status), which must hold a write lease: no one else has it open.
Status Overwrite(int fd, const struct stat& sb, const std::string& path, std::string_view content,
                 const struct timespec* mtime) {
  LITEFS_RETURN_IF_ERROR(fs::PwriteFull(fd, content.data(), content.size(), 0));
  if (sb.st_size > off_t(content.size()) && ftruncate(fd, off_t(content.size())) != 0) {
    return fs::ErrnoError("truncate", path);
  }
  if (mtime) {
    struct timespec times[2] = {*mtime, *mtime};
    if (futimens(fd, times) != 0) return fs::ErrnoError("set the time of", path);
  }
  return Status();
}

}  // namespace

Result<PosFile::Outcome> PosFile::WriteInPlace(std::string_view content, const struct timespec* mtime) {
  if (!fd_.valid()) {
    Result<fs::UniqueFd> fd = fs::Open(path_, O_WRONLY);
    if (!fd.ok()) return Outcome::kFallBack;  // none yet: the swap creates it
    fd_ = std::move(fd).value();
  }
  // Refused while a reader has the file open, and where leases are not
  // supported.
  if (fcntl(fd_.get(), F_SETLEASE, F_WRLCK) != 0) return Outcome::kFallBack;
  struct stat sb;
  Status st = fstat(fd_.get(), &sb) == 0 ? Status() : fs::ErrnoError("stat", path_);
  // Deleted or replaced behind our back: the name needs a file again.
  const bool unlinked = st.ok() && sb.st_nlink == 0;
  if (st.ok() && !unlinked) st = Overwrite(fd_.get(), sb, path_, content, mtime);
  fcntl(fd_.get(), F_SETLEASE, F_UNLCK);
  if (!st.ok()) return st;
  return unlinked ? Outcome::kFallBack : Outcome::kDone;
}

Result<PosFile::Outcome> PosFile::WriteSpareAndSwap(std::string_view content,
                                                    const struct timespec* mtime) {
  Result<fs::UniqueFd> fd = fs::Open(spare_path_, O_WRONLY);
  if (!fd.ok() && errno == ENOENT) {
    fd = fs::Open(spare_path_, O_WRONLY | O_CREAT | O_EXCL, kMode);
    // The umask must not narrow what readers of the file may do.
    if (fd.ok() && fchmod(fd->get(), kMode) != 0) return fs::ErrnoError("chmod", spare_path_);
  }
  if (!fd.ok()) return Outcome::kFallBack;
  // Refused while a reader has the spare open (it was `-pos` before an
  // earlier swap), and where leases are not supported.
  if (fcntl(fd->get(), F_SETLEASE, F_WRLCK) != 0) return Outcome::kFallBack;
  struct stat sb;
  if (fstat(fd->get(), &sb) != 0) return fs::ErrnoError("stat", spare_path_);
  Status st = Overwrite(fd->get(), sb, spare_path_, content, mtime);
  if (!st.ok()) return st;
  // The lease is held until the new content is in place under the name: a
  // reader that looked the name up while this file was still `-pos` (before
  // an earlier swap) and opens it only now waits in open() until then, and
  // so never reads a position that `-pos` does not show yet.
  if (renameat2(AT_FDCWD, spare_path_.c_str(), AT_FDCWD, path_.c_str(), RENAME_EXCHANGE) != 0 &&
      rename(spare_path_.c_str(), path_.c_str()) != 0) {
    // No `-pos` yet (ENOENT) or no RENAME_EXCHANGE here: a plain rename is
    // just as atomic for readers; the spare is created again next time.
    st = fs::ErrnoError("rename", spare_path_);
  }
  fcntl(fd->get(), F_SETLEASE, F_UNLCK);
  if (!st.ok()) return st;
  return Outcome::kDone;
}

}  // namespace litefs
