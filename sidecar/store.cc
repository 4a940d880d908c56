// See store.h.
#include "sidecar/store.h"

#include <sys/random.h>

#include <cstdio>

#include "sidecar/fsutil.h"
#include "sidecar/log.h"

namespace litefs {

std::string FormatNodeId(uint64_t id) {
  char buf[17];
  snprintf(buf, sizeof buf, "%016llX", static_cast<unsigned long long>(id));
  return buf;
}

Store::Store(const DatabaseEnv& env) : env_(env) {
  env_.withdraw_write_approvals = [this] { WithdrawWriteApprovals(); };
  Result<std::string> id = fs::ReadFile(env_.data_dir + "/clusterid");
  if (id.ok()) {
    std::string v = *id;
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
    if (ValidClusterId(v)) cluster_id_ = v;
  }
}

void Store::Open(std::function<void(Status)> done) {
  std::vector<std::string> names;
  Result<std::vector<std::string>> listed = fs::ListDir(env_.data_dir + "/dbs");
  if (listed.ok()) names = *listed;
  struct Pending {
    size_t left;
    Status first_error;
    std::function<void(Status)> done;
  };
  auto pending = std::make_shared<Pending>(Pending{0, Status(), std::move(done)});
  std::vector<Database*> to_open;
  for (const std::string& name : names) {
    if (!ValidateDbName(name).ok()) continue;
    to_open.push_back(Create(name));
  }
  pending->left = to_open.size();
  if (to_open.empty()) {
    pending->done(Status());
    return;
  }
  for (Database* db : to_open) {
    db->Recover([pending, db](Status st) {
      if (!st.ok() && pending->first_error.ok()) pending->first_error = st.Context(db->name());
      if (--pending->left == 0) pending->done(pending->first_error);
    });
  }
}

Database* Store::Create(const std::string& name) {
  auto db = std::make_unique<Database>(env_, name);
  Database* raw = db.get();
  raw->SetOnChange([this](Database& d) { Changed(d); });
  dbs_.emplace(name, std::move(db));
  return raw;
}

Database* Store::Find(std::string_view name) {
  auto it = dbs_.find(name);
  return it == dbs_.end() ? nullptr : it->second.get();
}

Result<Database*> Store::GetOrCreate(std::string_view name) {
  if (Database* db = Find(name)) return db;
  LITEFS_RETURN_IF_ERROR(ValidateDbName(name));
  Database* db = Create(std::string(name));
  db->Recover();
  return db;
}

std::vector<Database*> Store::All() {
  std::vector<Database*> out;
  for (auto& [name, db] : dbs_) out.push_back(db.get());
  return out;
}

Status Store::OpenCommitWindow() {
  Result<std::unique_ptr<CommitWindow>> w = CommitWindow::Open(env_.dir);
  if (!w.ok()) return w.status().Context("commit window");
  for (auto& [name, db] : dbs_) db->SetCaptureSlot(nullptr, 0);  // slots of the old window
  window_ = std::move(w).value();
  if (is_primary_ && !window_closed_) window_->OpenUntil(commit_deadline_, approval_lead_);
  return Status();
}

uint32_t Store::CaptureSlot(Database& db) {
  if (!window_) return 0;
  if (db.capture_slot() == 0) db.SetCaptureSlot(window_.get(), window_->AssignCaptureSlot());
  return db.capture_slot();
}

void Store::CloseCommitWindow() {
  window_closed_ = true;
  if (window_) window_->Close();
}

void Store::WithdrawWriteApprovals() {
  if (window_) window_->WithdrawApprovals();
}

void Store::CaptureCommittedIn(const std::function<bool(const Database&)>& which, bool sync,
                               std::function<void()> done) {
  auto left = std::make_shared<size_t>(1);
  auto one_done = [left, done = std::move(done)] {
    if (--*left == 0) done();
  };
  // Rollback-mode commits whose apps did not wait are captured first; their
  // messages may not even be read yet.
  if (read_commit_messages_) read_commit_messages_();
  for (auto& [name, db] : dbs_) {
    if (!which(*db)) continue;
    ++*left;
    Database* d = db.get();
    d->WhenRollbackCommitsCaptured([d, sync, one_done] { d->CaptureCommitted(sync, one_done); });
  }
  one_done();
}

void Store::CaptureCommittedBeforeStepDown(std::function<void()> done) {
  CaptureCommittedIn([](const Database&) { return true; }, /*sync=*/true, std::move(done));
}

void Store::CaptureCommittedByApps(std::function<void()> done) {
  if (!is_primary_) return done();
  CaptureCommittedIn([](const Database& db) { return db.app_writers_seen(); }, /*sync=*/false,
                     std::move(done));
}

bool Store::NoCommitInFlight() { return !window_ || window_->NoCommitInFlight(); }

void Store::SetCommitDeadline(std::chrono::steady_clock::time_point deadline) {
  commit_deadline_ = deadline;
  if (is_primary_ && !window_closed_ && window_) window_->OpenUntil(deadline, approval_lead_);
}

void Store::BecomePrimary(std::optional<std::chrono::steady_clock::time_point> commit_deadline) {
  commit_deadline_ = commit_deadline;
  window_closed_ = false;
  if (window_) window_->OpenUntil(commit_deadline, approval_lead_);
  bool was_primary = is_primary_;
  std::optional<PrimaryInfo> was = std::move(primary_);
  if (!was_primary) {
    // What this node applied as a replica becomes durable before it serves
    // as primary (each database's strand runs this before any commit).
    for (auto& [name, db] : dbs_) db->MakeAppliesDurable();
  }
  is_primary_ = true;
  primary_.reset();
  WritePrimaryFile();
  RoleChanged(was_primary, was);
}

void Store::SetPrimary(std::optional<PrimaryInfo> primary) {
  bool was_primary = is_primary_;
  std::optional<PrimaryInfo> was = std::move(primary_);
  is_primary_ = false;
  commit_deadline_.reset();
  CloseCommitWindow();
  for (auto& [name, db] : dbs_) db->StopLingering();
  primary_ = std::move(primary);
  bool same_host = !was_primary && was && primary_ && was->hostname == primary_->hostname;
  if (!same_host) WritePrimaryFile();
  RoleChanged(was_primary, was);
}

void Store::RoleChanged(bool was_primary, const std::optional<PrimaryInfo>& was) {
  auto same = [](const PrimaryInfo& a, const PrimaryInfo& b) {
    return a.hostname == b.hostname && a.advertise_url == b.advertise_url && a.proxy_url == b.proxy_url &&
           a.node_id == b.node_id && a.synced == b.synced;
  };
  if (was_primary == is_primary_ && was.has_value() == primary_.has_value() &&
      (!was || same(*was, *primary_))) {
    return;
  }
  std::vector<uint64_t> ids;
  for (auto& [id, fn] : role_subscribers_) ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = role_subscribers_.find(id);
    if (it != role_subscribers_.end()) it->second();
  }
}

uint64_t Store::SubscribeRole(std::function<void()> fn) {
  uint64_t id = next_subscriber_++;
  role_subscribers_.emplace(id, std::move(fn));
  return id;
}

void Store::UnsubscribeRole(uint64_t id) { role_subscribers_.erase(id); }

void Store::WritePrimaryFile() {
  std::string path = env_.dir + "/.primary";
  Status st = primary_ ? fs::WriteFileAtomic(path, primary_->hostname + "\n", false, 0644)
                       : fs::RemoveFile(path);
  if (!st.ok()) log::Error("cannot update .primary", {{"error", st.message()}});
}

Status Store::SetClusterId(const std::string& id) {
  if (!ValidClusterId(id)) return Status::Error("invalid cluster id \"" + id + "\"");
  LITEFS_RETURN_IF_ERROR(fs::MakeDirs(env_.data_dir));
  LITEFS_RETURN_IF_ERROR(fs::WriteFileAtomic(env_.data_dir + "/clusterid", id + "\n", true));
  cluster_id_ = id;
  return Status();
}

std::string Store::NewClusterId() {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != sizeof r) r = uint64_t(time(nullptr)) * 0x9e3779b97f4a7c15ull;
  char buf[32];
  snprintf(buf, sizeof buf, "LFSC%016llX", static_cast<unsigned long long>(r));
  return buf;
}

bool Store::ValidClusterId(std::string_view id) {
  return id.size() == 20 && id.substr(0, 4) == "LFSC";
}

uint64_t Store::Subscribe(std::function<void(Database&)> fn) {
  uint64_t id = next_subscriber_++;
  subscribers_.emplace(id, std::move(fn));
  return id;
}

void Store::Unsubscribe(uint64_t id) { subscribers_.erase(id); }

void Store::Changed(Database& db) {
  // A subscriber may unsubscribe (or subscribe) while being notified.
  std::vector<uint64_t> ids;
  for (auto& [id, fn] : subscribers_) ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = subscribers_.find(id);
    if (it != subscribers_.end()) it->second(db);
  }
}

}  // namespace litefs
