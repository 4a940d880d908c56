// See node.h.
#include "sidecar/node.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>
#include <sys/stat.h>

#include "sidecar/clock.h"
#include "sidecar/fsutil.h"
#include "sidecar/log.h"
#include "vfs/commit_protocol.h"

namespace litefs {
namespace {

// How long a step-down waits for approved write transactions to commit.
constexpr std::chrono::milliseconds kDrainLimit{2000};

uint64_t RandomNodeId() {
  uint64_t id = 0;
  while (id == 0) {
    if (getrandom(&id, sizeof id, 0) != sizeof id) id = uint64_t(time(nullptr)) ^ uint64_t(getpid());
  }
  return id;
}

}  // namespace

Node::Node(uv_loop_t* loop, Config config)
    : loop_(loop), config_(std::move(config)), node_id_(RandomNodeId()) {}

Node::~Node() = default;

Status Node::Start(std::function<void(Status)> ready, std::function<void(Status)> synced) {
  on_synced_ = std::move(synced);
  struct stat st;
  if (stat(config_.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::Error("dir " + config_.dir + " does not exist or is not a directory");
  }
  LITEFS_RETURN_IF_ERROR(fs::MakeDirs(config_.data_dir).Context("data.dir"));
  LITEFS_RETURN_IF_ERROR(LockDataDir());
  DatabaseEnv env;
  env.loop = loop_;
  env.dir = config_.dir;
  env.data_dir = config_.data_dir;
  env.compress = config_.data_compress;
  env.node_id = node_id_;
  env.metrics = &metrics_;
  store_ = std::make_unique<Store>(env);
  LITEFS_RETURN_IF_ERROR(store_->OpenCommitWindow());
  if (!config_.proxy.target.empty()) store_->set_proxy_url(config_.proxy.advertise_url);

  NodeApiOptions api_options;
  api_options.candidate = config_.lease.candidate;
  api_options.hostname = config_.lease.hostname;
  api_options.promote = [this](NodeApiOptions::Reply reply) { Promote(std::move(reply)); };
  api_options.handoff = [this](const std::string& node_id, NodeApiOptions::Reply reply) {
    Handoff(node_id, std::move(reply));
  };
  api_options.metrics = &metrics_;
  api_options.lag_seconds = [this] {
    int64_t t = LastPrimaryTimestampMs();
    return t > 0 ? double(WallClockMs() - t) / 1000.0 : 0.0;
  };
  api_ = std::make_unique<NodeApi>(loop_, *store_, api_options);
  LITEFS_RETURN_IF_ERROR(api_->Listen(config_.http_addr).Context("http.addr"));
  log::Info("node API listening", {{"addr", config_.http_addr}, {"port", std::to_string(api_->port())},
                                   {"node_id", FormatNodeId(node_id_)}});

  if (config_.data_retention.count() > 0) {
    // LTX files older than data.retention go (the newest of each database
    // stays); a replica needing one later gets a snapshot instead.
    retention_timer_ = new uv_timer_t;
    uv_timer_init(loop_, retention_timer_);
    retention_timer_->data = this;
    uint64_t every = uint64_t(config_.data_retention_monitor_interval.count());
    uv_timer_start(retention_timer_, [](uv_timer_t* t) {
      auto* node = static_cast<Node*>(t->data);
      for (Database* db : node->store_->All()) db->EnforceRetention(node->config_.data_retention);
    }, every, every);
  }

  store_->Open([this, ready = std::move(ready)](Status st) {
    if (!st.ok()) return ready(st.Context("recover databases"));
    BecomeRole(ready);
  });
  return Status();
}

// Two sidecars sharing a data dir would both recover and write the same LTX
// logs: hold an exclusive flock on <data-dir>/lock for the process lifetime.
Status Node::LockDataDir() {
  std::string path = config_.data_dir + "/lock";
  Result<fs::UniqueFd> fd = fs::Open(path, O_RDWR | O_CREAT, 0644);
  if (!fd.ok()) return fd.status();
  if (flock(fd->get(), LOCK_EX | LOCK_NB) != 0) {
    Result<std::string> owner = fs::ReadFile(path);
    std::string pid = owner.ok() ? *owner : "";
    while (!pid.empty() && pid.back() == '\n') pid.pop_back();
    return Status::Error("another litefs is using data dir " + config_.data_dir +
                         (pid.empty() ? "" : " (pid " + pid + ")"));
  }
  std::string me = std::to_string(getpid()) + "\n";
  if (ftruncate(fd->get(), 0) != 0 || pwrite(fd->get(), me.data(), me.size(), 0) < 0) {
    return fs::ErrnoError("write", path);
  }
  data_dir_lock_ = std::move(fd).value();
  return Status();
}

void Node::BecomeRole(std::function<void(Status)> ready) {
  if (stopping_) return;
  curl_ = std::make_unique<http::CurlLoop>(loop_);
  if (config_.lease.type == "etcd") {
    Status st = StartEtcdLease();
    if (!st.ok()) return ready(st);
  } else if (config_.lease.candidate) {
    // Static lease: the candidate is the primary, for good.
    if (store_->cluster_id().empty()) {
      Status st = store_->SetClusterId(Store::NewClusterId());
      if (!st.ok()) return ready(st);
    }
    store_->BecomePrimary();
    watcher_ = std::make_unique<DirWatcher>(loop_, *store_);
    Status st = watcher_->Start(config_.dir);
    if (!st.ok()) return ready(st);
    log::Info("this node is the primary", {{"cluster_id", store_->cluster_id()}});
    LogCommitWindow(true, std::chrono::steady_clock::now(), "static lease");
  } else {
    store_->SetPrimary(std::nullopt);
    ReplicaOptions options;
    options.primary_url = config_.lease.advertise_url;
    while (!options.primary_url.empty() && options.primary_url.back() == '/') options.primary_url.pop_back();
    options.primary_hostname = config_.lease.hostname;
    options.reconnect_delay = config_.lease.reconnect_delay;
    replica_ = std::make_unique<ReplicaClient>(loop_, *curl_, *store_, options);
    if (!config_.skip_sync) replica_->SetOnReady([this] { OnSynced(); });
    replica_->Start();
    log::Info("this node is a replica", {{"primary", config_.lease.advertise_url}});
  }
  lag_file_ = std::make_unique<LagFile>(loop_, config_.dir + "/.lag",
                                        [this] { return LastPrimaryTimestampMs(); });
  lag_file_->Start();
  commits_ = std::make_unique<CommitServer>(loop_, *store_);
  std::string socket = config_.dir + "/" + wire::kSocketName;
  Status st = commits_->Listen(socket);
  if (!st.ok()) return ready(st);
  log::Info("serving commits", {{"socket", socket}});
  ready(Status());
  if (store_->is_primary() || config_.skip_sync) OnSynced();
}

// Once per run: the proxy starts listening, then `exec` may run.
void Node::OnSynced() {
  if (stopping_ || !on_synced_) return;
  std::function<void(Status)> synced = std::move(on_synced_);
  on_synced_ = nullptr;
  synced(StartProxy());
}

Status Node::StartProxy() {
  const Config::Proxy& pc = config_.proxy;
  if (pc.target.empty() || proxy_) return Status();
  proxy_backend_ = std::make_unique<StoreProxyBackend>(*store_, [this]() -> int64_t {
    return replica_ ? replica_->last_primary_timestamp_ms() : -1;
  });
  proxy::ProxyOptions options;
  options.target = pc.target;
  options.db = pc.db;
  options.max_lag = pc.max_lag;
  options.debug = pc.debug;
  options.passthrough = pc.passthrough;
  options.always_forward = pc.always_forward;
  options.primary_redirect_timeout = pc.primary_redirect_timeout;
  options.txid_wait_timeout = pc.txid_timeout;
  options.cookie_expiry = pc.cookie_expiry;
  options.target_retry = pc.target_retry_timeout;
  options.write_mode = pc.mode == "fly-replay" ? proxy::WriteMode::kFlyReplay : proxy::WriteMode::kForward;
  options.server.header_read_timeout = pc.read_header_timeout;
  options.server.read_timeout = pc.read_timeout;
  options.server.write_timeout = pc.write_timeout;
  options.server.idle_timeout = pc.idle_timeout;
  options.server.max_connections = pc.max_connections;
  options.log_debug = [](const std::string& line) { log::Info("proxy", {{"route", line}}); };
  proxy_ = std::make_unique<proxy::ReverseProxy>(loop_, *proxy_backend_, std::move(options));
  LITEFS_RETURN_IF_ERROR(proxy_->Listen(pc.addr).Context("proxy.addr"));
  log::Info("proxy listening", {{"addr", pc.addr}, {"port", std::to_string(proxy_->port())},
                                {"target", pc.target}, {"advertise_url", pc.advertise_url}});
  return Status();
}

int64_t Node::LastPrimaryTimestampMs() const {
  if (store_->is_primary()) return 0;
  return replica_ ? replica_->last_primary_timestamp_ms() : -1;
}

void Node::Stop(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  if (lease_) {
    // Let approved transactions commit, stop taking commits, then leave the
    // lease "released" so a candidate takes over at once; the rest of the
    // shutdown follows.
    auto release = [this, done = std::move(done)]() mutable {
      StopAcceptingCommits("shutting down", /*end_streams=*/false, [this, done = std::move(done)]() mutable {
        lease_->Stop(CurrentPositions(), [this, done = std::move(done)]() mutable { FinishStop(std::move(done)); });
      });
    };
    if (commits_ && store_->is_primary()) return commits_->Drain(kDrainLimit, std::move(release));
    return release();
  }
  FinishStop(std::move(done));
}

void Node::FinishStop(std::function<void()> done) {
  if (progress_subscription_) store_->Unsubscribe(progress_subscription_);
  progress_subscription_ = 0;
  for (uv_timer_t** timer : {&retention_timer_, &step_down_timer_}) {
    if (!*timer) continue;
    uv_close(reinterpret_cast<uv_handle_t*>(*timer), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    *timer = nullptr;
  }
  if (replica_) replica_->Stop();
  if (watcher_) watcher_->Stop();
  if (lag_file_) lag_file_->Stop();
  auto remaining = std::make_shared<int>(3);
  auto finish = [this, remaining, done = std::move(done)] {
    if (--*remaining > 0) return;
    proxy_.reset();
    proxy_backend_.reset();
    replica_.reset();
    lease_.reset();
    etcd_.reset();
    curl_.reset();
    if (done) done();
  };
  if (proxy_) {
    proxy_->Close(finish);
  } else {
    finish();
  }
  if (commits_) {
    commits_->Close(finish);
  } else {
    finish();
  }
  if (api_) {
    api_->Close(finish);
  } else {
    finish();
  }
}

// ---- etcd lease ------------------------------------------------------------

Status Node::StartEtcdLease() {
  const Config::Lease& lease = config_.lease;
  // Requests give up well inside the TTL so that a renewal can be retried.
  long timeout_ms = long(std::max<int64_t>(500, lease.etcd.ttl.count() / 3));
  http::ClientRequest::Tls tls{lease.etcd.ca_file, lease.etcd.cert_file, lease.etcd.key_file};
  EtcdClient::Credentials credentials{lease.etcd.username, lease.etcd.password};
  etcd_ = std::make_unique<EtcdClient>(*curl_, lease.etcd.endpoints, timeout_ms, std::move(tls),
                                       std::move(credentials));
  EtcdLeaseOptions options;
  options.key = lease.etcd.key;
  options.ttl = lease.etcd.ttl;
  options.lock_delay = lease.etcd.lock_delay;
  options.reconnect_delay = lease.reconnect_delay;
  options.candidate = lease.candidate;
  options.self.kind = LeaseRecord::Kind::kHeld;
  options.self.hostname = lease.hostname;
  options.self.advertise_url = lease.advertise_url;
  options.self.node_id = FormatNodeId(node_id_);
  options.self.proxy_url = store_->proxy_url();  // replicas forward writes there
  EtcdLease::Callbacks cb;
  cb.acquired = [this](SteadyTime deadline) { TakePrimaryRole(deadline); };
  cb.renewed = [this](SteadyTime deadline) {
    if (store_->is_primary()) store_->SetCommitDeadline(deadline);
  };
  cb.lost = [this](const std::string& why) { StopAcceptingCommits(why, /*end_streams=*/true); };
  cb.primary_changed = [this](std::optional<PrimaryInfo> primary) { Follow(std::move(primary)); };
  cb.caught_up = [this](const EtcdLease::Positions& p) { return CaughtUp(p); };
  cb.cluster_id = [this] { return store_->cluster_id(); };
  cb.adopt_cluster_id = [this](const std::string& id) { return store_->SetClusterId(id); };
  lease_ = std::make_unique<EtcdLease>(loop_, *etcd_, std::move(options), std::move(cb));
  progress_subscription_ = store_->Subscribe([this](Database&) {
    if (lease_) lease_->LocalProgress();
  });
  promote_pending_ = lease.promote;
  store_->SetPrimary(std::nullopt);
  lease_->Start();
  return Status();
}

void Node::TakePrimaryRole(std::optional<SteadyTime> deadline) {
  if (stopping_) return;
  if (step_down_) {  // the lease came back before the step-down finished
    if (step_down_timer_) uv_timer_stop(step_down_timer_);
    step_down_.reset();
  }
  // Stop replicating before accepting commits: an apply still running
  // finishes on the database's strand before any commit is captured.
  replica_.reset();
  following_.reset();
  if (store_->cluster_id().empty()) {
    Status st = store_->SetClusterId(Store::NewClusterId());
    if (!st.ok()) log::Error("cannot store a new cluster id", {{"error", st.message()}});
  }
  // Approvals stop half a margin before the fencing deadline: transactions
  // approved until then have that long to commit inside the window.
  store_->set_approval_lead(FencingMargin(config_.lease.etcd.ttl) / 2);
  store_->BecomePrimary(deadline);
  if (!watcher_) {
    watcher_ = std::make_unique<DirWatcher>(loop_, *store_);
    Status st = watcher_->Start(config_.dir);
    if (!st.ok()) log::Error("cannot watch the directory for deletions", {{"error", st.message()}});
  }
  log::Info("this node is the primary", {{"cluster_id", store_->cluster_id()}});
  LogCommitWindow(true, std::chrono::steady_clock::now(), "acquired the lease");
  OnSynced();  // the proxy and exec start once this node is primary or caught up
}

void Node::StopAcceptingCommits(const std::string& why, bool end_streams, std::function<void()> then) {
  if (step_down_) {  // already stepping down: finish together
    if (then) {
      auto first = std::move(step_down_->then);
      step_down_->then = [first = std::move(first), then = std::move(then)] {
        if (first) first();
        then();
      };
    }
    step_down_->end_streams = step_down_->end_streams || end_streams;
    return;
  }
  if (!store_->is_primary()) {
    if (then) then();
    return;
  }
  // Apps check the deadline themselves: the window closed then if that came first.
  SteadyTime closed = std::chrono::steady_clock::now();
  if (store_->commit_deadline()) closed = std::min(closed, *store_->commit_deadline());
  store_->CloseCommitWindow();
  LogCommitWindow(false, closed, why);
  step_down_ = StepDown{end_streams, std::move(then), std::chrono::steady_clock::now() + kDrainLimit, std::nullopt};
  PollStepDown();
}

void Node::PollStepDown() {
  if (!step_down_) return;
  if (!store_->NoCommitInFlight() || (commits_ && !commits_->NoCommitInFlight())) {
    if (std::chrono::steady_clock::now() < step_down_->give_up) {
      if (!step_down_timer_) {
        step_down_timer_ = new uv_timer_t;
        uv_timer_init(loop_, step_down_timer_);
        step_down_timer_->data = this;
      }
      uv_timer_start(step_down_timer_, [](uv_timer_t* t) { static_cast<Node*>(t->data)->PollStepDown(); }, 1, 0);
      return;
    }
    log::Warn("stepping down although an app still holds the commit window (stalled mid-commit?); "
              "its commit will not be replicated");
  }
  // Async WAL commits may still be on their way: the WAL is their record.
  if (step_down_->capturing) return;
  step_down_->capturing = true;
  store_->CaptureCommittedBeforeStepDown([this] { FinishStepDown(); });
}

void Node::FinishStepDown() {
  if (!step_down_) return;  // the lease came back meanwhile
  StepDown done = std::move(*step_down_);
  step_down_.reset();
  store_->SetPrimary(std::nullopt);
  if (api_ && done.end_streams) api_->EndStreams();
  watcher_.reset();
  if (done.follow) Follow(std::move(*done.follow));
  if (done.then) done.then();
}

EtcdLease::Positions Node::CurrentPositions() {
  EtcdLease::Positions positions;
  for (Database* db : store_->All()) positions[db->name()] = db->pos().txid;
  return positions;
}

void Node::LogCommitWindow(bool open, SteadyTime at, const std::string& why) {
  const SteadyTime now = std::chrono::steady_clock::now();
  const int64_t mono_us =
      std::chrono::duration_cast<std::chrono::microseconds>(at.time_since_epoch()).count();
  const int64_t wall_ms =
      WallClockMs() - std::chrono::duration_cast<std::chrono::milliseconds>(now - at).count();
  log::Info(open ? "commit window opened" : "commit window closed",
            {{"mono_us", std::to_string(mono_us)}, {"wall_ms", std::to_string(wall_ms)},
             {"node_id", FormatNodeId(node_id_)}, {"reason", why}});
}

void Node::Follow(std::optional<PrimaryInfo> primary) {
  if (step_down_) {
    step_down_->follow = std::move(primary);
    return;
  }
  if (stopping_ || store_->is_primary()) return;
  if (primary && primary->advertise_url == config_.lease.advertise_url) {
    // Our own record from before a restart: it expires with its old lease.
    primary.reset();
  }
  // No primary in etcd (released, handed off, expired): keep streaming from
  // the one we follow, if any, so that we catch up with its last commits;
  // the stream ends by itself if it is gone.
  if (!primary) return;
  if (following_ && following_->advertise_url == primary->advertise_url) return;
  replica_.reset();
  following_ = primary;
  // Streams this node still serves from before it stepped down end now:
  // the replicas follow the new primary.
  if (api_) api_->EndStreams();
  ReplicaOptions options;
  options.primary_url = primary->advertise_url;
  while (!options.primary_url.empty() && options.primary_url.back() == '/') options.primary_url.pop_back();
  options.primary_hostname = primary->hostname;
  options.reconnect_delay = config_.lease.reconnect_delay;
  // The same primary may come back within a TTL (its lease renewed after an
  // etcd outage): do not back off for longer than that.
  options.max_reconnect_delay = std::min<std::chrono::milliseconds>(options.max_reconnect_delay,
                                                                    config_.lease.etcd.ttl);
  replica_ = std::make_unique<ReplicaClient>(loop_, *curl_, *store_, options);
  replica_->SetOnReady([this] {
    OnSynced();
    if (!promote_pending_) return;
    promote_pending_ = false;
    log::Info("lease.promote: asking the primary for the lease");
    Promote([](int status, std::string message) {
      if (status != 200) log::Warn("lease.promote failed", {{"status", std::to_string(status)}, {"error", message}});
    });
  });
  replica_->Start();
  log::Info("following the primary", {{"hostname", primary->hostname}, {"url", primary->advertise_url}});
}

bool Node::CaughtUp(const EtcdLease::Positions& positions) {
  for (const auto& [name, txid] : positions) {
    Database* db = store_->Find(name);
    if (!db || db->pos().txid < txid) return false;
  }
  return true;
}

void Node::Promote(NodeApiOptions::Reply reply) {
  if (!config_.lease.candidate) return reply(409, "this node is not a candidate");
  if (store_->is_primary()) return reply(200, "this node is already the primary");
  if (!lease_) return reply(409, "the static lease cannot change hands");
  const std::optional<PrimaryInfo>& primary = store_->primary();
  if (!primary || !replica_ || !replica_->connected()) {
    return reply(500, "not connected to a primary; an election may be in progress");
  }
  http::ClientRequest req;
  req.method = "POST";
  req.url = primary->advertise_url + "/handoff?nodeID=" + FormatNodeId(node_id_);
  req.total_timeout_ms = 10000;
  auto body = std::make_shared<std::string>();
  req.on_data = [body](std::span<const uint8_t> d) {
    body->append(reinterpret_cast<const char*>(d.data()), d.size());
    return http::DataAction::kContinue;
  };
  req.on_done = [reply, body](Status st, int status) {
    while (!body->empty() && body->back() == '\n') body->pop_back();
    if (!st.ok()) return reply(500, "handoff request failed: " + st.message());
    if (status != 200) return reply(500, "the primary refused the handoff: " + *body);
    reply(200, "the primary is handing the lease to this node");
  };
  curl_->Start(std::move(req));
}

void Node::Handoff(const std::string& node_id, NodeApiOptions::Reply reply) {
  if (!lease_) return reply(500, "the static lease cannot be handed off");
  if (!lease_->held() || !store_->is_primary()) return reply(500, "this node is not the primary");
  if (node_id == FormatNodeId(node_id_)) return reply(200, "this node is already the primary");
  // Transactions already approved commit first, so the positions the
  // successor must reach include every acknowledged commit.
  commits_->Drain(kDrainLimit, [this, node_id, reply] {
    if (!lease_->held() || !store_->is_primary()) return reply(500, "lost the lease while draining writes");
    StopAcceptingCommits("handing the lease off to " + node_id, /*end_streams=*/false, [this, node_id, reply] {
      lease_->HandOff(node_id, CurrentPositions(), [reply](Status st) {
        if (!st.ok()) return reply(500, st.message());
        reply(200, "handoff started");
      });
    });
  });
}

}  // namespace litefs
