// See file_pump.h.
#include "sidecar/file_pump.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace litefs {

Result<FilePump*> FilePump::Start(uv_loop_t* loop, std::string path, bool remove_after,
                                  Consumer consume, Done done, size_t piece_size) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("open " + path + ": " + strerror(errno));
  auto* p = new FilePump;
  p->loop_ = loop;
  p->path_ = std::move(path);
  p->remove_after_ = remove_after;
  p->consume_ = std::move(consume);
  p->done_ = std::move(done);
  p->buf_.resize(piece_size);
  p->fd_ = fd;
  p->ReadNext();
  return p;
}

void FilePump::ReadNext() {
  if (cancelled_) return Free();
  reading_ = true;
  req_.data = this;
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(buf_.data()), unsigned(buf_.size()));
  uv_fs_read(loop_, &req_, fd_, &buf, 1, int64_t(offset_), [](uv_fs_t* req) {
    auto* self = static_cast<FilePump*>(req->data);
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    self->reading_ = false;
    if (self->cancelled_) return self->Free();
    if (n < 0) return self->Finish(Status::Error("read " + self->path_ + ": " + uv_strerror(int(n))));
    if (n == 0) return self->Finish(Status());
    self->offset_ += uint64_t(n);
    self->consume_({self->buf_.data(), size_t(n)}, [self] { self->ReadNext(); });
  });
}

void FilePump::Finish(Status st) {
  Done done = std::move(done_);
  Free();
  if (done) done(st);
}

void FilePump::Cancel() {
  cancelled_ = true;
  if (!reading_) Free();  // otherwise the read callback frees it
}

void FilePump::Free() {
  if (fd_ >= 0) close(fd_);
  if (remove_after_) unlink(path_.c_str());
  delete this;
}

}  // namespace litefs
