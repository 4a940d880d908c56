// One litefs node: wires the store, the commit socket, the node API and the
// lease together on one libuv loop, in LiteFS's startup order: bind the API,
// recover every database, take the role, then open the commit socket so apps
// can write. Static lease: this node is the primary, or a replica following
// the primary's advertise URL, for good. etcd lease: the role follows the
// lease, both ways (replica -> primary: stop replicating, then accept
// commits; primary -> replica: stop accepting commits first, end the
// streams, then follow the new primary). Every change of the commit window
// is logged ("commit window opened/closed") with monotonic and wall times.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>

#include "ltx/status.h"
#include "sidecar/commit_server.h"
#include "sidecar/config.h"
#include "sidecar/curl_loop.h"
#include "sidecar/dir_watcher.h"
#include "sidecar/etcd_client.h"
#include "sidecar/etcd_lease.h"
#include "sidecar/lag_file.h"
#include "sidecar/metrics.h"
#include "sidecar/fsutil.h"
#include "sidecar/node_api.h"
#include "sidecar/replica_client.h"
#include "proxy/reverse_proxy.h"
#include "sidecar/store.h"
#include "sidecar/store_proxy_backend.h"

namespace litefs {

class Node {
 public:
  Node(uv_loop_t* loop, Config config);
  ~Node();

  // Starts asynchronously; `ready` runs once the node serves commits (or
  // with the error that stopped it). `synced` runs later, once: when this
  // node is the primary, or a replica that caught up with its primary
  // (LiteFS's READY; at once with skip-sync), after the proxy is listening —
  // `exec` starts then. A proxy that cannot listen is reported there.
  Status Start(std::function<void(Status)> ready, std::function<void(Status)> synced = nullptr);
  void Stop(std::function<void()> done);

  Store& store() { return *store_; }

 private:
  Status LockDataDir();
  void BecomeRole(std::function<void(Status)> ready);
  void OnSynced();
  Status StartProxy();
  Status StartEtcdLease();
  // Role changes.
  void TakePrimaryRole(std::optional<SteadyTime> deadline);
  // Steps down: closes the commit window (apps refuse their commit point
  // from now on), waits — bounded — until the commits already past it are
  // recorded, then stops being the primary and runs `then`.
  // `end_streams`: false when stepping down voluntarily, so that the
  // streams deliver the last commits to the successor (they end when this
  // node follows it).
  void StopAcceptingCommits(const std::string& why, bool end_streams, std::function<void()> then = nullptr);
  void PollStepDown();
  void FinishStepDown();
  EtcdLease::Positions CurrentPositions();
  void Follow(std::optional<PrimaryInfo> primary);
  void LogCommitWindow(bool open, SteadyTime at, const std::string& why);
  // POST /promote and POST /handoff.
  void Promote(NodeApiOptions::Reply reply);
  void Handoff(const std::string& node_id, NodeApiOptions::Reply reply);
  bool CaughtUp(const EtcdLease::Positions& positions);
  void FinishStop(std::function<void()> done);
  // LiteFS's "last primary timestamp" (§2.8): 0 on the primary, -1 unknown.
  int64_t LastPrimaryTimestampMs() const;

  uv_loop_t* loop_;
  Config config_;
  uint64_t node_id_ = 0;
  NodeMetrics metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<http::CurlLoop> curl_;
  std::unique_ptr<NodeApi> api_;
  std::unique_ptr<CommitServer> commits_;
  std::unique_ptr<DirWatcher> watcher_;
  std::unique_ptr<LagFile> lag_file_;
  std::unique_ptr<ReplicaClient> replica_;
  std::unique_ptr<StoreProxyBackend> proxy_backend_;
  std::unique_ptr<proxy::ReverseProxy> proxy_;
  std::function<void(Status)> on_synced_;
  std::unique_ptr<EtcdClient> etcd_;
  std::unique_ptr<EtcdLease> lease_;
  std::optional<PrimaryInfo> following_;  // the primary replica_ streams from
  uint64_t progress_subscription_ = 0;
  bool promote_pending_ = false;  // lease.promote: ask once, after catching up
  bool stopping_ = false;
  // Between closing the commit window and leaving the primary role.
  struct StepDown {
    bool end_streams = false;
    std::function<void()> then;
    SteadyTime give_up;
    std::optional<std::optional<PrimaryInfo>> follow;  // a new primary seen meanwhile
    bool capturing = false;  // recording the WAL's uncaptured commits
  };
  std::optional<StepDown> step_down_;
  uv_timer_t* step_down_timer_ = nullptr;
  uv_timer_t* retention_timer_ = nullptr;
  fs::UniqueFd data_dir_lock_;  // flock: one sidecar per data dir
};

}  // namespace litefs
