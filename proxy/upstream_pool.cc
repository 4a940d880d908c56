// Keep-alive pool of target connections (see upstream_pool.h).
#include "proxy/upstream_pool.h"

#include <cstring>
#include <utility>

#include "proxy/http/listen_address.h"

namespace litefs::proxy {
namespace {

constexpr uint64_t kRetryEveryMs = 100;

void CloseTimer(uv_timer_t* t) {
  uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

}  // namespace

// Context of a pending uv_getaddrinfo: `pool` is cleared when the dial is
// cancelled, so a late callback touches nothing (the pool may be gone).
struct UpstreamPool::Resolving {
  UpstreamPool* pool;
  uint64_t dial_id;
};

struct UpstreamPool::Dial {
  UpstreamPool* pool = nullptr;
  uint64_t id = 0;
  std::string target;
  http::HostPort hp;
  AcquireCallback done;
  uint64_t deadline_ms = 0;
  uv_timer_t* retry_timer = nullptr;
  uv_getaddrinfo_t* resolving = nullptr;  // owned by libuv until its callback
  Resolving* resolving_ctx = nullptr;
  UpstreamConnection* conn = nullptr;
  sockaddr_storage addr{};
  bool resolved = false;
};

UpstreamPool::UpstreamPool(uv_loop_t* loop, UpstreamPoolOptions options)
    : loop_(loop), options_(options), sweep_timer_(new uv_timer_t) {
  uv_timer_init(loop_, sweep_timer_);
  sweep_timer_->data = this;
  uv_timer_start(sweep_timer_, [](uv_timer_t* t) { static_cast<UpstreamPool*>(t->data)->Sweep(); }, 1000, 1000);
  uv_unref(reinterpret_cast<uv_handle_t*>(sweep_timer_));
}

UpstreamPool::~UpstreamPool() {
  if (!closed_) Close(nullptr);
}

size_t UpstreamPool::idle_count() const {
  size_t n = 0;
  for (const auto& [target, list] : idle_) n += list.size();
  return n;
}

uint64_t UpstreamPool::Acquire(const std::string& target, AcquireCallback done, bool fresh) {
  uint64_t id = next_id_++;
  auto it = fresh ? idle_.end() : idle_.find(target);
  if (it != idle_.end()) {
    // Newest first: the most recently used connection is the least likely to
    // have been closed by the target's idle timeout.
    auto& list = it->second;
    while (!list.empty()) {
      UpstreamConnection* conn = list.back().conn;
      list.pop_back();
      if (conn->broken()) {
        conn->Close();
        continue;
      }
      done(conn, true);
      return id;
    }
  }
  auto dial = std::make_unique<Dial>();
  dial->pool = this;
  dial->id = id;
  dial->target = target;
  dial->done = std::move(done);
  dial->deadline_ms = uv_now(loop_) + uint64_t(options_.connect_retry.count());
  Result<http::HostPort> hp = http::ParseHostPort(target);
  Dial* d = dial.get();
  dials_[id] = std::move(dial);
  if (!hp.ok() || hp->host.empty() || hp->port == 0) {
    FinishDial(d, Status::Error("bad target address \"" + target + "\" (want host:port)"));
    return id;
  }
  d->hp = *hp;
  StartDial(d);
  return id;
}

void UpstreamPool::StartDial(Dial* dial) {
  if (!dial->resolved) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&dial->addr);
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&dial->addr);
    if (uv_ip4_addr(dial->hp.host.c_str(), dial->hp.port, sin) == 0 ||
        uv_ip6_addr(dial->hp.host.c_str(), dial->hp.port, sin6) == 0) {
      dial->resolved = true;
    } else {
      auto* req = new uv_getaddrinfo_t;
      dial->resolving = req;
      dial->resolving_ctx = new Resolving{this, dial->id};
      req->data = dial->resolving_ctx;
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      std::string port = std::to_string(dial->hp.port);
      int rc = uv_getaddrinfo(loop_, req, [](uv_getaddrinfo_t* r, int status, addrinfo* res) {
        auto* ctx = static_cast<Resolving*>(r->data);
        UpstreamPool* pool = ctx->pool;
        uint64_t id = ctx->dial_id;
        delete ctx;
        delete r;
        if (pool != nullptr) {
          auto it = pool->dials_.find(id);
          if (it != pool->dials_.end()) {
            it->second->resolving = nullptr;
            it->second->resolving_ctx = nullptr;
            pool->OnResolved(it->second.get(), status, status == 0 && res ? res->ai_addr : nullptr);
          }
        }
        if (res) uv_freeaddrinfo(res);
      }, dial->hp.host.c_str(), port.c_str(), &hints);
      if (rc != 0) {
        delete dial->resolving_ctx;
        delete req;
        dial->resolving = nullptr;
        dial->resolving_ctx = nullptr;
        FinishDial(dial, Status::Error("resolve " + dial->hp.host + ": " + uv_strerror(rc)));
      }
      return;
    }
  }
  dial->conn = new UpstreamConnection(loop_);
  uint64_t id = dial->id;
  int rc = dial->conn->Connect(reinterpret_cast<const sockaddr*>(&dial->addr), [this, id](int status) {
    auto it = dials_.find(id);
    if (it != dials_.end()) OnDialDone(it->second.get(), status);
  });
  if (rc != 0) OnDialDone(dial, rc);
}

void UpstreamPool::OnResolved(Dial* dial, int status, const sockaddr* addr) {
  if (status != 0 || addr == nullptr) {
    FinishDial(dial, Status::Error("resolve " + dial->hp.host + ": " + uv_strerror(status)));
    return;
  }
  std::memcpy(&dial->addr, addr, addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
  dial->resolved = true;
  StartDial(dial);
}

void UpstreamPool::OnDialDone(Dial* dial, int status) {
  if (status == 0) {
    UpstreamConnection* conn = dial->conn;
    dial->conn = nullptr;
    FinishDial(dial, conn);
    return;
  }
  dial->conn->Close();
  dial->conn = nullptr;
  if (status == UV_ECONNREFUSED && uv_now(loop_) + kRetryEveryMs <= dial->deadline_ms && !closed_) {
    // The target is not listening (yet): dial again shortly.
    dial->retry_timer = new uv_timer_t;
    uv_timer_init(loop_, dial->retry_timer);
    // A dial's timer is closed before the dial goes, so it may point at it.
    dial->retry_timer->data = dial;
    uv_timer_start(dial->retry_timer, [](uv_timer_t* t) {
      auto* d = static_cast<Dial*>(t->data);
      d->retry_timer = nullptr;
      CloseTimer(t);
      d->pool->StartDial(d);
    }, kRetryEveryMs, 0);
    return;
  }
  FinishDial(dial, Status::Error("dial tcp " + dial->target + ": " + uv_strerror(status)));
}

void UpstreamPool::FinishDial(Dial* dial, Result<UpstreamConnection*> result) {
  auto it = dials_.find(dial->id);
  if (it == dials_.end()) return;
  std::unique_ptr<Dial> owned = std::move(it->second);
  dials_.erase(it);
  if (owned->retry_timer) CloseTimer(owned->retry_timer);
  AcquireCallback done = std::move(owned->done);
  if (done) done(std::move(result), false);
}

void UpstreamPool::Cancel(uint64_t id) {
  auto it = dials_.find(id);
  if (it == dials_.end()) return;
  Dial* dial = it->second.get();
  if (dial->retry_timer) {
    CloseTimer(dial->retry_timer);
    dial->retry_timer = nullptr;
  }
  if (dial->conn) dial->conn->Close();  // its connect callback then reports ECANCELED
  if (dial->resolving) {
    dial->resolving_ctx->pool = nullptr;  // the callback still runs, and frees only itself
    uv_cancel(reinterpret_cast<uv_req_t*>(dial->resolving));
  }
  dials_.erase(it);
}

void UpstreamPool::Release(const std::string& target, UpstreamConnection* conn) {
  if (closed_ || !conn->reusable()) {
    conn->Close();
    return;
  }
  auto& list = idle_[target];
  if (list.size() >= options_.max_idle_per_target) {
    conn->Close();
    return;
  }
  conn->WatchIdle();
  list.push_back({conn, uv_now(loop_)});
}

void UpstreamPool::Sweep() {
  uint64_t now = uv_now(loop_);
  uint64_t limit = uint64_t(options_.idle_timeout.count());
  for (auto& [target, list] : idle_) {
    size_t kept = 0;
    for (Idle& idle : list) {
      if (idle.conn->broken() || now - idle.since_ms >= limit) {
        idle.conn->Close();
      } else {
        list[kept++] = idle;
      }
    }
    list.resize(kept);
  }
}

void UpstreamPool::Close(std::function<void()> done) {
  closed_ = true;
  std::vector<uint64_t> ids;
  for (auto& [id, dial] : dials_) ids.push_back(id);
  for (uint64_t id : ids) Cancel(id);
  for (auto& [target, list] : idle_) {
    for (Idle& idle : list) idle.conn->Close();
  }
  idle_.clear();
  if (sweep_timer_) {
    auto* holder = new std::function<void()>(std::move(done));
    sweep_timer_->data = holder;
    uv_close(reinterpret_cast<uv_handle_t*>(sweep_timer_), [](uv_handle_t* h) {
      auto* fn = static_cast<std::function<void()>*>(h->data);
      delete reinterpret_cast<uv_timer_t*>(h);
      if (*fn) (*fn)();
      delete fn;
    });
    sweep_timer_ = nullptr;
  } else if (done) {
    done();
  }
}

}  // namespace litefs::proxy
