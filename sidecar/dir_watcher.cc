// See dir_watcher.h.
#include "sidecar/dir_watcher.h"

#include "sidecar/fsutil.h"
#include "sidecar/log.h"

namespace litefs {

DirWatcher::~DirWatcher() { Stop(); }

Status DirWatcher::Start(const std::string& dir) {
  dir_ = dir;
  handle_ = new uv_fs_event_t;
  uv_fs_event_init(loop_, handle_);
  handle_->data = this;
  int rc = uv_fs_event_start(handle_, OnEvent, dir.c_str(), 0);
  if (rc != 0) {
    Stop();
    return Status::Error("watch " + dir + ": " + uv_strerror(rc));
  }
  return Status();
}

void DirWatcher::Stop() {
  if (!handle_) return;
  uv_fs_event_stop(handle_);
  uv_close(reinterpret_cast<uv_handle_t*>(handle_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_fs_event_t*>(h); });
  handle_ = nullptr;
}

void DirWatcher::OnEvent(uv_fs_event_t* handle, const char* filename, int events, int status) {
  auto* self = static_cast<DirWatcher*>(handle->data);
  if (status < 0 || !filename || !(events & UV_RENAME)) return;
  if (!self->store_.is_primary()) return;  // replicas delete what the primary deletes
  Database* db = self->store_.Find(filename);
  if (!db || fs::Exists(self->dir_ + "/" + filename)) return;
  db->RecordDeletion();
}

}  // namespace litefs
