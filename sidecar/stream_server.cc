// See stream_server.h.
#include "sidecar/stream_server.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <vector>

#include "sidecar/clock.h"
#include "sidecar/log.h"

namespace litefs {
namespace {

constexpr uint64_t kHeartbeatMs = 1000;

}  // namespace

StreamSession::StreamSession(uv_loop_t* loop, Store& store,
                             std::shared_ptr<http::Exchange> exchange,
                             stream::PosMap replica_positions,
                             std::function<void(StreamSession*)> on_finished)
    : loop_(loop),
      store_(store),
      exchange_(std::move(exchange)),
      replica_(std::move(replica_positions)),
      on_finished_(std::move(on_finished)) {
  heartbeat_ = new uv_timer_t;
  uv_timer_init(loop_, heartbeat_);
  heartbeat_->data = this;
}

StreamSession::~StreamSession() {
  *alive_ = false;
  if (subscription_) store_.Unsubscribe(subscription_);
  uv_close(reinterpret_cast<uv_handle_t*>(heartbeat_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  if (pump_) pump_->Cancel();
}

void StreamSession::Start() {
  exchange_->OnClose([this] { Finish("the replica disconnected"); });
  std::vector<http::Header> headers = {{"Content-Type", "application/octet-stream"}};
  exchange_->StartResponse(200, std::move(headers));
  for (const auto& [name, pos] : replica_) dirty_.insert(name);
  for (Database* db : store_.All()) dirty_.insert(db->name());
  subscription_ = store_.Subscribe([this](Database& db) {
    dirty_.insert(db.name());
    Pump();
  });
  Pump();
}

void StreamSession::Shutdown() {
  if (finished_) return;
  std::string bytes;
  stream::AppendEnd(bytes);
  (void)exchange_->WriteBody(std::move(bytes), [](Status) {});
  exchange_->EndResponse();
  Finish("shutting down");
}

void StreamSession::Pump() {
  while (!busy_ && !finished_) {
    if (dirty_.empty()) {
      if (!ready_sent_) {
        ready_sent_ = true;
        std::string bytes;
        stream::AppendReady(bytes);
        stream::AppendHeartbeat(bytes, WallClockMs());
        Write(std::move(bytes), [this] { Pump(); });
        return;
      }
      ArmHeartbeat();
      return;
    }
    std::string name = *dirty_.begin();
    dirty_.erase(dirty_.begin());
    if (!Serve(name)) return;
  }
}

bool StreamSession::Serve(const std::string& name) {
  Database* db = store_.Find(name);
  if (!db) {
    replica_.erase(name);
    std::string bytes;
    stream::AppendDropDb(bytes, name);
    Write(std::move(bytes), [this] { Pump(); });
    return false;
  }
  ltx::Pos primary = db->pos();
  ltx::Pos& replica = replica_[name];
  if (replica.txid > primary.txid) {
    log::Warn("replica is ahead of the primary; sending a snapshot",
              {{"db", name}, {"replica", ltx::FormatPos(replica)}, {"primary", ltx::FormatPos(primary)}});
    replica = {};
  } else if (replica.txid == primary.txid && replica.checksum != primary.checksum) {
    log::Warn("replica diverged from the primary; sending a snapshot",
              {{"db", name}, {"replica", ltx::FormatPos(replica)}, {"primary", ltx::FormatPos(primary)}});
    replica = {};
  }
  if (replica.txid >= primary.txid) return true;  // up to date

  const std::optional<ltx::TXIDRange> found = db->log().StartingAt(replica.txid + 1);
  const ltx::TXIDRange next = found.value_or(ltx::TXIDRange{replica.txid + 1, replica.txid + 1});
  if (next.min_txid == 1 && found) {
    // The first commit is stored as a snapshot (every page, min TXID 1):
    // send it as it is rather than lock the database to make another.
    Result<std::pair<ltx::Header, ltx::Trailer>> ends = db->log().ReadEnds(next);
    if (ends.ok()) {
      SendFile(name, db->log().PathFor(next), {next.max_txid, ends->second.post_apply_checksum},
               /*remove_after=*/false, db->log().Remembered(next));
      return false;
    }
  }
  bool snapshot = next.min_txid == 1 || !found;
  if (!snapshot) {
    Result<std::pair<ltx::Header, ltx::Trailer>> ends = db->log().ReadEnds(next);
    if (!ends.ok()) {
      Finish("cannot read " + db->log().PathFor(next) + ": " + ends.message());
      return false;
    }
    if (ends->first.pre_apply_checksum != replica.checksum) {
      snapshot = true;  // the replica's history differs from ours
    } else {
      SendFile(name, db->log().PathFor(next), {next.max_txid, ends->second.post_apply_checksum},
               /*remove_after=*/false, db->log().Remembered(next));
      return false;
    }
  }
  busy_ = true;
  std::string path = db->log().NewTempPath();
  db->MakeSnapshot(path, [this, alive = std::weak_ptr<bool>(alive_), name, path](Result<SnapshotFile> snap) {
    if (alive.expired() || !*alive.lock()) {
      unlink(path.c_str());
      return;
    }
    busy_ = false;
    if (finished_) {
      unlink(path.c_str());
      return;
    }
    if (!snap.ok()) {
      Finish("snapshot of " + name + " failed: " + snap.message());
      unlink(path.c_str());
      return;
    }
    log::Info("sending snapshot", {{"db", name}, {"txid", ltx::FormatTXID(snap->header.max_txid)}});
    SendFile(name, path, {snap->header.max_txid, snap->trailer.post_apply_checksum},
             /*remove_after=*/true);
  });
  return false;
}

void StreamSession::SendFile(const std::string& db, const std::string& path, ltx::Pos after,
                             bool remove_after, LtxBytes content) {
  busy_ = true;
  std::string head;
  stream::AppendLtxBegin(head, db);
  if (content) {
    // In memory (a file just captured): the whole frame in one write.
    stream::AppendLtxChunks(head, *content);
    stream::AppendLtxEnd(head);
    stream::AppendHwm(head, 0, db);
    Write(std::move(head), [this, db, after] { SentFile(db, after); });
    return;
  }
  Write(std::move(head), [this, db, path, after, remove_after] {
    Result<FilePump*> pump = FilePump::Start(
        loop_, path, remove_after,
        [this](std::span<const uint8_t> piece, std::function<void()> next) {
          std::string bytes;
          stream::AppendLtxChunks(bytes, piece);
          Write(std::move(bytes), std::move(next));
        },
        [this, db, after](Status st) {
          pump_ = nullptr;
          if (!st.ok()) return Finish(st.message());
          // End of file: close the frame, then the HWM frame LiteFS sends after it.
          std::string bytes;
          stream::AppendLtxEnd(bytes);
          stream::AppendHwm(bytes, 0, db);
          Write(std::move(bytes), [this, db, after] { SentFile(db, after); });
        });
    if (!pump.ok()) return Finish(pump.message());
    pump_ = *pump;
  });
}

void StreamSession::SentFile(const std::string& db, ltx::Pos after) {
  replica_[db] = after;
  dirty_.insert(db);  // there may be more to send for it
  busy_ = false;
  Pump();
}

void StreamSession::Write(std::string bytes, std::function<void()> then) {
  uv_timer_stop(heartbeat_);
  Status st = exchange_->WriteBody(std::move(bytes), [this, alive = std::weak_ptr<bool>(alive_),
                                                        then = std::move(then)](Status st) {
    if (alive.expired() || !*alive.lock() || finished_) return;
    if (!st.ok()) {
      Finish("write to the replica failed: " + st.message());
      return;
    }
    then();
  });
  if (!st.ok()) Finish("write to the replica failed: " + st.message());
}

void StreamSession::ArmHeartbeat() {
  uv_timer_start(heartbeat_, [](uv_timer_t* t) {
    auto* s = static_cast<StreamSession*>(t->data);
    if (s->busy_ || s->finished_) return;
    std::string bytes;
    stream::AppendHeartbeat(bytes, WallClockMs());
    s->Write(std::move(bytes), [s] { s->Pump(); });
  }, kHeartbeatMs, 0);
}

void StreamSession::Finish(const std::string& why) {
  if (finished_) return;
  finished_ = true;
  uv_timer_stop(heartbeat_);
  if (subscription_) {
    store_.Unsubscribe(subscription_);
    subscription_ = 0;
  }
  if (pump_) {
    pump_->Cancel();
    pump_ = nullptr;
  }
  log::Info("replication stream closed", {{"peer", exchange_->request().peer}, {"reason", why}});
  if (!exchange_->closed() && !exchange_->response_ended()) exchange_->EndResponse();
  // Destroy from the loop, not from inside a callback of ours.
  auto* cb = new std::function<void()>([this] { on_finished_(this); });
  uv_timer_t* t = new uv_timer_t;
  uv_timer_init(loop_, t);
  t->data = cb;
  uv_timer_start(t, [](uv_timer_t* t) {
    auto* fn = static_cast<std::function<void()>*>(t->data);
    (*fn)();
    delete fn;
    uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }, 0, 0);
}

}  // namespace litefs
