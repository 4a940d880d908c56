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
  Result<Swap> swapped = WriteSpareAndSwap(content, mtime);
  if (!swapped.ok()) return swapped.status();
  if (*swapped == Swap::kDone) return Status();
  fallbacks_++;
  return fs::WriteFileAtomic(path_, content, /*sync=*/false, kMode, mtime);
}

Result<PosFile::Swap> PosFile::WriteSpareAndSwap(std::string_view content,
                                                 const struct timespec* mtime) {
  Result<fs::UniqueFd> fd = fs::Open(spare_path_, O_WRONLY);
  if (!fd.ok() && errno == ENOENT) {
    fd = fs::Open(spare_path_, O_WRONLY | O_CREAT | O_EXCL, kMode);
    // The umask must not narrow what readers of the file may do.
    if (fd.ok() && fchmod(fd->get(), kMode) != 0) return fs::ErrnoError("chmod", spare_path_);
  }
  if (!fd.ok()) return Swap::kFallBack;
  // Refused while a reader has the file open (it was `-pos` a commit ago),
  // and where leases are not supported.
  if (fcntl(fd->get(), F_SETLEASE, F_WRLCK) != 0) return Swap::kFallBack;
  Status st = fs::PwriteFull(fd->get(), content.data(), content.size(), 0);
  struct stat sb;
  if (st.ok() && fstat(fd->get(), &sb) != 0) st = fs::ErrnoError("stat", spare_path_);
  if (st.ok() && sb.st_size > off_t(content.size()) && ftruncate(fd->get(), off_t(content.size())) != 0) {
    st = fs::ErrnoError("truncate", spare_path_);
  }
  if (st.ok() && mtime) {
    struct timespec times[2] = {*mtime, *mtime};
    if (futimens(fd->get(), times) != 0) st = fs::ErrnoError("set the time of", spare_path_);
  }
  if (!st.ok()) return st;
  // The lease is held until the new content is in place under the name: a
  // reader that looked the name up while this file was still `-pos` (before
  // the last swap) and opens it only now waits in open() until then, and so
  // never reads a position that `-pos` does not show yet.
  Swap result = Swap::kDone;
  if (renameat2(AT_FDCWD, spare_path_.c_str(), AT_FDCWD, path_.c_str(), RENAME_EXCHANGE) != 0 &&
      rename(spare_path_.c_str(), path_.c_str()) != 0) {
    // No `-pos` yet (ENOENT) or no RENAME_EXCHANGE here: a plain rename is
    // just as atomic for readers; the spare is created again next time.
    st = fs::ErrnoError("rename", spare_path_);
  }
  fcntl(fd->get(), F_SETLEASE, F_UNLCK);
  fd->Reset();
  if (!st.ok()) return st;
  return result;
}

}  // namespace litefs
