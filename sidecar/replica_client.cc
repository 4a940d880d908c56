// See replica_client.h.
#include "sidecar/replica_client.h"

#include <cstdlib>

#include <fcntl.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#include <strings.h>

#include <algorithm>

#include "ltx/pos.h"
#include "sidecar/apply_pacing.h"
#include "sidecar/log.h"
#include "sidecar/sqlite_locks.h"

namespace litefs {
namespace {

bool HeaderIs(const std::string& a, const char* b) { return strcasecmp(a.c_str(), b) == 0; }

}  // namespace

ReplicaClient::ReplicaClient(uv_loop_t* loop, http::CurlLoop& curl, Store& store,
                             ReplicaOptions options)
    : loop_(loop), curl_(curl), store_(store), options_(std::move(options)) {
  reconnect_timer_ = new uv_timer_t;
  uv_timer_init(loop_, reconnect_timer_);
  reconnect_timer_->data = this;
  pacing_timer_ = new uv_timer_t;
  uv_timer_init(loop_, pacing_timer_);
  pacing_timer_->data = this;
}

ReplicaClient::~ReplicaClient() {
  *alive_ = false;
  Stop();
  for (uv_timer_t* timer : {reconnect_timer_, pacing_timer_}) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
}

void ReplicaClient::Start() {
  stopped_ = false;
  Connect();
}

void ReplicaClient::Stop() {
  stopped_ = true;
  uv_timer_stop(reconnect_timer_);
  if (transfer_) curl_.Cancel(transfer_);
  transfer_ = 0;
  Disconnected();
}

void ReplicaClient::Connect() {
  if (stopped_) return;
  if (applying_) {  // the previous stream's last file is still being applied
    connect_when_idle_ = true;
    return;
  }
  stream::PosMap positions;
  for (Database* db : store_.All()) positions[db->name()] = db->pos();
  decoder_ = stream::FrameDecoder();
  error_.clear();
  pending_.clear();
  DropReceiving();

  http::ClientRequest req;
  req.method = "POST";
  req.url = options_.primary_url + "/stream";
  req.headers = {{"Litefs-Id", FormatNodeId(store_.node_id())},
                 {"Content-Type", "application/octet-stream"}};
  req.body = stream::EncodePosMap(positions);
  req.idle_timeout_ms = long(options_.read_timeout.count());
  req.on_headers = [this](int status, const http::HeaderList& h) { OnHeaders(status, h); };
  req.on_data = [this](std::span<const uint8_t> d) { return OnData(d); };
  req.on_done = [this](Status st, int status) { OnDone(std::move(st), status); };
  log::Debug("connecting to primary", {{"url", options_.primary_url}});
  transfer_ = curl_.Start(std::move(req));
}

void ReplicaClient::OnHeaders(int status, const http::HeaderList& headers) {
  refusal_.reset();
  if (status != 200) {
    refusal_.emplace();  // the body is the primary's reason, not a stream
    return;
  }
  PrimaryInfo primary{options_.primary_hostname, options_.primary_url, "", 0, false};
  for (const auto& [name, value] : headers) {
    if (HeaderIs(name, "Litefs-Id")) primary.node_id = std::strtoull(value.c_str(), nullptr, 16);
    if (HeaderIs(name, "Litefs-Proxy-Url")) primary.proxy_url = value;
    if (!HeaderIs(name, "Litefs-Cluster-Id") || value.empty()) continue;
    if (store_.cluster_id().empty()) {
      Status st = store_.SetClusterId(value);
      if (!st.ok()) return Fail(st.message());
      log::Info("adopted the primary's cluster id", {{"cluster_id", value}});
    } else if (store_.cluster_id() != value) {
      return Fail("cluster id mismatch: this node belongs to " + store_.cluster_id() +
                  ", the primary to " + value);
    }
  }
  connected_ = true;
  store_.SetPrimary(std::move(primary));
  log::Info("connected to primary", {{"url", options_.primary_url}});
}

http::DataAction ReplicaClient::OnData(std::span<const uint8_t> data) {
  if (!error_.empty()) return http::DataAction::kContinue;  // being cancelled
  if (refusal_) {
    refusal_->append(reinterpret_cast<const char*>(data.data()),
                     std::min(data.size(), kMaxRefusalBytes - std::min(kMaxRefusalBytes, refusal_->size())));
    return http::DataAction::kContinue;
  }
  if (paused_) return http::DataAction::kPause;
  Result<size_t> used = Decode(data);
  if (!used.ok()) {
    Fail("bad stream from the primary: " + used.message());
  } else if (*used < data.size()) {
    // The queue is full: keep the rest and hold further bytes in curl.
    pending_.assign(reinterpret_cast<const char*>(data.data()) + *used, data.size() - *used);
    paused_ = true;
    curl_.Pause(transfer_);
  }
  return http::DataAction::kContinue;
}

Result<size_t> ReplicaClient::Decode(std::span<const uint8_t> data) {
  return decoder_.Feed(data, [this](const stream::Event& e) { return OnEvent(e); });
}

bool ReplicaClient::OnEvent(const stream::Event& e) {
  using Kind = stream::Event::Kind;
  if (!error_.empty()) return false;
  switch (e.kind) {
    case Kind::kLtxBegin: {
      Result<Database*> db = store_.GetOrCreate(e.name);
      if (!db.ok()) {
        Fail(db.message());
        return false;
      }
      DropReceiving();
      receiving_db_ = std::string(e.name);
      receiving_bytes_ = std::make_shared<std::vector<uint8_t>>();
      return true;
    }
    case Kind::kLtxData: {
      Status st = ReceiveLtxData(e.data);
      if (!st.ok()) {
        Fail(st.message());
        return false;
      }
      return true;
    }
    case Kind::kLtxEnd:
      receiving_fd_.Reset();
      queue_.push_back({receiving_db_, ReceivedLtx{std::move(receiving_path_), std::move(receiving_bytes_)}, nullptr});
      receiving_path_.clear();
      receiving_bytes_.reset();
      queued_files_++;
      Pump();
      return queued_files_ < kMaxQueuedFiles;  // else stop decoding until one applied
    case Kind::kHwm:
      // Sent after every file and unused here: queued behind the files, it
      // would split every batch of them into single applies.
      return error_.empty();
    default:
      if (!applying_ && queue_.empty()) {
        HandleEvent(e);
      } else {  // after the files before it
        queue_.push_back({"", {}, [this, kind = e.kind, name = std::string(e.name), txid = e.txid,
                                   ts = e.timestamp_ms] {
                            stream::Event copy{kind, name, {}, txid, ts};
                            HandleEvent(copy);
                          }});
      }
      return error_.empty();
  }
}

Status ReplicaClient::ReceiveLtxData(std::span<const uint8_t> data) {
  if (receiving_bytes_ && receiving_bytes_->size() + data.size() <= LtxLog::kRememberedFileSize) {
    receiving_bytes_->insert(receiving_bytes_->end(), data.begin(), data.end());
    return Status();
  }
  if (!receiving_fd_.valid()) {
    // Too large to keep in memory: to a temp file, with what came so far.
    Database* db = store_.Find(receiving_db_);  // created at the frame's start
    if (!db) return Status::Error("database " + receiving_db_ + " vanished during a transfer");
    receiving_path_ = db->log().NewTempPath();
    LITEFS_RETURN_IF_ERROR(fs::MakeDirs(db->log().dir()));
    Result<fs::UniqueFd> fd = fs::Open(receiving_path_, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (!fd.ok()) return fd.status();
    receiving_fd_ = std::move(fd).value();
    if (receiving_bytes_) {
      io::FdWriter out(receiving_fd_.get());
      Status st = out.Write(*receiving_bytes_);
      receiving_bytes_.reset();
      if (!st.ok()) return Status::Error("write " + receiving_path_ + ": " + st.message());
    }
  }
  io::FdWriter out(receiving_fd_.get());
  Status st = out.Write(data);
  if (!st.ok()) return Status::Error("write " + receiving_path_ + ": " + st.message());
  return Status();
}

void ReplicaClient::DropReceiving() {
  if (receiving_fd_.valid()) {
    receiving_fd_.Reset();
    unlink(receiving_path_.c_str());
  }
  receiving_path_.clear();
  receiving_bytes_.reset();
}

void ReplicaClient::HandleEvent(const stream::Event& e) {
  using Kind = stream::Event::Kind;
  switch (e.kind) {
    case Kind::kReady:
      if (!ready_) log::Info("caught up with the primary");
      ready_ = true;
      failures_ = 0;
      if (store_.primary() && !store_.primary()->synced) {
        PrimaryInfo synced = *store_.primary();
        synced.synced = true;
        store_.SetPrimary(std::move(synced));
      }
      if (on_ready_) on_ready_();
      return;
    case Kind::kEnd:
      log::Info("the primary ended the stream");
      return;
    case Kind::kDropDb:
      log::Warn("the primary does not have this database; keeping it", {{"db", std::string(e.name)}});
      return;
    case Kind::kHandoff:
      log::Warn("ignoring a lease handoff: the static lease cannot be handed off");
      return;
    case Kind::kHwm:
      return;
    case Kind::kHeartbeat:
      last_primary_ms_ = e.timestamp_ms;
      return;
    case Kind::kLtxBegin:
    case Kind::kLtxData:
    case Kind::kLtxEnd:
      return;  // handled by OnEvent
  }
}

void ReplicaClient::Pump() {
  while (!applying_ && !queue_.empty()) {
    Queued next = std::move(queue_.front());
    queue_.pop_front();
    if (next.event) {
      next.event();
      continue;
    }
    // This file and those queued right behind it for the same database
    // apply as one batch.
    std::vector<ReceivedLtx> files{std::move(next.file)};
    while (!queue_.empty() && !queue_.front().event && queue_.front().db == next.db &&
           files.size() < Database::kMaxApplyBatch) {
      files.push_back(std::move(queue_.front().file));
      queue_.pop_front();
    }
    queued_files_ -= files.size();
    Apply(next.db, std::move(files));
  }
}

void ReplicaClient::Apply(const std::string& db_name, std::vector<ReceivedLtx> files) {
  Database* db = store_.Find(db_name);  // created when its first frame arrived
  applying_ = true;
  const uint64_t transfer = transfer_;
  const uint64_t start_ns = uv_hrtime();
  db->ApplyReceived(std::move(files), [this, alive = alive_, db, transfer, start_ns](Status st) {
    if (!*alive) return;  // the client was destroyed during the apply
    if (!st.ok() || transfer != transfer_ || stopped_) return AfterApply(transfer, db->name(), st);
    // LiteFS's lag clock: after READY, applied files advance it too.
    if (ready_) last_primary_ms_ = std::max(last_primary_ms_, db->pos_timestamp_ms());
    const uint64_t elapsed_ns = uv_hrtime() - start_ns;
    const uint64_t pacing_ns =
        uint64_t(RollbackApplyPacing(std::chrono::nanoseconds(elapsed_ns)).count());
    // A backlog (a replica catching up) fills the next batch without waiting.
    if (!db->last_apply_in_rollback_mode() || elapsed_ns >= pacing_ns ||
        queued_files_ >= Database::kMaxApplyBatch) {
      return AfterApply(transfer, db->name(), st);
    }
    paced_transfer_ = transfer;
    const uint64_t wait_ms = (pacing_ns - elapsed_ns + 999'999) / 1'000'000;
    uv_timer_start(
        pacing_timer_,
        [](uv_timer_t* t) {
          auto* self = static_cast<ReplicaClient*>(t->data);
          self->AfterApply(self->paced_transfer_, "", Status());
        },
        wait_ms, 0);
  });
}

void ReplicaClient::AfterApply(uint64_t transfer, const std::string& db_name, const Status& st) {
  applying_ = false;
  if (transfer != transfer_ || stopped_) {  // that stream is gone
    if (connect_when_idle_) {
      connect_when_idle_ = false;
      Connect();
    }
    return;
  }
  if (!st.ok()) {
    if (sqlite::IsLockTimeout(st)) min_next_delay_ms_ = options_.reader_grace.count();
    Fail("cannot apply LTX for " + db_name + ": " + st.message());
    return;
  }
  Pump();
  MaybeResume();
}

void ReplicaClient::MaybeResume() {
  if (!paused_ || queued_files_ >= kMaxQueuedFiles || !error_.empty()) return;
  paused_ = false;
  std::string rest = std::move(pending_);
  pending_.clear();
  Result<size_t> used = Decode({reinterpret_cast<const uint8_t*>(rest.data()), rest.size()});
  if (!used.ok()) return Fail("bad stream from the primary: " + used.message());
  if (!error_.empty()) return;
  if (*used < rest.size()) {
    pending_ = rest.substr(*used);
    paused_ = true;
    return;  // full again; stay paused
  }
  curl_.Resume(transfer_);
}

void ReplicaClient::Fail(const std::string& why) {
  if (!error_.empty()) return;
  error_ = why;
  if (transfer_) curl_.Cancel(transfer_);
  transfer_ = 0;
  ScheduleReconnect(why);
}

void ReplicaClient::OnDone(Status status, int http_status) {
  transfer_ = 0;
  std::string why;
  if (!status.ok()) {
    why = status.message();
  } else if (http_status != 200) {
    why = "the primary answered HTTP " + std::to_string(http_status);
    if (refusal_ && !refusal_->empty()) why += ": " + *refusal_;
    while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) why.pop_back();
  } else {
    why = "the stream ended";
  }
  ScheduleReconnect(why);
}

void ReplicaClient::Disconnected() {
  DropReceiving();
  // Received but not applied: the next stream sends them again.
  for (const Queued& q : queue_) {
    if (!q.file.tmp_path.empty()) unlink(q.file.tmp_path.c_str());
  }
  queue_.clear();
  queued_files_ = 0;
  paused_ = false;
  pending_.clear();
  if (connected_) {
    connected_ = false;
    store_.SetPrimary(std::nullopt);
  }
}

void ReplicaClient::ScheduleReconnect(const std::string& why) {
  Disconnected();
  if (stopped_) return;
  // Capped exponential back-off with ±25% jitter, so a fleet of replicas
  // does not reconnect in lock step after the primary restarts.
  auto base = options_.reconnect_delay.count();
  int64_t delay = base;
  for (int i = 0; i < failures_ && delay < options_.max_reconnect_delay.count(); i++) delay *= 2;
  delay = std::min<int64_t>(delay, options_.max_reconnect_delay.count());
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, 0) != sizeof r) r = 0;
  delay = delay * 3 / 4 + int64_t(r % uint32_t(delay / 2 + 1));
  delay = std::max(delay, min_next_delay_ms_);
  min_next_delay_ms_ = 0;
  failures_++;
  log::Warn("replication stream stopped; reconnecting",
            {{"reason", why}, {"in_ms", std::to_string(delay)}});
  uv_timer_start(reconnect_timer_, [](uv_timer_t* t) { static_cast<ReplicaClient*>(t->data)->Connect(); },
                 uint64_t(delay), 0);
}

}  // namespace litefs
