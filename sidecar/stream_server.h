// The primary side of one replication stream (POST /stream, reference §1.3):
// decides per database what the replica needs next — nothing, the next LTX
// file, or a snapshot (new replica, gap in the retained files, divergence) —
// and writes the frames with backpressure: the next piece is read from disk
// only when the previous one reached the kernel, so memory stays bounded
// whatever the file size and however slow the replica. READY follows the
// first full pass; a HEARTBEAT goes out after each second without frames.
// Woken by store position changes, never by polling.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "proxy/http/exchange.h"
#include "sidecar/file_pump.h"
#include "sidecar/store.h"
#include "sidecar/stream_protocol.h"

namespace litefs {

class StreamSession {
 public:
  // `on_finished` runs (on the loop) when the stream has ended for any
  // reason; the owner then destroys the session.
  StreamSession(uv_loop_t* loop, Store& store, std::shared_ptr<http::Exchange> exchange,
                stream::PosMap replica_positions, std::function<void(StreamSession*)> on_finished);
  ~StreamSession();

  void Start();
  // Ends the stream with an END frame (server shutdown).
  void Shutdown();

 private:
  void Pump();
  // Handles one dirty database; returns false if it started asynchronous work.
  bool Serve(const std::string& name);
  // Sends the LTX file at `path` (from `content` if it is in memory), after
  // which the replica is at `after`.
  void SendFile(const std::string& db, const std::string& path, ltx::Pos after,
                bool remove_after, LtxBytes content = nullptr);
  void SentFile(const std::string& db, ltx::Pos after);
  void Write(std::string bytes, std::function<void()> then);
  void ArmHeartbeat();
  void Finish(const std::string& why);

  uv_loop_t* loop_;
  Store& store_;
  std::shared_ptr<http::Exchange> exchange_;
  stream::PosMap replica_;  // what the replica has, as far as this stream knows
  std::function<void(StreamSession*)> on_finished_;
  uint64_t subscription_ = 0;
  uv_timer_t* heartbeat_ = nullptr;

  std::set<std::string> dirty_;
  bool busy_ = false;  // a frame or a snapshot is in progress
  bool ready_sent_ = false;
  bool finished_ = false;
  FilePump* pump_ = nullptr;  // the LTX file being sent, if any
  // Write completions and snapshots can finish after the session is gone
  // (a stream ended while its connection was stalled): they check this.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace litefs
