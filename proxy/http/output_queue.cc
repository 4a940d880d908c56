// Batched, callback-tracked writes on a libuv stream (see output_queue.h).
#include "proxy/http/output_queue.h"

#include <cassert>
#include <utility>

namespace litefs::http {
namespace {

// Strings up to this size are copied into the batch's own buffer instead of
// being kept as a separate uv_buf_t (one copy of a few bytes beats a buffer).
constexpr size_t kCopyThreshold = 1024;
// A batch keeps at most this much text capacity when it is recycled.
constexpr size_t kMaxRetainedText = 64 * 1024;
constexpr size_t kMaxSpareBatches = 2;
char kEmpty[1] = {0};

}  // namespace

struct OutputQueue::Batch {
  // A piece of the batch: text_[offset, offset+len), owned_[index], or ptr.
  struct Segment {
    const char* ptr;  // external memory, or nullptr
    size_t offset;    // into text when ptr == nullptr and index < 0
    size_t len;
    ptrdiff_t index;  // into owned when >= 0
  };

  uv_write_t req;
  OutputQueue* queue = nullptr;
  std::string text;
  std::vector<std::string> owned;
  std::vector<Segment> segments;
  std::vector<Callback> callbacks;
  std::vector<uv_buf_t> bufs;
  size_t bytes = 0;

  void Clear() {
    text.clear();
    if (text.capacity() > kMaxRetainedText) std::string().swap(text);
    owned.clear();
    segments.clear();
    callbacks.clear();
    bufs.clear();
    bytes = 0;
  }
};

OutputQueue::OutputQueue(uv_stream_t* stream, OutputCounters* counters, DoneHook hook, void* ctx)
    : stream_(stream), counters_(counters), hook_(hook), hook_ctx_(ctx) {}

OutputQueue::~OutputQueue() {
  assert(in_flight_ == 0);
  Abort(Status::Error("connection closed"));
}

OutputQueue::Batch* OutputQueue::Open() {
  if (open_ != nullptr) return open_;
  if (!spare_.empty()) {
    open_ = spare_.back().release();
    spare_.pop_back();
  } else {
    open_ = new Batch;
  }
  open_->queue = this;
  return open_;
}

void OutputQueue::Recycle(Batch* b) {
  b->Clear();
  if (spare_.size() < kMaxSpareBatches) {
    spare_.emplace_back(b);
  } else {
    delete b;
  }
}

void OutputQueue::AddBytes(size_t n) {
  open_->bytes += n;
  queued_bytes_ += n;
  counters_->queued_bytes += n;
  if (counters_->queued_bytes > counters_->peak_queued_bytes) {
    counters_->peak_queued_bytes = counters_->queued_bytes;
  }
}

void OutputQueue::AppendCopy(std::string_view bytes) {
  if (bytes.empty()) return;
  Batch* b = Open();
  size_t offset = b->text.size();
  b->text.append(bytes);
  // Extend the previous segment when it is the text just before this one.
  if (!b->segments.empty()) {
    Batch::Segment& last = b->segments.back();
    if (last.ptr == nullptr && last.index < 0 && last.offset + last.len == offset) {
      last.len += bytes.size();
      AddBytes(bytes.size());
      return;
    }
  }
  b->segments.push_back({nullptr, offset, bytes.size(), -1});
  AddBytes(bytes.size());
}

void OutputQueue::AppendOwned(std::string bytes) {
  if (bytes.size() <= kCopyThreshold) {
    AppendCopy(bytes);
    return;
  }
  Batch* b = Open();
  b->owned.push_back(std::move(bytes));
  size_t n = b->owned.back().size();
  b->segments.push_back({nullptr, 0, n, static_cast<ptrdiff_t>(b->owned.size() - 1)});
  AddBytes(n);
}

void OutputQueue::AppendExternal(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return;
  Batch* b = Open();
  b->segments.push_back({reinterpret_cast<const char*>(bytes.data()), 0, bytes.size(), -1});
  AddBytes(bytes.size());
}

void OutputQueue::AppendCallback(Callback cb) {
  Batch* b = Open();
  if (cb) b->callbacks.push_back(std::move(cb));
}

Status OutputQueue::Flush() {
  Batch* b = open_;
  if (b == nullptr) return Status();
  open_ = nullptr;
  // Resolve pointers only now: text and owned may have moved while growing.
  for (const Batch::Segment& s : b->segments) {
    const char* base = s.ptr != nullptr ? s.ptr
                       : s.index >= 0   ? b->owned[static_cast<size_t>(s.index)].data()
                                        : b->text.data() + s.offset;
    b->bufs.push_back(uv_buf_init(const_cast<char*>(base), static_cast<unsigned int>(s.len)));
  }
  // A batch of callbacks only still goes through libuv so they keep their order.
  if (b->bufs.empty()) b->bufs.push_back(uv_buf_init(kEmpty, 0));
  b->req.data = b;
  int rc = uv_write(&b->req, stream_, b->bufs.data(), static_cast<unsigned int>(b->bufs.size()),
                    &OutputQueue::OnWritten);
  if (rc < 0) {
    queued_bytes_ -= b->bytes;
    counters_->queued_bytes -= b->bytes;
    Status error = Status::Error(std::string("write: ") + uv_strerror(rc));
    for (Callback& cb : b->callbacks) cb(error);
    Recycle(b);
    return error;
  }
  ++in_flight_;
  return Status();
}

void OutputQueue::Abort(const Status& error) {
  Batch* b = open_;
  if (b == nullptr) return;
  open_ = nullptr;
  queued_bytes_ -= b->bytes;
  counters_->queued_bytes -= b->bytes;
  for (Callback& cb : b->callbacks) cb(error);
  Recycle(b);
}

void OutputQueue::OnWritten(uv_write_t* req, int status) {
  Batch* b = static_cast<Batch*>(req->data);
  OutputQueue* q = b->queue;
  --q->in_flight_;
  q->queued_bytes_ -= b->bytes;
  q->counters_->queued_bytes -= b->bytes;
  q->hook_(q->hook_ctx_, status);
  Status result;
  if (status < 0) result = Status::Error(std::string("write: ") + uv_strerror(status));
  // Callbacks may append to the (different) open batch; this one is ours alone.
  for (size_t i = 0; i < b->callbacks.size(); ++i) b->callbacks[i](result);
  q->Recycle(b);
}

}  // namespace litefs::http
