// The reverse proxy's view of this node (proxy/proxy_backend.h), answered
// from the Store: role, the primary's proxy, positions, lag; position and
// role changes are passed on as they happen, so waiting reads wake at once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "proxy/proxy_backend.h"
#include "sidecar/store.h"

namespace litefs {

class StoreProxyBackend : public proxy::ProxyBackend {
 public:
  // `last_primary_ms` as ReplicaClient reports it (-1 before any heartbeat).
  StoreProxyBackend(Store& store, std::function<int64_t()> last_primary_ms);
  ~StoreProxyBackend() override;

  uint64_t node_id() const override { return store_.node_id(); }
  bool is_primary() const override { return store_.is_primary(); }
  std::optional<proxy::PrimaryRoute> primary() const override;
  bool synced_with_primary() const override;
  std::optional<uint64_t> txid(std::string_view db) const override;
  uint64_t change_seq() const override { return seq_; }
  std::vector<std::pair<std::string, uint64_t>> ChangedSince(uint64_t seq) const override;
  std::chrono::milliseconds lag() const override;
  void SetChangeListener(std::function<void()> fn) override { listener_ = std::move(fn); }
  void WhenCommitsRecorded(std::function<void()> fn) override { store_.CaptureCommittedByApps(std::move(fn)); }

 private:
  Store& store_;
  std::function<int64_t()> last_primary_ms_;
  std::function<void()> listener_;
  uint64_t position_subscription_ = 0;
  uint64_t role_subscription_ = 0;
  uint64_t seq_ = 0;
  std::map<std::string, uint64_t, std::less<>> changed_at_;  // db -> seq of its last change
};

}  // namespace litefs
