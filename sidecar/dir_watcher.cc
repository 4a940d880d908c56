// See dir_watcher.h.
#include "sidecar/dir_watcher.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sidecar/fsutil.h"
#include "sidecar/log.h"

namespace litefs {
namespace {

// Unlinked (the link count changes), renamed, or gone.
constexpr uint32_t kFileEvents = IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF;

}  // namespace

DirWatcher::~DirWatcher() { Stop(); }

Status DirWatcher::Start(const std::string& dir) {
  dir_ = dir;
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) return Status::Error("watch " + dir + ": inotify: " + std::strerror(errno));
  poll_ = new uv_poll_t;
  int rc = uv_poll_init(loop_, poll_, fd_);
  if (rc == 0) {
    poll_->data = this;
    rc = uv_poll_start(poll_, UV_READABLE, OnReadable);
  }
  if (rc == 0) {
    check_timer_ = new uv_timer_t;
    uv_timer_init(loop_, check_timer_);
    check_timer_->data = this;
    rc = uv_timer_start(
        check_timer_, [](uv_timer_t* t) { static_cast<DirWatcher*>(t->data)->CheckAll(); }, 0,
        kCheckIntervalMs);
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
  if (check_timer_) {
    uv_timer_stop(check_timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(check_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    check_timer_ = nullptr;
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  by_name_.clear();
  by_wd_.clear();
}

void DirWatcher::OnReadable(uv_poll_t* handle, int status, int /*events*/) {
  auto* self = static_cast<DirWatcher*>(handle->data);
  if (status < 0) {
    log::Error("database watch failed; deletions are noticed by the periodic check only",
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
        CheckAll();
        continue;
      }
      auto it = by_wd_.find(ev->wd);
      if (it == by_wd_.end()) continue;
      const std::string name = it->second;
      if (ev->mask & IN_IGNORED) by_wd_.erase(it);  // the inode is gone, or no longer watched
      Check(name);
    }
  }
}

void DirWatcher::CheckAll() {
  for (Database* db : store_.All()) Check(db->name());
}

void DirWatcher::Check(const std::string& name) {
  const std::string path = dir_ + "/" + name;
  Watched& w = by_name_[name];
  // The watch goes on the very file the descriptor holds, whatever the
  // name leads to by then.
  fs::UniqueFd file(open(path.c_str(), O_PATH | O_CLOEXEC));
  struct stat st;
  if (!file.valid() || fstat(file.get(), &st) != 0) {
    if (errno != ENOENT) return;  // cannot tell; the next check will
    if (!w.checked || w.ino != 0) Removed(name);  // first seen missing
    w.checked = true;
    w.ino = 0;
    return;
  }
  w.checked = true;
  if (st.st_ino == w.ino) return;
  // A new file under the name: watch it instead of the old one.
  if (w.wd >= 0) {
    inotify_rm_watch(fd_, w.wd);  // its IN_IGNORED then finds no name
    by_wd_.erase(w.wd);
    w.wd = -1;
  }
  w.ino = st.st_ino;
  const int wd = inotify_add_watch(fd_, ("/proc/self/fd/" + std::to_string(file.get())).c_str(), kFileEvents);
  if (wd < 0) {
    log::Warn("cannot watch a database for deletion; the periodic check still notices it",
              {{"db", name}, {"error", std::strerror(errno)}});
    return;
  }
  w.wd = wd;
  by_wd_[wd] = name;
}

void DirWatcher::Removed(const std::string& name) {
  if (!store_.is_primary()) return;  // replicas delete what the primary deletes
  Database* db = store_.Find(name);
  if (!db || fs::Exists(dir_ + "/" + name)) return;
  db->RecordDeletion();
}

}  // namespace litefs
