// The replica side of replication: POSTs this node's positions to the
// primary's /stream (libcurl on the loop), decodes the frames, writes each
// LTX payload to a temporary file and hands it to its Database to verify
// and apply, and reconnects with capped exponential back-off and jitter
// when the stream ends or fails. Files apply one at a time, in stream order,
// while the next ones arrive (receiving and applying overlap); beyond
// kMaxQueuedFiles the transfer pauses. Any other frame waits for the files
// before it (READY means caught up only once they are applied). While connected, the primary is published
// in the store (and so in `<dir>/.primary`).
#pragma once

#include <uv.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ltx/status.h"
#include "sidecar/curl_loop.h"
#include "sidecar/fsutil.h"
#include "sidecar/store.h"
#include "sidecar/stream_protocol.h"

namespace litefs {

struct ReplicaOptions {
  std::string primary_url;       // the primary's node API, e.g. http://10.0.0.1:20202
  std::string primary_hostname;  // published in .primary
  std::chrono::milliseconds reconnect_delay{1000};
  std::chrono::milliseconds max_reconnect_delay{30000};
  // A stream with no byte for this long is dead (the primary sends a
  // heartbeat every second when idle).
  std::chrono::milliseconds read_timeout{10000};
  // After an apply gave up waiting for readers (rollback mode, see
  // docs/architecture.md), the pause before it is tried again.
  std::chrono::milliseconds reader_grace{1000};
};

class ReplicaClient {
 public:
  ReplicaClient(uv_loop_t* loop, http::CurlLoop& curl, Store& store, ReplicaOptions options);
  ~ReplicaClient();

  void Start();
  void Stop();

  bool connected() const { return connected_; }
  // READY received at least once (initial catch-up done).
  bool ready() const { return ready_; }
  // LiteFS's "last primary timestamp" (§2.8): the latest heartbeat, or
  // after READY the timestamp of the latest applied LTX file; -1 before the
  // first heartbeat. Kept across disconnects, so lag grows while cut off.
  int64_t last_primary_timestamp_ms() const { return last_primary_ms_; }
  void SetOnReady(std::function<void()> fn) { on_ready_ = std::move(fn); }

 private:
  void Connect();
  void ScheduleReconnect(const std::string& why);
  void OnHeaders(int status, const http::HeaderList& headers);
  http::DataAction OnData(std::span<const uint8_t> data);
  void OnDone(Status status, int http_status);
  // Feeds bytes to the decoder; returns how many were consumed before it
  // stopped for an apply (all of them otherwise).
  Result<size_t> Decode(std::span<const uint8_t> data);
  bool OnEvent(const stream::Event& e);
  // The frames that are not part of an LTX file.
  void HandleEvent(const stream::Event& e);
  // Starts the next queued apply (the files queued together for one
  // database, as one batch), running the events queued before it.
  void Pump();
  void Apply(const std::string& db_name, std::vector<ReceivedLtx> files);
  // An apply of the stream `transfer` to `db_name` is over (and paced): the
  // next one may start.
  void AfterApply(uint64_t transfer, const std::string& db_name, const Status& st);
  // Decodes the bytes held back while the queue was full, then lets curl go on.
  void MaybeResume();
  void Fail(const std::string& why);
  void Disconnected();

  uv_loop_t* loop_;
  http::CurlLoop& curl_;
  Store& store_;
  ReplicaOptions options_;
  uv_timer_t* reconnect_timer_ = nullptr;

  uint64_t transfer_ = 0;
  bool stopped_ = true;
  bool connected_ = false;
  // The body of a response other than 200 (the primary's reason), bounded.
  std::optional<std::string> refusal_;
  static constexpr size_t kMaxRefusalBytes = 512;
  bool ready_ = false;
  int failures_ = 0;
  int64_t last_primary_ms_ = -1;
  std::function<void()> on_ready_;

  stream::FrameDecoder decoder_;
  std::string error_;            // why the current stream is being abandoned
  // The LTX frame in progress: in memory while it is small, else spilled to
  // a temp file (ReceivedLtx).
  std::string receiving_db_;
  std::shared_ptr<std::vector<uint8_t>> receiving_bytes_;
  std::string receiving_path_;
  fs::UniqueFd receiving_fd_;
  Status ReceiveLtxData(std::span<const uint8_t> data);
  void DropReceiving();
  // Received files and the frames behind them, in stream order (one of
  // file or event is set).
  struct Queued {
    std::string db;
    ReceivedLtx file;
    std::function<void()> event;
  };
  static constexpr size_t kMaxQueuedFiles = 64;
  std::deque<Queued> queue_;
  size_t queued_files_ = 0;
  bool applying_ = false;        // an apply runs, or its pacing wait
  // Rollback-mode applies under a steady stream start RollbackApplyPacing
  // apart (apply_pacing.h): one that finished sooner holds the next back.
  // An isolated commit applies at once; a backlog of a full batch or more
  // does not wait. WAL-mode applies do not sync (replica_durability.h) and
  // are not paced.
  uv_timer_t* pacing_timer_ = nullptr;
  uint64_t paced_transfer_ = 0;  // the stream of the apply being paced
  bool connect_when_idle_ = false;
  bool paused_ = false;          // decoding stopped: the queue is full
  std::string pending_;          // bytes received after the frame decoding stopped at
  // The next reconnect waits at least this long (ms): set when an apply
  // gave up on readers, so that new readers it held out get in first.
  int64_t min_next_delay_ms_ = 0;
  // Shared with apply completions, which can outlive the client (a node
  // stopping, or a role change replacing it, during an apply).
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace litefs
