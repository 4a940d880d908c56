// Watches the managed directory for databases deleted or renamed away on the
// primary, so that the deletion replicates as LiteFS's deletion marker (an
// LTX with commit 0). Apps delete files with plain unlink(2), which no VFS
// sees.
//
// Raw inotify with only the deletion events: libuv's directory watch also
// asks for IN_MODIFY, which makes every write an app makes to a database or
// its WAL queue an event and wake the sidecar.
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
  static void OnReadable(uv_poll_t* handle, int status, int events);
  void ReadEvents();
  void Removed(const std::string& name);
  void RemovedAny();  // the event queue overflowed: check every database

  uv_loop_t* loop_;
  Store& store_;
  std::string dir_;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
};

}  // namespace litefs
