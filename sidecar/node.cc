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
  checkpointer_ = std::make_unique<WalCheckpointer>(loop_);
  env.checkpointer = checkpointer_.get();
  store_ = std::make_unique<Store>(env);
  if (!config_.proxy.target.empty()) store_->set_proxy_url(config_.proxy.advertise_url);

  NodeApiOptions api_options;
  api_options.candidate = config_.lease.candidate;
  api_options.hostname = config_.lease.hostname;
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
  if (config_.lease.candidate) {
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
  } else {
    store_->SetPrimary(std::nullopt);
    curl_ = std::make_unique<http::CurlLoop>(loop_);
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
  stopping_ = true;
  if (retention_timer_) {
    uv_close(reinterpret_cast<uv_handle_t*>(retention_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    retention_timer_ = nullptr;
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

}  // namespace litefs
