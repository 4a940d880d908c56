// Request routing of the reverse proxy (see reverse_proxy.h).
#include "proxy/reverse_proxy.h"

#include <utility>

#include "proxy/forwarder.h"
#include "proxy/http/tcp_handoff.h"
#include "proxy/path_pattern.h"

namespace litefs::proxy {
namespace {

constexpr std::string_view kHealthPath = "/litefs/health";
// Marks a write a replica forwarded, so that a node which is not the primary
// either refuses it rather than bouncing it on (no forwarding loops).
constexpr std::string_view kForwardedByHeader = "Litefs-Forwarded-By";

void RespondText(http::Exchange& ex, int status, std::string body) {
  ex.Respond(status, {{"Content-Type", "text/plain; charset=utf-8"}}, std::move(body));
}

bool IsReadMethod(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS";
}

}  // namespace

struct ReverseProxy::Waiter {
  ReverseProxy* proxy = nullptr;
  uint64_t id = 0;
  std::shared_ptr<http::Exchange> ex;
  std::function<std::optional<WaitResult>()> ready;
  std::function<void(WaitResult)> done;
  uv_timer_t* timer = nullptr;
};

ReverseProxy::ReverseProxy(uv_loop_t* loop, ProxyBackend& backend, ProxyOptions options)
    : loop_(loop),
      backend_(backend),
      options_(std::move(options)),
      pool_(loop, UpstreamPoolOptions{options_.target_retry}) {
  server_ = std::make_unique<http::Server>(loop_, options_.server,
                                           [this](std::shared_ptr<http::Exchange> ex) { Handle(std::move(ex)); });
  backend_.SetChangeListener([this] { OnBackendChanged(); });
}

ReverseProxy::~ReverseProxy() { backend_.SetChangeListener(nullptr); }

Status ReverseProxy::Listen(std::string_view addr) { return server_->Listen(addr); }

void ReverseProxy::Close(std::function<void()> done) {
  closing_ = true;
  while (!waiters_.empty()) FinishWaiter(waiters_.begin()->first, WaitResult::kGone);
  // Done once the server, the pool and every tunnel have let go of their handles.
  auto remaining = std::make_shared<size_t>(2 + tunnels_.size());
  auto finish = [remaining, done = std::move(done)] {
    if (--*remaining == 0 && done) done();
  };
  tunnel_closed_ = finish;
  std::vector<Tunnel*> tunnels(tunnels_.begin(), tunnels_.end());
  for (Tunnel* t : tunnels) CloseTunnel(t);
  server_->Close(finish);
  pool_.Close(finish);
}

void ReverseProxy::AddTunnel(uv_tcp_t* client, std::string client_early, uv_tcp_t* target,
                             std::string target_early) {
  if (closing_) {  // cannot happen (Close ends every takeover first), but never leak
    http::CloseAndDeleteTcp(client);
    http::CloseAndDeleteTcp(target);
    return;
  }
  ++stats_.tunnels;
  auto tunnel = std::make_shared<Tunnel*>(nullptr);
  *tunnel = StartTunnel(client, std::move(client_early), target, std::move(target_early), [this, tunnel] {
    tunnels_.erase(*tunnel);
    if (closing_ && tunnel_closed_) tunnel_closed_();
  });
  tunnels_.insert(*tunnel);
}

void ReverseProxy::Debug(const http::Request& request, std::string_view decision) {
  if (!options_.debug || !options_.log_debug) return;
  options_.log_debug(request.method + " " + request.target + ": " + std::string(decision));
}

void ReverseProxy::Handle(std::shared_ptr<http::Exchange> ex) {
  ++stats_.requests;
  const http::Request& req = ex->request();
  std::string_view path = req.path();
  if (AnyPathMatches(options_.passthrough, path)) {
    Debug(req, "passthrough");
    return Forward(*this, std::move(ex), ForwardPlan{options_.target, {}, false, 0, false});
  }
  if (req.method == "GET" && path == kHealthPath) return HandleHealth(*ex);
  bool always_forward = (req.method == "GET" || req.method == "HEAD") &&
                        AnyPathMatches(options_.always_forward, path);
  if (IsReadMethod(req.method) && !always_forward) return HandleRead(std::move(ex));
  HandleWrite(std::move(ex));
}

void ReverseProxy::HandleHealth(http::Exchange& ex) {
  if (options_.max_lag.count() > 0 && backend_.lag() > options_.max_lag) {
    return RespondText(ex, 503, "Replication lag exceeded\n");
  }
  RespondText(ex, 200, "OK\n");
}

// --- reads ---

TxidToken ReverseProxy::RequestToken(const http::Request& request) const {
  TxidToken token;
  if (const std::string* header = request.Header("Litefs-Txid")) token = ParseTxidToken(*header);
  if (token.empty()) {
    if (const std::string* cookies = request.Header("Cookie")) {
      if (auto full = FindCookie(*cookies, "__litefs")) token = ParseTxidToken(*full);
      if (token.empty()) {
        // LiteFS's cookie: exactly 16 hex digits, 0 meaning none.
        if (auto plain = FindCookie(*cookies, "__txid")) {
          if (auto txid = ParseHex16(*plain); txid && *txid != 0) token.entries.push_back({"", *txid});
        }
      }
    }
  }
  for (TxidToken::Entry& e : token.entries) {
    if (e.db.empty()) e.db = options_.db;
  }
  return token;
}

// kReady when every position is here, kStale when some never will be (see
// reverse_proxy.h), nullopt while waiting makes sense.
std::optional<ReverseProxy::WaitResult> ReverseProxy::TokenState(const TxidToken& token) const {
  bool stale = false;
  for (const TxidToken::Entry& e : token.entries) {
    std::optional<uint64_t> have = backend_.txid(e.db);
    if (!have) continue;  // no such database here: nothing to wait for (LiteFS)
    if (*have >= e.txid) continue;
    if (backend_.is_primary()) {
      stale = true;
      continue;
    }
    std::optional<PrimaryRoute> primary = backend_.primary();
    if (primary && token.issuer && primary->node_id != 0 && *token.issuer != primary->node_id &&
        backend_.synced_with_primary()) {
      stale = true;
      continue;
    }
    return std::nullopt;
  }
  return stale ? WaitResult::kStale : WaitResult::kReady;
}

void ReverseProxy::HandleRead(std::shared_ptr<http::Exchange> ex) {
  TxidToken token = RequestToken(ex->request());
  auto forward = [this](std::shared_ptr<http::Exchange> e, bool stale) {
    Forward(*this, std::move(e), ForwardPlan{options_.target, {}, false, 0, stale});
  };
  if (token.empty()) {
    Debug(ex->request(), "read");
    return forward(std::move(ex), false);
  }
  std::optional<WaitResult> now = TokenState(token);
  if (now) {
    if (*now == WaitResult::kStale) ++stats_.stale_tokens;
    Debug(ex->request(), *now == WaitResult::kStale ? "read, stale token" : "read, caught up");
    return forward(std::move(ex), *now == WaitResult::kStale);
  }
  ++stats_.reads_waited;
  Debug(ex->request(), "read, waiting for position");
  auto weak = std::weak_ptr<http::Exchange>(ex);
  WaitUntil(ex, options_.txid_wait_timeout, [this, token] { return TokenState(token); },
            [this, weak, forward](WaitResult result) {
              auto e = weak.lock();
              if (!e || result == WaitResult::kGone) return;
              if (result == WaitResult::kTimeout) {
                ++stats_.read_timeouts;
                return RespondText(*e, 504, "Proxy timeout\n");
              }
              if (result == WaitResult::kStale) ++stats_.stale_tokens;
              forward(std::move(e), result == WaitResult::kStale);
            });
}

// --- writes ---

void ReverseProxy::HandleWrite(std::shared_ptr<http::Exchange> ex) { RouteWrite(std::move(ex), false); }

void ReverseProxy::RouteWrite(std::shared_ptr<http::Exchange> ex, bool waited) {
  const http::Request& req = ex->request();
  if (backend_.is_primary()) {
    Debug(req, "write on the primary");
    bool token = req.method != "GET" && req.method != "HEAD";
    return Forward(*this, std::move(ex), ForwardPlan{options_.target, {}, token, backend_.change_seq(), false});
  }
  std::optional<PrimaryRoute> primary = backend_.primary();
  if (primary) {
    if (options_.write_mode == WriteMode::kFlyReplay) {
      Debug(req, "write, fly-replay to " + primary->hostname);
      return ex->Respond(200, {{"fly-replay", "instance=" + primary->hostname}}, "");
    }
    if (req.Header(kForwardedByHeader) != nullptr) {
      // Another node took us for the primary: the role moved meanwhile.
      return RespondText(*ex, 503, "Proxy error: this node is not the primary (forwarded write refused)\n");
    }
    if (primary->proxy_target.empty()) {
      return RespondText(*ex, 503, "Proxy error: the primary's proxy address is unknown\n");
    }
    ++stats_.writes_forwarded;
    Debug(req, "write, forwarded to the primary at " + primary->proxy_target);
    ForwardPlan plan{primary->proxy_target, {{std::string(kForwardedByHeader), FormatHex16(backend_.node_id())}},
                     false, 0, false};
    return Forward(*this, std::move(ex), std::move(plan));
  }
  if (waited) return RespondText(*ex, 503, "Proxy error: no primary available\n");
  Debug(req, "write, waiting for a primary");
  auto weak = std::weak_ptr<http::Exchange>(ex);
  WaitUntil(ex, options_.primary_redirect_timeout,
            [this]() -> std::optional<WaitResult> {
              if (backend_.is_primary() || backend_.primary()) return WaitResult::kReady;
              return std::nullopt;
            },
            [this, weak](WaitResult result) {
              auto e = weak.lock();
              if (!e || result == WaitResult::kGone) return;
              RouteWrite(std::move(e), true);
            });
}

// --- waiting ---

void ReverseProxy::WaitUntil(std::shared_ptr<http::Exchange> ex, std::chrono::milliseconds timeout,
                             std::function<std::optional<WaitResult>()> ready,
                             std::function<void(WaitResult)> done) {
  uint64_t id = next_waiter_++;
  Waiter& w = waiters_[id];
  w.proxy = this;
  w.id = id;
  w.ex = ex;
  w.ready = std::move(ready);
  w.done = std::move(done);
  w.timer = new uv_timer_t;
  uv_timer_init(loop_, w.timer);
  w.timer->data = &w;  // map nodes stay put until erased
  uv_timer_start(w.timer, [](uv_timer_t* t) {
    auto* waiter = static_cast<Waiter*>(t->data);
    waiter->proxy->FinishWaiter(waiter->id, WaitResult::kTimeout);
  }, uint64_t(std::max<int64_t>(0, timeout.count())), 0);
  ex->OnClose([this, id] {
    if (!closing_) FinishWaiter(id, WaitResult::kGone);
  });
}

void ReverseProxy::FinishWaiter(uint64_t id, WaitResult result) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;
  Waiter waiter = std::move(it->second);
  waiters_.erase(it);
  uv_close(reinterpret_cast<uv_handle_t*>(waiter.timer),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  if (result != WaitResult::kGone) waiter.ex->OnClose(nullptr);
  if (waiter.done) waiter.done(result);
}

void ReverseProxy::OnBackendChanged() {
  // Finishing one waiter may finish or add others: collect ids first.
  std::vector<std::pair<uint64_t, WaitResult>> ready;
  for (auto& [id, waiter] : waiters_) {
    if (auto r = waiter.ready()) ready.emplace_back(id, *r);
  }
  for (auto& [id, result] : ready) FinishWaiter(id, result);
}

}  // namespace litefs::proxy
