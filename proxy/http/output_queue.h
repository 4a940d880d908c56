// OutputQueue: the write side of one connection.
//
// Bytes are appended to an open batch (copied small text, moved strings, or
// caller-owned spans) together with completion callbacks; Flush() hands the
// whole batch to libuv as ONE uv_write with a uv_buf_t array, so a response
// head, its body and the next pipelined response leave in a single writev.
// A batch's callbacks fire, in order, once libuv reports every byte of the
// batch written to the kernel (or failed). Batches are recycled, so the steady
// state allocates nothing. queued_bytes() counts what the server still holds:
// appended but not yet reported written.
#pragma once

#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ltx/status.h"

namespace litefs::http {

// Server-wide byte counters shared by every connection's queue.
struct OutputCounters {
  size_t queued_bytes = 0;
  size_t peak_queued_bytes = 0;
};

class OutputQueue {
 public:
  using Callback = std::function<void(Status)>;
  // Told after every completed uv_write (status 0 or a libuv error), before
  // the batch's callbacks run.
  using DoneHook = void (*)(void* ctx, int status);

  OutputQueue(uv_stream_t* stream, OutputCounters* counters, DoneHook hook, void* ctx);
  ~OutputQueue();
  OutputQueue(const OutputQueue&) = delete;
  OutputQueue& operator=(const OutputQueue&) = delete;

  // Copies `bytes` into the batch (for heads, chunk framing, small bodies).
  void AppendCopy(std::string_view bytes);
  // Takes `bytes` and writes it without copying (small strings are copied).
  void AppendOwned(std::string bytes);
  // Writes caller memory without copying; it must stay valid and unchanged
  // until a callback appended after it has fired.
  void AppendExternal(std::span<const uint8_t> bytes);
  // `cb` fires once everything appended so far has been written (or failed).
  void AppendCallback(Callback cb);

  // Something is waiting for Flush().
  bool has_open_batch() const { return open_ != nullptr; }
  // Starts writing the open batch. An error means libuv refused the write
  // (the batch's callbacks have then been called with that error).
  Status Flush();
  // Calls the open batch's callbacks with `error` and drops its bytes (used
  // when the connection closes; in-flight batches are cancelled by libuv).
  void Abort(const Status& error);

  size_t queued_bytes() const { return queued_bytes_; }
  size_t writes_in_flight() const { return in_flight_; }

 private:
  struct Batch;
  Batch* Open();
  void Recycle(Batch* b);
  void AddBytes(size_t n);
  static void OnWritten(uv_write_t* req, int status);

  uv_stream_t* stream_;
  OutputCounters* counters_;
  DoneHook hook_;
  void* hook_ctx_;
  Batch* open_ = nullptr;
  std::vector<std::unique_ptr<Batch>> spare_;
  size_t queued_bytes_ = 0;
  size_t in_flight_ = 0;
};

}  // namespace litefs::http
