// `<dir>/<db>-pos`: the position file that LiteFS clients (litefs-js and
// others) read with a plain open + read, rewritten after every commit.
//
// Readers must never see it torn or missing. Instead of creating a temp file
// and renaming it over the old one at every commit (an inode allocation and
// a free per commit, which ext4 makes expensive), two long-lived files take
// turns: the new content is written into the spare `<dir>/.<db>-pos.next`,
// then renameat2(RENAME_EXCHANGE) swaps the two names in one step.
//
// The spare is the file readers saw as `-pos` one commit earlier; a reader
// may still have it open. Before overwriting it the writer takes a write
// lease (F_SETLEASE F_WRLCK), which the kernel grants only if no one else
// has the file open, and which makes a later open of it wait until the
// write is done. If the lease is refused, or the file system lacks leases or
// RENAME_EXCHANGE, the file is replaced the old way (temp file + rename).
//
// One writer per file (the database's strand). Lease breaks are signalled
// with SIGIO, so the first PosFile sets SIGIO to ignored if it was default.
#pragma once

#include <time.h>

#include <string>
#include <string_view>

#include "ltx/status.h"

namespace litefs {

class PosFile {
 public:
  explicit PosFile(std::string path);

  const std::string& path() const { return path_; }
  const std::string& spare_path() const { return spare_path_; }

  // Makes `content` what readers of path() see, with `mtime` (if given) as
  // its modification time. Not synced: the position is rebuilt by recovery.
  Status Write(std::string_view content, const struct timespec* mtime);

  // How many writes fell back to temp file + rename (tests, diagnostics).
  uint64_t fallbacks() const { return fallbacks_; }

 private:
  enum class Swap { kDone, kFallBack };
  Result<Swap> WriteSpareAndSwap(std::string_view content, const struct timespec* mtime);

  std::string path_;
  std::string spare_path_;
  uint64_t fallbacks_ = 0;
};

}  // namespace litefs
