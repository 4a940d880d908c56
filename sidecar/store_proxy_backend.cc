// See store_proxy_backend.h.
#include "sidecar/store_proxy_backend.h"

#include <algorithm>

#include "sidecar/clock.h"

namespace litefs {
namespace {

// "http://host:port[/...]" -> "host:port" (port 80 when absent).
std::string HostPortOf(const std::string& url) {
  std::string_view rest = url;
  if (rest.rfind("http://", 0) == 0) rest.remove_prefix(7);
  rest = rest.substr(0, rest.find('/'));
  if (rest.empty()) return "";
  size_t bracket = rest.rfind(']');
  size_t colon = rest.rfind(':');
  bool has_port = colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket);
  return has_port ? std::string(rest) : std::string(rest) + ":80";
}

}  // namespace

StoreProxyBackend::StoreProxyBackend(Store& store, std::function<int64_t()> last_primary_ms)
    : store_(store), last_primary_ms_(std::move(last_primary_ms)) {
  position_subscription_ = store_.Subscribe([this](Database& db) {
    changed_at_[db.name()] = ++seq_;
    if (listener_) listener_();
  });
  role_subscription_ = store_.SubscribeRole([this] {
    if (listener_) listener_();
  });
}

StoreProxyBackend::~StoreProxyBackend() {
  store_.Unsubscribe(position_subscription_);
  store_.UnsubscribeRole(role_subscription_);
}

std::optional<proxy::PrimaryRoute> StoreProxyBackend::primary() const {
  const std::optional<PrimaryInfo>& p = store_.primary();
  if (!p) return std::nullopt;
  return proxy::PrimaryRoute{p->hostname, HostPortOf(p->proxy_url), p->node_id};
}

bool StoreProxyBackend::synced_with_primary() const {
  return store_.primary() && store_.primary()->synced;
}

std::optional<uint64_t> StoreProxyBackend::txid(std::string_view db) const {
  Database* d = store_.Find(db);
  if (d == nullptr || d->pos().txid == 0) return std::nullopt;
  return d->pos().txid;
}

std::vector<std::pair<std::string, uint64_t>> StoreProxyBackend::ChangedSince(uint64_t seq) const {
  std::vector<std::pair<std::string, uint64_t>> out;
  if (seq == seq_) return out;
  for (const auto& [name, at] : changed_at_) {
    if (at <= seq) continue;
    if (auto t = txid(name)) out.emplace_back(name, *t);
  }
  return out;
}

std::chrono::milliseconds StoreProxyBackend::lag() const {
  if (store_.is_primary()) return std::chrono::milliseconds(0);
  int64_t last = last_primary_ms_ ? last_primary_ms_() : -1;
  if (last < 0) return std::chrono::milliseconds(0);  // LiteFS: 0 before the first heartbeat
  return std::chrono::milliseconds(std::max<int64_t>(0, WallClockMs() - last));
}

}  // namespace litefs
