// Watches the primary's databases for being deleted or renamed away, so that
// the deletion replicates as LiteFS's deletion marker (an LTX with commit 0).
// Apps delete files with plain unlink(2), which no VFS sees.
//
// Each database file is watched itself (inotify on its inode: the link count
// changing, a rename, the inode going), not the directory: a directory watch
// for deletions also reports every rollback journal SQLite deletes, and each
// such event woke the sidecar — and cost the app the cross-CPU wake-up — at
// every DELETE-mode commit. A file is watched from the first check that
// finds it (once a second, over the databases the store knows); a database
// found missing by that check counts as deleted too, so one created and
// deleted between two checks is not missed.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <map>
#include <string>

#include "ltx/status.h"
#include "sidecar/store.h"

namespace litefs {

class DirWatcher {
 public:
  DirWatcher(uv_loop_t* loop, Store& store) : loop_(loop), store_(store) {}
  ~DirWatcher();

  Status Start(const std::string& dir);
  void Stop();

  static constexpr uint64_t kCheckIntervalMs = 1000;

 private:
  static void OnReadable(uv_poll_t* handle, int status, int events);
  void ReadEvents();
  void CheckAll();  // watches new files; treats missing ones as deleted
  void Check(const std::string& name);
  void Removed(const std::string& name);

  uv_loop_t* loop_;
  Store& store_;
  std::string dir_;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* check_timer_ = nullptr;
  // What each database's name led to at its last check.
  struct Watched {
    bool checked = false;
    ino_t ino = 0;  // 0: missing
    int wd = -1;    // the watch on that file, if any
  };
  std::map<std::string, Watched> by_name_;
  std::map<int, std::string> by_wd_;
};

}  // namespace litefs
