// Runs blocking jobs (disk I/O, lock waits) for one owner — a database — on
// libuv's thread pool, one at a time and in order, so the event loop never
// blocks and the owner's disk state needs no lock. Each job's completion
// callback runs on the loop thread.
#pragma once

#include <uv.h>

#include <deque>
#include <functional>
#include <memory>

namespace litefs {

class Strand {
 public:
  explicit Strand(uv_loop_t* loop) : loop_(loop) {}
  Strand(const Strand&) = delete;
  Strand& operator=(const Strand&) = delete;

  // Queues `work` (thread pool) followed by `done` (loop thread).
  void Post(std::function<void()> work, std::function<void()> done = nullptr);

  bool idle() const { return !running_ && queue_.empty(); }

 private:
  struct Job {
    uv_work_t req;
    Strand* strand;
    std::function<void()> work;
    std::function<void()> done;
  };
  void StartNext();
  static void RunWork(uv_work_t* req);
  static void AfterWork(uv_work_t* req, int status);

  uv_loop_t* loop_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool running_ = false;
};

}  // namespace litefs
