// Listening, accepting, connection bookkeeping, deferred work and shutdown
// (see server.h).
#include "proxy/http/server.h"

#include <algorithm>
#include <cassert>
#include <string>
#include <utility>

#include "proxy/http/connection.h"
#include "proxy/http/listen_address.h"

namespace litefs::http {
namespace {

constexpr int kBacklog = 511;

void DeleteTcp(uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); }

}  // namespace

Server::Server(uv_loop_t* loop, Options options, Handler handler)
    : loop_(loop), options_(std::move(options)), handler_(std::move(handler)) {}

Server::~Server() {
  // A Server that listened must be closed first (see server.h).
  assert(!started_ || closed_);
  assert(connections_.empty());
}

Status Server::Listen(std::string_view addr) {
  const std::string what = "listen " + std::string(addr);
  if (started_ || closing_) return Status::Error(what + ": server already listening or closed");
  Result<HostPort> hp = ParseHostPort(addr);
  if (!hp.ok()) return hp.status().Context(what);
  Result<std::vector<sockaddr_storage>> candidates = ResolveListenAddress(*hp);
  if (!candidates.ok()) return candidates.status().Context(what);

  int rc = 0;
  for (const sockaddr_storage& ss : *candidates) {
    auto* h = new uv_tcp_t;
    uv_tcp_init(loop_, h);
    h->data = this;
    rc = uv_tcp_bind(h, reinterpret_cast<const sockaddr*>(&ss), 0);
    // libuv reports EADDRINUSE from bind only at listen time.
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(h), kBacklog, &Server::OnConnection);
    if (rc == 0) {
      listener_ = h;
      break;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(h), &DeleteTcp);
    // Fall back to the next candidate only when this address family is unusable.
    if (rc != UV_EAFNOSUPPORT && rc != UV_EADDRNOTAVAIL) break;
  }
  if (listener_ == nullptr) return Status::Error(what + ": " + uv_strerror(rc));

  sockaddr_storage bound;
  int len = sizeof(bound);
  if (uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
    port_ = bound.ss_family == AF_INET6
                ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  started_ = true;
  own_handles_open_ = 3;
  uv_check_init(loop_, &check_);
  uv_idle_init(loop_, &idle_);
  check_.data = this;
  idle_.data = this;
  uv_check_start(&check_, &Server::OnCheck);
  uv_unref(reinterpret_cast<uv_handle_t*>(&check_));  // never keeps the loop alive
  return Status();
}

void Server::OnConnection(uv_stream_t* listener, int status) {
  if (status < 0) return;  // e.g. EMFILE: libuv retries on the next event
  static_cast<Server*>(listener->data)->Accept();
}

void Server::Accept() {
  auto* listener = reinterpret_cast<uv_stream_t*>(listener_);
  if (closing_ || connections_.size() >= options_.max_connections) {
    auto* t = new uv_tcp_t;
    uv_tcp_init(loop_, t);
    t->data = this;
    (void)uv_accept(listener, reinterpret_cast<uv_stream_t*>(t));
    ++rejects_open_;
    ++rejected_;
    uv_close(reinterpret_cast<uv_handle_t*>(t), &Server::OnRejectClosed);
    return;
  }
  auto* c = new Connection(this);
  c->index_ = connections_.size();
  connections_.push_back(c);
  ++accepted_;
  c->Start(listener);
}

void Server::OnRejectClosed(uv_handle_t* handle) {
  Server* s = static_cast<Server*>(handle->data);
  delete reinterpret_cast<uv_tcp_t*>(handle);
  --s->rejects_open_;
  s->MaybeFinishClose();
}

void Server::Schedule(Connection* c) {
  if (c->scheduled_ || closed_) return;
  c->scheduled_ = true;
  scheduled_.push_back(c);
  // An active idle handle keeps the loop from blocking in poll before the work
  // runs, whichever phase scheduled it; the check handle runs it right after
  // the I/O callbacks of the same iteration.
  if (scheduled_.size() == 1 && !closing_) uv_idle_start(&idle_, &Server::OnIdle);
}

void Server::OnCheck(uv_check_t* handle) { static_cast<Server*>(handle->data)->RunScheduled(); }
void Server::OnIdle(uv_idle_t* handle) { static_cast<Server*>(handle->data)->RunScheduled(); }

void Server::RunScheduled() {
  while (!scheduled_.empty()) {
    running_.swap(scheduled_);
    for (Connection* c : running_) {
      c->scheduled_ = false;
      c->RunScheduled();
    }
    running_.clear();
  }
  if (!closing_) uv_idle_stop(&idle_);
}

void Server::OnConnectionClosed(Connection* c) {
  if (c->scheduled_) std::erase(scheduled_, c);
  size_t i = c->index_;
  connections_[i] = connections_.back();
  connections_[i]->index_ = i;
  connections_.pop_back();
  delete c;
  MaybeFinishClose();
}

void Server::Close(std::function<void()> done) {
  close_done_.push_back(std::move(done));
  if (closing_) {
    MaybeFinishClose();
    return;
  }
  closing_ = true;
  if (started_) {
    uv_close(reinterpret_cast<uv_handle_t*>(listener_), [](uv_handle_t* h) {
      Server* s = static_cast<Server*>(h->data);
      delete reinterpret_cast<uv_tcp_t*>(h);
      s->listener_ = nullptr;
      --s->own_handles_open_;
      s->MaybeFinishClose();
    });
    uv_close(reinterpret_cast<uv_handle_t*>(&check_), &Server::OnOwnHandleClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&idle_), &Server::OnOwnHandleClosed);
  }
  port_ = 0;
  std::vector<Connection*> snapshot = connections_;
  for (Connection* c : snapshot) c->HardClose();
  MaybeFinishClose();
}

void Server::OnOwnHandleClosed(uv_handle_t* handle) {
  Server* s = static_cast<Server*>(handle->data);
  --s->own_handles_open_;
  s->MaybeFinishClose();
}

void Server::MaybeFinishClose() {
  if (!closing_ || own_handles_open_ > 0 || rejects_open_ > 0 || !connections_.empty()) return;
  closed_ = true;
  std::vector<std::function<void()>> done = std::move(close_done_);
  close_done_.clear();
  // Last thing: a callback may destroy this Server.
  for (auto& fn : done) {
    if (fn) fn();
  }
}

ServerStats Server::stats() const {
  ServerStats s;
  s.connections = connections_.size();
  s.accepted = accepted_;
  s.rejected = rejected_;
  s.queued_output_bytes = counters_.queued_bytes;
  s.peak_queued_output_bytes = counters_.peak_queued_bytes;
  return s;
}

}  // namespace litefs::http
