// Tests for proxy/reverse_proxy: the decisions that need a node in a given
// state (waiting on several databases, stale tokens after a failover, token
// issuing, fly-replay), with a fake backend and a real target server.
#include <doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <map>

#include "http_test_support.h"
#include "proxy/reverse_proxy.h"

using namespace litefs;
using namespace litefs::http::test;
using litefs::proxy::PrimaryRoute;

namespace {

// Node state the test sets on the proxy's loop thread.
class FakeBackend : public proxy::ProxyBackend {
 public:
  uint64_t node_id() const override { return 0x1111; }
  bool is_primary() const override { return primary_role; }
  std::optional<PrimaryRoute> primary() const override { return route; }
  bool synced_with_primary() const override { return synced; }
  std::optional<uint64_t> txid(std::string_view db) const override {
    auto it = txids.find(std::string(db));
    if (it == txids.end()) return std::nullopt;
    return it->second;
  }
  uint64_t change_seq() const override { return seq; }
  std::vector<std::pair<std::string, uint64_t>> ChangedSince(uint64_t since) const override {
    std::vector<std::pair<std::string, uint64_t>> out;
    for (auto& [db, at] : changed_at) {
      if (at > since) out.emplace_back(db, txids.at(db));
    }
    return out;
  }
  std::chrono::milliseconds lag() const override { return lag_ms; }
  void SetChangeListener(std::function<void()> fn) override { listener = std::move(fn); }
  void WhenCommitsRecorded(std::function<void()> fn) override {
    if (!defer_recording) return fn();
    recorded_waiters.push_back(std::move(fn));
  }

  void Set(const std::string& db, uint64_t txid) {
    txids[db] = txid;
    changed_at[db] = ++seq;
    if (listener) listener();
  }
  void Changed() {
    if (listener) listener();
  }

  bool primary_role = false;
  std::optional<PrimaryRoute> route;
  bool synced = true;
  std::map<std::string, uint64_t> txids;
  std::map<std::string, uint64_t> changed_at;
  uint64_t seq = 0;
  std::chrono::milliseconds lag_ms{0};
  std::function<void()> listener;
  bool defer_recording = false;  // WhenCommitsRecorded waits for the test
  std::vector<std::function<void()>> recorded_waiters;
};

// The app: answers every request with its method and path.
TestServer MakeApp() {
  return TestServer([](std::shared_ptr<http::Exchange> ex) {
    const http::Request& r = ex->request();
    ex->Respond(200, {{"X-Seen-Forwarded-For", r.Header("X-Forwarded-For") ? *r.Header("X-Forwarded-For") : ""}},
                r.method + " " + r.target);
  });
}

struct ProxyUnderTest {
  explicit ProxyUnderTest(int app_port, proxy::WriteMode mode = proxy::WriteMode::kForward) {
    proxy::ProxyOptions o;
    o.target = "127.0.0.1:" + std::to_string(app_port);
    o.db = "app.db";
    o.txid_wait_timeout = std::chrono::milliseconds(3000);
    o.primary_redirect_timeout = std::chrono::milliseconds(300);
    o.max_lag = std::chrono::milliseconds(1000);
    o.target_retry = std::chrono::milliseconds(300);
    o.write_mode = mode;
    REQUIRE(loop.Run([&] {
      proxy = std::make_unique<proxy::ReverseProxy>(loop.loop(), backend, o);
      REQUIRE(proxy->Listen("127.0.0.1:0").ok());
      port = proxy->port();
    }));
  }
  ~ProxyUnderTest() {
    Event closed;
    REQUIRE(loop.Run([&] { proxy->Close([&] { closed.Signal(); }); }));
    CHECK(closed.WaitFor(1));
    CHECK(loop.Run([&] { proxy.reset(); }));
  }
  proxy::ProxyStats Stats() {
    proxy::ProxyStats s;
    CHECK(loop.Run([&] { s = proxy->stats(); }));
    return s;
  }
  void Do(std::function<void()> fn) { REQUIRE(loop.Run(std::move(fn))); }

  FakeBackend backend;
  LoopThread loop;
  std::unique_ptr<proxy::ReverseProxy> proxy;
  int port = 0;
};

// Polls `cond` until it holds, for at most five seconds.
bool WaitUntil(const std::function<bool()>& cond) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cond();
}

Response Get(int port, const std::string& path, const std::string& extra_headers = "") {
  Client c(port);
  c.Send("GET " + path + " HTTP/1.1\r\nHost: t\r\n" + extra_headers + "\r\n");
  return c.ReadResponse();
}

}  // namespace

TEST_CASE("reverse proxy: a read waits for every database of its token, woken by changes") {
  TestServer app = MakeApp();
  ProxyUnderTest p(app.port());
  p.Do([&] {
    p.backend.route = PrimaryRoute{"primary", "127.0.0.1:1", 0x2222};
    p.backend.txids = {{"app.db", 5}, {"other.db", 1}};
  });
  Client c(p.port);
  c.Send("GET /x HTTP/1.1\r\nHost: t\r\nLitefs-Txid: app.db=0000000000000006&other.db=0000000000000002\r\n\r\n");
  // Parked: the proxy counted a waiting read and did not answer.
  REQUIRE(WaitUntil([&] { return p.Stats().reads_waited == 1; }));
  p.Do([&] { p.backend.Set("app.db", 6); });
  CHECK(c.ReadSome(1, std::chrono::milliseconds(100)).empty());  // other.db still behind
  p.Do([&] { p.backend.Set("other.db", 2); });
  Response r = c.ReadResponse();
  CHECK(r.status == 200);
  CHECK(r.body == "GET /x");
  CHECK(r.Header("Litefs-Txid-Stale") == nullptr);
}

TEST_CASE("reverse proxy: stale tokens after a failover do not wait") {
  TestServer app = MakeApp();
  ProxyUnderTest p(app.port());
  p.Do([&] {
    p.backend.route = PrimaryRoute{"new-primary", "127.0.0.1:1", 0x2222};
    p.backend.txids = {{"app.db", 10}};
    p.backend.synced = true;
  });
  // Issued by another primary (0x9999), not here, replica synced: stale.
  Response r = Get(p.port, "/a", "Litefs-Txid: app.db=0000000000000014&@0000000000009999\r\n");
  CHECK(r.status == 200);
  REQUIRE(r.Header("Litefs-Txid-Stale") != nullptr);
  CHECK(p.Stats().stale_tokens == 1);
  // Issued by the current primary: a real wait, which times out (504).
  p.Do([&] { p.backend.synced = true; });
  Client c(p.port);
  c.Send("GET /b HTTP/1.1\r\nHost: t\r\nLitefs-Txid: app.db=0000000000000014&@0000000000002222\r\n\r\n");
  REQUIRE(WaitUntil([&] { return p.Stats().reads_waited == 1; }));
  // Not yet synced with a new primary: wait; READY from it turns it stale.
  Client d(p.port);
  p.Do([&] { p.backend.synced = false; });
  d.Send("GET /c HTTP/1.1\r\nHost: t\r\nLitefs-Txid: app.db=0000000000000014&@0000000000007777\r\n\r\n");
  REQUIRE(WaitUntil([&] { return p.Stats().reads_waited == 2; }));
  p.Do([&] {
    p.backend.synced = true;
    p.backend.Changed();
  });
  Response rd = d.ReadResponse();
  CHECK(rd.status == 200);
  CHECK(rd.Header("Litefs-Txid-Stale") != nullptr);
  Response rc = c.ReadResponse(false, std::chrono::milliseconds(6000));
  CHECK(rc.status == 504);
  CHECK(rc.body == "Proxy timeout\n");
}

TEST_CASE("reverse proxy: a write on the primary returns the token of what it changed") {
  // The app "commits" to users.db while it handles the request.
  std::atomic<ProxyUnderTest*> proxy_under_test{nullptr};
  TestServer app([&](std::shared_ptr<http::Exchange> ex) {
    ProxyUnderTest* p = proxy_under_test.load();
    CHECK(p->loop.Run([p] { p->backend.Set("users.db", 41); }));
    ex->Respond(200, {}, "written");
  });
  ProxyUnderTest p(app.port());
  proxy_under_test = &p;
  p.Do([&] {
    p.backend.primary_role = true;
    p.backend.Set("app.db", 7);
    p.backend.Set("unrelated.db", 3);
  });
  Client c(p.port);
  c.Send("POST /w HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
  Response r = c.ReadResponse();
  CHECK(r.status == 200);
  const std::string* token = r.Header("Litefs-Txid");
  REQUIRE(token != nullptr);
  CHECK(*token == "app.db=0000000000000007&users.db=0000000000000029&@0000000000001111");
  CHECK(r.head.find("Set-Cookie: __txid=0000000000000007; Path=/; Expires=") != std::string::npos);
  CHECK(r.head.find("; HttpOnly\r\n") != std::string::npos);
  // GET/HEAD never get a token, even always-forwarded ones (LiteFS).
  Response g = Get(p.port, "/r");
  CHECK(g.Header("Litefs-Txid") == nullptr);
}

TEST_CASE("reverse proxy: a write's response waits until the node recorded the app's commits") {
  // The app's commit is recorded only after it answered (as a WAL commit
  // the sidecar captures just after COMMIT returns): the token must still
  // name it, and the body must arrive whole.
  const std::string body(100000, 'w');
  TestServer app([&](std::shared_ptr<http::Exchange> ex) { ex->Respond(200, {}, body); });
  ProxyUnderTest p(app.port());
  p.Do([&] {
    p.backend.primary_role = true;
    p.backend.defer_recording = true;
    p.backend.Set("app.db", 7);
  });
  Client c(p.port);
  c.Send("POST /w HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
  bool waiting = false;
  for (int i = 0; i < 500 && !waiting; i++) {  // bounded: 5 s
    p.Do([&] { waiting = !p.backend.recorded_waiters.empty(); });
    if (!waiting) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(waiting);
  p.Do([&] {
    p.backend.Set("app.db", 8);  // the app's commit, recorded now
    auto waiters = std::move(p.backend.recorded_waiters);
    for (auto& fn : waiters) fn();
  });
  Response r = c.ReadResponse();
  CHECK(r.status == 200);
  CHECK(r.body == body);
  const std::string* token = r.Header("Litefs-Txid");
  REQUIRE(token != nullptr);
  CHECK(*token == "app.db=0000000000000008&@0000000000001111");
}

TEST_CASE("reverse proxy: fly-replay mode, health, and no primary") {
  TestServer app = MakeApp();
  ProxyUnderTest p(app.port(), proxy::WriteMode::kFlyReplay);
  p.Do([&] { p.backend.route = PrimaryRoute{"machine-7", "", 0x2222}; });
  Client c(p.port);
  c.Send("DELETE /x HTTP/1.1\r\nHost: t\r\n\r\n");
  Response r = c.ReadResponse();
  CHECK(r.status == 200);
  REQUIRE(r.Header("fly-replay") != nullptr);
  CHECK(*r.Header("fly-replay") == "instance=machine-7");
  CHECK(r.body.empty());

  CHECK(Get(p.port, "/litefs/health").status == 200);
  p.Do([&] { p.backend.lag_ms = std::chrono::milliseconds(5000); });
  Response h = Get(p.port, "/litefs/health");
  CHECK(h.status == 503);
  CHECK(h.body == "Replication lag exceeded\n");

  p.Do([&] { p.backend.route.reset(); });
  Client w(p.port);
  w.Send("PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
  Response nw = w.ReadResponse();
  CHECK(nw.status == 503);
  CHECK(nw.body == "Proxy error: no primary available\n");
}

TEST_CASE("reverse proxy: target connections are kept alive and reused") {
  TestServer app = MakeApp();
  ProxyUnderTest p(app.port());
  for (int i = 0; i < 5; ++i) {
    Response r = Get(p.port, "/k" + std::to_string(i));  // a new client connection each time
    CHECK(r.status == 200);
    CHECK(r.body == "GET /k" + std::to_string(i));
    REQUIRE(r.Header("X-Seen-Forwarded-For") != nullptr);
    CHECK(*r.Header("X-Seen-Forwarded-For") == "127.0.0.1");
  }
  CHECK(app.Stats().accepted == 1);
}

TEST_CASE("reverse proxy: a target dying mid-response closes the client; a dead target gives 502") {
  TestServer app([](std::shared_ptr<http::Exchange> ex) {
    ex->StartResponse(200, {{"Content-Length", "100"}});
    CHECK(ex->WriteBody(std::string("partial"), [ex](Status) { ex->Abort(); }).ok());
  });
  ProxyUnderTest p(app.port());
  Client c(p.port);
  c.Send("GET /d HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string got;
  CHECK(c.WaitClosed(&got));
  CHECK(got.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(got.find("partial") != std::string::npos);
  CHECK(p.Stats().upstream_errors == 1);

  CHECK(app.Close());
  Response r = Get(p.port, "/after");  // refused, redialled for target_retry, then 502
  CHECK(r.status == 502);
  CHECK(r.body.rfind("Proxy error: dial tcp 127.0.0.1:", 0) == 0);
}

namespace {

// A one-connection target speaking raw bytes: reads a request head, writes
// `response`, closes. For answers http::Server never gives (body until EOF).
class RawTarget {
 public:
  explicit RawTarget(std::string response) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(fd_, 4) == 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, response = std::move(response)] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        head.append(buf, size_t(n));
      }
      (void)!send(c, response.data(), response.size(), MSG_NOSIGNAL);
      close(c);
    });
  }
  ~RawTarget() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace

TEST_CASE("reverse proxy: a response whose body ends when the target closes arrives whole") {
  RawTarget target("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nuntil the end");
  ProxyUnderTest p(target.port());
  Response r = Get(p.port, "/eof");
  CHECK(r.complete);
  CHECK(r.status == 200);
  CHECK(r.body == "until the end");
  CHECK(p.Stats().upstream_errors == 0);
}

TEST_CASE("reverse proxy: closing while a target name resolves leaves nothing behind") {
  for (int i = 0; i < 10; ++i) {
    LoopThread loop;
    FakeBackend backend;
    std::unique_ptr<proxy::ReverseProxy> rp;
    int port = 0;
    proxy::ProxyOptions o;
    o.target = "localhost:1";  // a name: resolved with uv_getaddrinfo on the threadpool
    o.db = "app.db";
    REQUIRE(loop.Run([&] {
      rp = std::make_unique<proxy::ReverseProxy>(loop.loop(), backend, o);
      REQUIRE(rp->Listen("127.0.0.1:0").ok());
      port = rp->port();
    }));
    Client c(port);
    c.Send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    REQUIRE(WaitUntil([&] {
      uint64_t n = 0;
      loop.Run([&] { n = rp->stats().requests; });
      return n == 1;
    }));
    Event closed;
    REQUIRE(loop.Run([&] { rp->Close([&] { closed.Signal(); }); }));
    CHECK(closed.WaitFor(1));
    REQUIRE(loop.Run([&] { rp.reset(); }));  // a resolve finishing now must not touch it
  }
}
