// `<dir>/<db>-pos`: the position file that LiteFS clients (litefs-js and
// others) read with a plain open + read, rewritten after every commit.
//
// Readers must never see it torn or missing. The file is rewritten in place
// (one pwrite, no inode or directory change) under a write lease
// (F_SETLEASE F_WRLCK), which the kernel grants only while no one else has
// the file open, and which makes an open() of it wait until the lease is
// released: no reader can be reading while the bytes change.
//
// When the lease is refused (a reader has the file open) the new content
// goes into the spare `<dir>/.<db>-pos.next` (under a lease of its own), and
// renameat2(RENAME_EXCHANGE) swaps the two names in one step: the reader
// keeps what it opened. Without leases or RENAME_EXCHANGE the file is
// replaced the old way (temp file + rename).
//
// One writer per file (the database's strand). Lease breaks are signalled
// with SIGIO, so the first PosFile sets SIGIO to ignored if it was default.
#pragma once

#include <time.h>

#include <string>
#include <string_view>

#include "ltx/status.h"
#include "sidecar/fsutil.h"

namespace litefs {

class PosFile {
 public:
  explicit PosFile(std::string path);

  const std::string& path() const { return path_; }
  const std::string& spare_path() const { return spare_path_; }

  // Makes `content` what readers of path() see, with `mtime` (if given) as
  // its modification time. Not synced: the position is rebuilt by recovery.
  Status Write(std::string_view content, const struct timespec* mtime);

  // How many writes swapped in the spare, and how many fell back to temp
  // file + rename (tests, diagnostics).
  uint64_t swaps() const { return swaps_; }
  uint64_t fallbacks() const { return fallbacks_; }

 private:
  enum class Outcome { kDone, kFallBack };
  Result<Outcome> WriteInPlace(std::string_view content, const struct timespec* mtime);
  Result<Outcome> WriteSpareAndSwap(std::string_view content, const struct timespec* mtime);

  std::string path_;
  std::string spare_path_;
  fs::UniqueFd fd_;  // the file at path_, kept open between writes
  uint64_t swaps_ = 0, fallbacks_ = 0;
};

}  // namespace litefs
