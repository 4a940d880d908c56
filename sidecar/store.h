// The node's databases and role. Owns every Database, creates them on first
// use (a commit on the primary, an LTX from the stream on a replica), fans
// out position changes to subscribers (replication streams, later the proxy
// and the events API), and keeps `<dir>/.primary` in line with the role:
// absent on the primary, the primary's hostname on a connected replica.
// Loop thread only, except where noted.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ltx/status.h"
#include "sidecar/commit_window.h"
#include "sidecar/database.h"

namespace litefs {

// A node ID as LiteFS prints it: 16 uppercase hex digits.
std::string FormatNodeId(uint64_t id);

struct PrimaryInfo {
  std::string hostname;
  std::string advertise_url;
  std::string proxy_url;  // the primary's proxy ("" when it runs none or did not say)
  uint64_t node_id = 0;   // from its Litefs-Id header; 0 when unknown
  bool synced = false;    // this replica received READY on the current stream
};

class Store {
 public:
  explicit Store(const DatabaseEnv& env);
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Recovers every database that has a history in the data directory;
  // `done` runs once all are recovered (or with the first error).
  void Open(std::function<void(Status)> done);

  Database* Find(std::string_view name);
  // Validates the name, then finds or creates (and recovers) the database.
  Result<Database*> GetOrCreate(std::string_view name);
  std::vector<Database*> All();

  const DatabaseEnv& env() const { return env_; }
  uint64_t node_id() const { return env_.node_id; }

  // Role.
  bool is_primary() const { return is_primary_; }
  // The primary this replica follows, if connected to one.
  const std::optional<PrimaryInfo>& primary() const { return primary_; }
  // `commit_deadline`: apps may pass their commit point until that instant
  // (the lease may expire soon after); none = for as long as this node is
  // primary. The commit window (commit_window.h) publishes it to the apps,
  // which check it right before their commit point.
  void BecomePrimary(std::optional<std::chrono::steady_clock::time_point> commit_deadline = std::nullopt);
  void SetCommitDeadline(std::chrono::steady_clock::time_point deadline);
  // New write transactions are approved only until `approval_lead` before
  // the deadline: one approved later would most likely be refused at its
  // commit point, after the app did all its work.
  bool approving_writes() const {
    return is_primary_ && !window_closed_ &&
           (!commit_deadline_ || std::chrono::steady_clock::now() + approval_lead_ < *commit_deadline_);
  }
  void set_approval_lead(std::chrono::milliseconds lead) { approval_lead_ = lead; }
  // Every app connection asks (Begin) before its next write transaction.
  void WithdrawWriteApprovals();

  // The commit window apps map (`<dir>/.litefs.window`); without it (unit
  // tests) the role alone decides.
  Status OpenCommitWindow();
  // Stepping down: apps stop passing their commit point from now on, while
  // this node stays primary until the commits already past it are recorded.
  void CloseCommitWindow();
  // The database's capture-armed slot in the commit window, assigned on
  // first use (0: no window, or no slot left).
  uint32_t CaptureSlot(Database& db);
  // Stepping down: every database records the WAL transactions committed
  // and not captured yet (Database::CaptureCommitted), durably; then `done`.
  void CaptureCommittedBeforeStepDown(std::function<void()> done);
  // The primary's proxy, before it names positions to a client that just
  // wrote: the databases apps write record what they committed so far (WAL
  // commits the app did not sync are not waited for). At once elsewhere.
  void CaptureCommittedByApps(std::function<void()> done);
  // How to read the commit messages apps have sent so far
  // (CommitServer::ReadPendingMessages); none without a commit server.
  void SetCommitMessageReader(std::function<void()> fn) { read_commit_messages_ = std::move(fn); }
  // After CloseCommitWindow(): true once no app is between its window check
  // and the sidecar's answer to its Commit. Non-blocking.
  bool NoCommitInFlight();
  const std::optional<std::chrono::steady_clock::time_point>& commit_deadline() const {
    return commit_deadline_;
  }
  void SetPrimary(std::optional<PrimaryInfo> primary);  // replica side

  // Cluster ID ("LFSC" + 16 hex), persisted in <data-dir>/clusterid.
  const std::string& cluster_id() const { return cluster_id_; }
  Status SetClusterId(const std::string& id);
  static std::string NewClusterId();
  static bool ValidClusterId(std::string_view id);

  // This node's own proxy URL, advertised to replicas (empty: no proxy).
  void set_proxy_url(std::string url) { proxy_url_ = std::move(url); }
  const std::string& proxy_url() const { return proxy_url_; }

  // Position changes of any database.
  uint64_t Subscribe(std::function<void(Database&)> fn);
  void Unsubscribe(uint64_t id);
  // Role changes: this node became or stopped being the primary, or what a
  // replica knows of its primary changed (connected, disconnected, READY,
  // its proxy URL). Runs after the change, only when something differs.
  uint64_t SubscribeRole(std::function<void()> fn);
  void UnsubscribeRole(uint64_t id);

 private:
  Database* Create(const std::string& name);
  void Changed(Database& db);
  void WritePrimaryFile();
  void RoleChanged(bool was_primary, const std::optional<PrimaryInfo>& was);

  DatabaseEnv env_;
  // Before dbs_: databases arm capture words in its mapping until they go.
  std::unique_ptr<CommitWindow> window_;
  std::map<std::string, std::unique_ptr<Database>, std::less<>> dbs_;
  bool is_primary_ = false;
  // Runs Database::CaptureCommitted on the databases `which` picks, then `done`.
  void CaptureCommittedIn(const std::function<bool(const Database&)>& which, bool sync,
                          std::function<void()> done);
  std::optional<std::chrono::steady_clock::time_point> commit_deadline_;
  std::chrono::milliseconds approval_lead_{0};
  bool window_closed_ = true;
  std::optional<PrimaryInfo> primary_;
  std::string cluster_id_;
  uint64_t next_subscriber_ = 1;
  std::function<void()> read_commit_messages_;
  std::map<uint64_t, std::function<void(Database&)>> subscribers_;
  std::map<uint64_t, std::function<void()>> role_subscribers_;
  std::string proxy_url_;
};

}  // namespace litefs
