// UpstreamPool: keep-alive connections to proxy targets ("host:port"), so a
// request usually reuses an idle connection instead of dialling.
//
// Acquire() hands out an idle connection to the target or dials a new one.
// A refused dial (the app not listening yet, or restarting) is retried every
// 100 ms until `connect_retry` has passed; other dial errors fail at once.
// Release() returns a connection after its exchange: kept when reusable,
// closed otherwise. Idle connections are closed after `idle_timeout`, or
// the next time the pool looks at them (at most a second) after the target
// closed them. Loop thread only.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ltx/status.h"
#include "proxy/upstream_connection.h"

namespace litefs::proxy {

struct UpstreamPoolOptions {
  std::chrono::milliseconds connect_retry{5'000};
  std::chrono::milliseconds idle_timeout{90'000};
  size_t max_idle_per_target = 64;
};

class UpstreamPool {
 public:
  // `reused` tells whether the connection served an earlier exchange (a
  // failure before any response byte may then be retried once).
  using AcquireCallback = std::function<void(Result<UpstreamConnection*> conn, bool reused)>;

  UpstreamPool(uv_loop_t* loop, UpstreamPoolOptions options);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // Returns a handle that cancels the pending dial (the callback then never
  // runs). `fresh`: dial a new connection even when an idle one exists.
  uint64_t Acquire(const std::string& target, AcquireCallback done, bool fresh = false);
  void Cancel(uint64_t id);
  void Release(const std::string& target, UpstreamConnection* conn);

  // Closes every idle connection and cancels pending dials; `done` runs once
  // the pool's own handles are closed.
  void Close(std::function<void()> done);

  size_t idle_count() const;

 private:
  struct Dial;
  struct Resolving;
  struct Idle {
    UpstreamConnection* conn;
    uint64_t since_ms;
  };

  void StartDial(Dial* dial);
  void OnResolved(Dial* dial, int status, const sockaddr* addr);
  void OnDialDone(Dial* dial, int status);
  void FinishDial(Dial* dial, Result<UpstreamConnection*> result);
  void Sweep();

  uv_loop_t* loop_;
  UpstreamPoolOptions options_;
  uv_timer_t* sweep_timer_;
  bool closed_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Dial>> dials_;
  std::map<std::string, std::vector<Idle>, std::less<>> idle_;
};

}  // namespace litefs::proxy
