// ReverseProxy: LiteFS's HTTP proxy in front of the app (proxy.addr ->
// proxy.target), on the shared llhttp/libuv server.
//
// Routing, in order (LiteFS's, with the differences marked *):
//   1. path matches `passthrough`       -> the app, untouched (no TXID handling)
//   2. GET /litefs/health                -> 200 "OK", or 503 when lag > max_lag
//   3. GET, HEAD, OPTIONS* not matching `always_forward` -> read:
//      wait until every position in the request's token is reached locally
//      (woken by the store, never polled*), then the app; 504 after
//      txid_wait_timeout. A token from a primary that has since been replaced
//      does not wait* (see below).
//   4. everything else                   -> write:
//      on the primary: the app; the response gets cookie `__txid` (LiteFS),
//      cookie `__litefs` and header `Litefs-Txid` (the full token*);
//      on a replica: forwarded to the primary's proxy (*; or a `fly-replay`
//      answer in kFlyReplay mode); no primary within
//      primary_redirect_timeout -> 503.
// Upgrade requests (WebSocket) are tunnelled* both ways once the target
// answers 101: reads go to the local app, always-forward paths to the primary.
//
// Stale tokens*: LiteFS makes a read wait 5 s and fail for a TXID the new
// primary will never reach after a failover. Here a token is stale, and the
// read goes straight to the app, when this node is the primary and its TXID is
// below the token's (only the primary writes, so it would already have it), or
// when this replica has caught up with its current primary (READY), the token
// was issued by another primary (the `@` node ID) and the TXID is still not
// here. Responses to such reads carry `Litefs-Txid-Stale: 1`.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "ltx/status.h"
#include "proxy/http/server.h"
#include "proxy/proxy_backend.h"
#include "proxy/tunnel.h"
#include "proxy/txid_token.h"
#include "proxy/upstream_pool.h"

namespace litefs::proxy {

enum class WriteMode { kForward, kFlyReplay };

struct ProxyOptions {
  std::string target;  // the app, "host:port"
  std::string db;      // proxy.db: the database a plain `__txid` names
  std::chrono::milliseconds max_lag{10'000};  // 0 disables the health check
  bool debug = false;  // log every routing decision
  std::vector<std::string> passthrough;
  std::vector<std::string> always_forward;
  std::chrono::milliseconds primary_redirect_timeout{5'000};
  std::chrono::milliseconds txid_wait_timeout{5'000};
  std::chrono::milliseconds cookie_expiry{5 * 60'000};
  std::chrono::milliseconds target_retry{5'000};  // redial a refusing target this long
  WriteMode write_mode = WriteMode::kForward;
  http::ServerOptions server;
  // Routing decisions when `debug` is set.
  std::function<void(const std::string&)> log_debug;
};

struct ProxyStats {
  uint64_t requests = 0;
  uint64_t reads_waited = 0;      // reads that had to wait for a position
  uint64_t read_timeouts = 0;     // 504s
  uint64_t stale_tokens = 0;
  uint64_t writes_forwarded = 0;  // replica -> primary
  uint64_t upstream_errors = 0;   // 502s
  uint64_t tunnels = 0;
};

class ReverseProxy {
 public:
  ReverseProxy(uv_loop_t* loop, ProxyBackend& backend, ProxyOptions options);
  ~ReverseProxy();
  ReverseProxy(const ReverseProxy&) = delete;
  ReverseProxy& operator=(const ReverseProxy&) = delete;

  Status Listen(std::string_view addr);
  int port() const { return server_->port(); }
  void Close(std::function<void()> done);

  const ProxyStats& stats() const { return stats_; }
  http::ServerStats server_stats() const { return server_->stats(); }

  // What a forwarded exchange uses (forwarder.cc).
  uv_loop_t* loop() const { return loop_; }
  UpstreamPool& pool() { return pool_; }
  ProxyBackend& backend() { return backend_; }
  const ProxyOptions& options() const { return options_; }
  ProxyStats& mutable_stats() { return stats_; }
  // Takes over an upgraded connection pair; Close() ends it.
  void AddTunnel(uv_tcp_t* client, std::string client_early, uv_tcp_t* target, std::string target_early);

 private:
  struct Waiter;

  void Handle(std::shared_ptr<http::Exchange> ex);
  void HandleHealth(http::Exchange& ex);
  void HandleRead(std::shared_ptr<http::Exchange> ex);
  void HandleWrite(std::shared_ptr<http::Exchange> ex);
  void RouteWrite(std::shared_ptr<http::Exchange> ex, bool waited);
  TxidToken RequestToken(const http::Request& request) const;

  enum class WaitResult { kReady, kStale, kTimeout, kGone };
  // Calls `done` once `ready()` returns true (checked now and after every
  // backend change), or with kTimeout after `timeout`, or kGone when the
  // client disconnected.
  void WaitUntil(std::shared_ptr<http::Exchange> ex, std::chrono::milliseconds timeout,
                 std::function<std::optional<WaitResult>()> ready, std::function<void(WaitResult)> done);
  void OnBackendChanged();
  void FinishWaiter(uint64_t id, WaitResult result);
  std::optional<WaitResult> TokenState(const TxidToken& token) const;

  void Debug(const http::Request& request, std::string_view decision);

  uv_loop_t* loop_;
  ProxyBackend& backend_;
  ProxyOptions options_;
  std::unique_ptr<http::Server> server_;
  UpstreamPool pool_;
  std::map<uint64_t, Waiter> waiters_;
  std::set<Tunnel*> tunnels_;
  std::function<void()> tunnel_closed_;  // while closing: one tunnel finished
  uint64_t next_waiter_ = 1;
  ProxyStats stats_;
  bool closing_ = false;
};

}  // namespace litefs::proxy
