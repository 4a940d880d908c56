// See strand.h.
#include "sidecar/strand.h"

namespace litefs {

void Strand::Post(std::function<void()> work, std::function<void()> done) {
  auto job = std::make_unique<Job>();
  job->strand = this;
  job->work = std::move(work);
  job->done = std::move(done);
  queue_.push_back(std::move(job));
  if (!running_) StartNext();
}

void Strand::StartNext() {
  if (queue_.empty()) {
    running_ = false;
    return;
  }
  running_ = true;
  Job* job = queue_.front().release();
  queue_.pop_front();
  job->req.data = job;
  uv_queue_work(loop_, &job->req, RunWork, AfterWork);
}

void Strand::RunWork(uv_work_t* req) { static_cast<Job*>(req->data)->work(); }

void Strand::AfterWork(uv_work_t* req, int) {
  std::unique_ptr<Job> job(static_cast<Job*>(req->data));
  Strand* strand = job->strand;
  if (job->done) job->done();
  strand->StartNext();
}

}  // namespace litefs
