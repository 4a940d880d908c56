// What the reverse proxy needs to know about its node, as an interface so
// the proxy library does not depend on the sidecar (and tests can fake it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace litefs::proxy {

struct PrimaryRoute {
  std::string hostname;      // for fly-replay: instance=<hostname>
  std::string proxy_target;  // "host:port" of the primary's proxy; "" when unknown
  uint64_t node_id = 0;      // 0 when unknown
};

class ProxyBackend {
 public:
  virtual ~ProxyBackend() = default;

  virtual uint64_t node_id() const = 0;
  virtual bool is_primary() const = 0;
  // The primary this replica follows; nullopt on the primary and while no
  // primary is known.
  virtual std::optional<PrimaryRoute> primary() const = 0;
  // This replica has received everything the current primary had when the
  // stream (re)connected (LiteFS's READY).
  virtual bool synced_with_primary() const = 0;
  // The database's local TXID; nullopt when the database does not exist here.
  virtual std::optional<uint64_t> txid(std::string_view db) const = 0;
  // A counter that moves on every position change, and the databases whose
  // position changed after the counter had value `seq`, with their TXIDs.
  virtual uint64_t change_seq() const = 0;
  virtual std::vector<std::pair<std::string, uint64_t>> ChangedSince(uint64_t seq) const = 0;
  // LiteFS's replication lag (zero on the primary).
  virtual std::chrono::milliseconds lag() const = 0;
  // Runs `fn` once every transaction an app committed on this node so far
  // has its TXID (the primary records WAL commits just after the app's
  // COMMIT returns); at once, or later on the loop thread.
  virtual void WhenCommitsRecorded(std::function<void()> fn) = 0;
  // `fn` runs after every position or role change (one listener).
  virtual void SetChangeListener(std::function<void()> fn) = 0;
};

}  // namespace litefs::proxy
