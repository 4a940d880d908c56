// Watches the managed directory (inotify, through libuv) for databases
// deleted or renamed away on the primary, so that the deletion replicates
// as LiteFS's deletion marker (an LTX with commit 0). Apps delete files
// with plain unlink(2), which no VFS sees.
#pragma once

#include <uv.h>

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

 private:
  static void OnEvent(uv_fs_event_t* handle, const char* filename, int events, int status);

  uv_loop_t* loop_;
  Store& store_;
  std::string dir_;
  uv_fs_event_t* handle_ = nullptr;
};

}  // namespace litefs
