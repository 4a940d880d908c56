// See dir_watcher.h.
#include "sidecar/dir_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sidecar/fsutil.h"
#include "sidecar/log.h"

namespace litefs {

DirWatcher::~DirWatcher() { Stop(); }

Status DirWatcher::Start(const std::string& dir) {
  dir_ = dir;
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) return Status::Error("watch " + dir + ": inotify: " + std::strerror(errno));
  if (inotify_add_watch(fd_, dir.c_str(), IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR) < 0) {
    Status st = Status::Error("watch " + dir + ": " + std::strerror(errno));
    Stop();
    return st;
  }
  poll_ = new uv_poll_t;
  int rc = uv_poll_init(loop_, poll_, fd_);
  if (rc == 0) {
    poll_->data = this;
    rc = uv_poll_start(poll_, UV_READABLE, OnReadable);
  }
  if (rc != 0) {
    Stop();
    return Status::Error("watch " + dir + ": " + uv_strerror(rc));
  }
  return Status();
}

void DirWatcher::Stop() {
  if (poll_) {
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void DirWatcher::OnReadable(uv_poll_t* handle, int status, int /*events*/) {
  auto* self = static_cast<DirWatcher*>(handle->data);
  if (status < 0) {
    log::Error("directory watch failed; deletions are no longer noticed",
               {{"dir", self->dir_}, {"error", uv_strerror(status)}});
    uv_poll_stop(handle);
    return;
  }
  self->ReadEvents();
}

void DirWatcher::ReadEvents() {
  alignas(inotify_event) char buf[16 * 1024];
  for (int reads = 0; reads < 64; reads++) {  // bounded; the poll calls again if more are queued
    ssize_t n = read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      off += ssize_t(sizeof(inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) {
        RemovedAny();
      } else if (ev->len > 0) {
        Removed(ev->name);  // the name is NUL-padded to len
      }
    }
  }
}

void DirWatcher::Removed(const std::string& name) {
  if (!store_.is_primary()) return;  // replicas delete what the primary deletes
  Database* db = store_.Find(name);
  if (!db || fs::Exists(dir_ + "/" + name)) return;
  db->RecordDeletion();
}

void DirWatcher::RemovedAny() {
  for (Database* db : store_.All()) Removed(db->name());
}

}  // namespace litefs
