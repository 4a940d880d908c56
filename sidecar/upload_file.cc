// See upload_file.h.
#include "sidecar/upload_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace litefs {
namespace {

class Upload : public std::enable_shared_from_this<Upload> {
 public:
  Upload(uv_loop_t* loop, std::shared_ptr<http::Exchange> ex, std::string path, UploadLimits limits,
         std::function<Status(std::span<const uint8_t>)> check_head,
         std::function<void(Result<uint64_t>)> done)
      : loop_(loop), ex_(std::move(ex)), path_(std::move(path)), limits_(limits),
        check_head_(std::move(check_head)), done_(std::move(done)) {}
  ~Upload() {
    if (fd_ >= 0) close(fd_);
  }

  void Start() {
    fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd_ < 0) return Finish(Status::Error("open " + path_ + ": " + strerror(errno)));
    auto self = shared_from_this();
    Status st = ex_->ReadBody([self](std::span<const uint8_t> d) { self->OnData(d); },
                              [self](Status st) { self->OnEnd(std::move(st)); });
    if (!st.ok()) Finish(st);
  }

 private:
  void OnData(std::span<const uint8_t> d) {
    if (finished_) return;
    received_ += d.size();
    if (received_ > limits_.max_bytes) {
      return Finish(Status::Error("body larger than " + std::to_string(limits_.max_bytes) + " bytes"));
    }
    pending_.append(reinterpret_cast<const char*>(d.data()), d.size());
    if (!head_checked_ && pending_.size() + written_ >= limits_.head_bytes) {
      if (!CheckHead()) return;
    }
    if (head_checked_) WriteNext();
  }

  void OnEnd(Status st) {
    if (finished_) return;
    if (!st.ok()) return Finish(st);
    ended_ = true;
    if (!head_checked_ && !CheckHead()) return;
    WriteNext();
  }

  bool CheckHead() {
    head_checked_ = true;
    Status st = check_head_({reinterpret_cast<const uint8_t*>(pending_.data()), pending_.size()});
    if (!st.ok()) Finish(st);
    return st.ok();
  }

  void WriteNext() {
    if (writing_ || finished_) return;
    if (pending_.empty()) {
      if (ended_) Finish(written_);
      return;
    }
    writing_ = true;
    inflight_.swap(pending_);
    pending_.clear();
    ex_->PauseBody();
    req_.data = this;
    self_ = shared_from_this();  // alive until the write completes
    uv_buf_t buf = uv_buf_init(inflight_.data(), unsigned(inflight_.size()));
    int rc = uv_fs_write(loop_, &req_, fd_, &buf, 1, int64_t(written_), [](uv_fs_t* req) {
      auto* self = static_cast<Upload*>(req->data);
      std::shared_ptr<Upload> keep = std::move(self->self_);
      ssize_t n = req->result;
      uv_fs_req_cleanup(req);
      self->writing_ = false;
      if (self->finished_) return self->CloseFile();
      if (n < 0) return self->Finish(Status::Error("write " + self->path_ + ": " + uv_strerror(int(n))));
      self->written_ += uint64_t(n);
      if (size_t(n) < self->inflight_.size()) {
        // Short write: put the rest back in front.
        self->pending_.insert(0, self->inflight_, size_t(n), std::string::npos);
      }
      self->inflight_.clear();
      if (!self->ended_) self->ex_->ResumeBody();
      self->WriteNext();
    });
    if (rc < 0) {
      writing_ = false;
      self_.reset();
      Finish(Status::Error("write " + path_ + ": " + uv_strerror(rc)));
    }
  }

  void Finish(Result<uint64_t> r) {
    if (finished_) return;
    finished_ = true;
    pending_.clear();
    if (!writing_) CloseFile();  // else once the write in flight returns
    auto done = std::move(done_);
    done(std::move(r));
  }

  void CloseFile() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  uv_loop_t* loop_;
  std::shared_ptr<http::Exchange> ex_;
  std::string path_;
  UploadLimits limits_;
  std::function<Status(std::span<const uint8_t>)> check_head_;
  std::function<void(Result<uint64_t>)> done_;
  int fd_ = -1;
  uv_fs_t req_;
  std::shared_ptr<Upload> self_;
  std::string pending_, inflight_;
  uint64_t received_ = 0, written_ = 0;
  bool head_checked_ = false, writing_ = false, ended_ = false, finished_ = false;
};

}  // namespace

void UploadToFile(uv_loop_t* loop, std::shared_ptr<http::Exchange> ex, std::string path,
                  UploadLimits limits, std::function<Status(std::span<const uint8_t>)> check_head,
                  std::function<void(Result<uint64_t>)> done) {
  auto up = std::make_shared<Upload>(loop, std::move(ex), std::move(path), limits,
                                     std::move(check_head), std::move(done));
  up->Start();
}

}  // namespace litefs
