// Tests for sidecar/curl_loop: libcurl transfers driven by a libuv loop,
// against a tiny blocking HTTP/1.1 server running on a thread of this test.
// Every wait is bounded; the client side waits on loop events, the server
// thread on condition variables.
#include <arpa/inet.h>
#include <doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sidecar/curl_loop.h"

using litefs::Status;
using litefs::http::ClientRequest;
using litefs::http::CurlLoop;
using litefs::http::DataAction;
using litefs::http::HeaderList;
using namespace std::chrono_literals;

namespace {

// A one-shot event shared between the server thread and the test.
class Flag {
 public:
  void Set() {
    std::lock_guard<std::mutex> lock(mu_);
    set_ = true;
    cv_.notify_all();
  }
  bool IsSet() {
    std::lock_guard<std::mutex> lock(mu_);
    return set_;
  }
  bool WaitFor(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return set_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

struct ServerRequest {
  std::string method, target;
  HeaderList headers;
  std::string body;

  std::optional<std::string> Header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
    }
    return std::nullopt;
  }
};

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(size_t(n));
  }
  return true;
}

std::string Chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  return size + std::string(data) + "\r\n";
}

// Reads one request (head + Content-Length body); nullopt on EOF/timeout.
std::optional<ServerRequest> ReadRequest(int fd) {
  std::string buf;
  size_t head_end;
  char tmp[65536];
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n <= 0) return std::nullopt;
    buf.append(tmp, size_t(n));
  }
  ServerRequest req;
  std::string head = buf.substr(0, head_end);
  size_t line_end = head.find("\r\n");
  std::string request_line = head.substr(0, line_end);
  size_t sp1 = request_line.find(' ');
  size_t sp2 = request_line.find(' ', sp1 + 1);
  req.method = request_line.substr(0, sp1);
  req.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) end = head.size();
    std::string line = head.substr(pos, end - pos);
    size_t colon = line.find(':');
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    req.headers.emplace_back(line.substr(0, colon), value);
    pos = end + 2;
  }
  size_t length = 0;
  if (auto cl = req.Header("Content-Length")) length = std::stoul(*cl);
  req.body = buf.substr(head_end + 4);
  while (req.body.size() < length) {
    const ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n <= 0) return std::nullopt;
    req.body.append(tmp, size_t(n));
  }
  return req;
}

// Waits until the peer closes the connection; false on timeout.
bool WaitForPeerClose(int fd) {
  char tmp[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

// A blocking HTTP server on 127.0.0.1:<ephemeral>, one connection at a time,
// calling `handler` for each request on its own thread. The handler owns the
// response; the connection is closed after it returns.
class TestServer {
 public:
  using Handler = std::function<void(int fd, const ServerRequest& req)>;

  explicit TestServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd_ >= 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(listen_fd_, 16) == 0);
    socklen_t len = sizeof(addr);
    REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    REQUIRE(::pipe(stop_pipe_) == 0);
    thread_ = std::thread([this] { Run(); });
  }

  ~TestServer() {
    const char b = 'x';
    (void)!::write(stop_pipe_[1], &b, 1);
    thread_.join();
    ::close(listen_fd_);
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
  }

  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  std::vector<ServerRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Run() {
    for (;;) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (::poll(fds, 2, 30000) <= 0 || (fds[1].revents & POLLIN)) return;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      timeval tv{10, 0};  // bound every blocking read
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      if (std::optional<ServerRequest> req = ReadRequest(fd)) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          requests_.push_back(*req);
        }
        handler_(fd, *req);
      }
      ::close(fd);
    }
  }

  Handler handler_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<ServerRequest> requests_;
};

// A libuv loop with a CurlLoop on it; `wake` lets other threads wake the loop.
struct LoopFixture {
  LoopFixture() {
    REQUIRE(uv_loop_init(&loop) == 0);
    uv_async_init(&loop, &wake, [](uv_async_t*) {});
    curl = std::make_unique<CurlLoop>(&loop);
  }
  ~LoopFixture() {
    curl.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&wake), nullptr);
    // Every handle must close by itself; the unref'd guard only stops a hang.
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, [](uv_timer_t* t) { uv_stop(t->loop); }, 5000, 0);
    uv_unref(reinterpret_cast<uv_handle_t*>(&guard));
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }

  // Runs the loop until done() or the limit; returns done().
  // Callbacks that satisfy done() from the timer phase must not leave the
  // loop blocked in poll: a prepare handle stops the loop before polling.
  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    bool expired = false;
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; },
                   uint64_t(limit.count()), 0);
    uv_prepare_t check;
    uv_prepare_init(&loop, &check);
    check.data = const_cast<std::function<bool()>*>(&done);
    uv_prepare_start(&check, [](uv_prepare_t* p) {
      if ((*static_cast<std::function<bool()>*>(p->data))()) uv_stop(p->loop);
    });
    while (!done() && !expired) uv_run(&loop, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&guard), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&check), nullptr);
    uv_run(&loop, UV_RUN_NOWAIT);
    return done();
  }

  void Wake() { uv_async_send(&wake); }

  uv_loop_t loop;
  uv_async_t wake;
  std::unique_ptr<CurlLoop> curl;
};

// What a transfer reported, for assertions.
struct Outcome {
  int header_calls = 0;
  int header_status = 0;
  HeaderList headers;
  int data_calls = 0;
  std::string body;
  int done_calls = 0;
  std::optional<Status> status;
  int http_status = -1;

  void Attach(ClientRequest& req) {
    req.on_headers = [this](int code, const HeaderList& h) {
      header_calls++;
      header_status = code;
      headers = h;
    };
    req.on_data = [this](std::span<const uint8_t> d) {
      data_calls++;
      body.append(reinterpret_cast<const char*>(d.data()), d.size());
      return DataAction::kContinue;
    };
    req.on_done = [this](Status s, int code) {
      done_calls++;
      status = std::move(s);
      http_status = code;
    };
  }
  bool done() const { return done_calls > 0; }
};

std::string Pattern(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    s[i] = char(x >> 16);
  }
  return s;
}

}  // namespace

TEST_CASE("curl_loop: GET delivers headers, body and completion") {
  LoopFixture f;
  TestServer server([](int fd, const ServerRequest&) {
    SendAll(fd,
            "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Test:  yes \r\n"
            "Connection: close\r\n\r\nhello world");
  });
  Outcome out;
  ClientRequest req;
  req.method = "GET";
  req.url = server.Url("/info?x=1");
  out.Attach(req);
  const uint64_t id = f.curl->Start(std::move(req));
  CHECK(id != 0);
  CHECK(f.curl->active() == 1);
  CHECK(out.header_calls == 0);  // nothing runs inside Start
  REQUIRE(f.RunUntil([&] { return out.done(); }));
  REQUIRE(out.status->ok());
  CHECK(out.http_status == 200);
  CHECK(out.header_calls == 1);
  CHECK(out.header_status == 200);
  bool found = false;
  for (const auto& [k, v] : out.headers) found = found || (k == "X-Test" && v == "yes");
  CHECK(found);
  CHECK(out.body == "hello world");
  CHECK(out.done_calls == 1);
  CHECK(f.curl->active() == 0);
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "GET");
  CHECK(reqs[0].target == "/info?x=1");
}

TEST_CASE("curl_loop: an HTTP error status is not a transport error") {
  LoopFixture f;
  TestServer server([](int fd, const ServerRequest&) {
    SendAll(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 14\r\n\r\nlease expired\n");
  });
  Outcome out;
  ClientRequest req;
  req.url = server.Url("/stream");
  out.Attach(req);
  f.curl->Start(std::move(req));
  REQUIRE(f.RunUntil([&] { return out.done(); }));
  CHECK(out.status->ok());
  CHECK(out.http_status == 503);
  CHECK(out.body == "lease expired\n");
}

TEST_CASE("curl_loop: POST sends the body byte-exact with the headers set") {
  LoopFixture f;
  TestServer server([](int fd, const ServerRequest&) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  });
  std::string body = Pattern(100000, 7);
  body[10] = '\0';
  body.replace(20, 4, "\r\n\r\n");
  Outcome out;
  ClientRequest req;
  req.method = "POST";
  req.url = server.Url("/stream?filter=a,b");
  req.headers = {{"Litefs-Id", "00000000000000A1"}, {"Content-Type", "application/octet-stream"}};
  req.body = body;
  out.Attach(req);
  f.curl->Start(std::move(req));
  REQUIRE(f.RunUntil([&] { return out.done(); }));
  INFO(out.status->message());
  REQUIRE(out.status->ok());
  CHECK(out.http_status == 200);
  CHECK(out.data_calls == 0);
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 1);
  const ServerRequest& got = reqs[0];
  CHECK(got.method == "POST");
  CHECK(got.target == "/stream?filter=a,b");
  CHECK(got.Header("Litefs-Id") == "00000000000000A1");
  CHECK(got.Header("Content-Type") == "application/octet-stream");
  CHECK(got.Header("Content-Length") == "100000");
  CHECK_FALSE(got.Header("Expect").has_value());
  CHECK(got.body.size() == body.size());
  CHECK(got.body == body);
}

TEST_CASE("curl_loop: POST with an empty body sends Content-Length 0 and no form type") {
  LoopFixture f;
  TestServer server([](int fd, const ServerRequest&) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  });
  Outcome out;
  ClientRequest req;
  req.method = "POST";
  req.url = server.Url("/promote");
  out.Attach(req);
  f.curl->Start(std::move(req));
  REQUIRE(f.RunUntil([&] { return out.done(); }));
  REQUIRE(out.status->ok());
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[0].Header("Content-Length") == "0");
  CHECK_FALSE(reqs[0].Header("Content-Type").has_value());
}

TEST_CASE("curl_loop: kPause holds the bytes and re-delivers them after Resume") {
  LoopFixture f;
  const std::string piece1 = Pattern(3000, 1);
  const std::string piece2 = Pattern(50000, 2);
  Flag client_paused, server_done;
  TestServer server([&](int fd, const ServerRequest&) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunk(piece1));
    if (!client_paused.WaitFor(10s)) return;
    SendAll(fd, Chunk(piece2) + "0\r\n\r\n");
    server_done.Set();
    f.Wake();
  });

  Outcome out;
  std::string rejected;  // the bytes refused with kPause
  int rejected_calls = 0;
  ClientRequest req;
  req.url = server.Url("/stream");
  out.Attach(req);
  req.on_data = [&](std::span<const uint8_t> d) {
    out.data_calls++;
    if (rejected_calls == 0) {
      rejected_calls++;
      rejected.assign(reinterpret_cast<const char*>(d.data()), d.size());
      client_paused.Set();
      return DataAction::kPause;
    }
    out.body.append(reinterpret_cast<const char*>(d.data()), d.size());
    return DataAction::kContinue;
  };
  const uint64_t id = f.curl->Start(std::move(req));

  REQUIRE(f.RunUntil([&] { return server_done.IsSet(); }));
  // The whole response has been sent, but the transfer stays paused.
  CHECK(f.RunUntil([&] { return out.data_calls > 1 || out.done(); }, 200ms) == false);
  CHECK(out.data_calls == 1);
  CHECK_FALSE(out.done());
  REQUIRE_FALSE(rejected.empty());

  f.curl->Resume(id);
  CHECK(out.data_calls == 1);  // nothing runs inside Resume
  REQUIRE(f.RunUntil([&] { return out.done(); }));
  INFO(out.status->message());
  REQUIRE(out.status->ok());
  CHECK(out.body.size() == piece1.size() + piece2.size());
  CHECK(out.body == piece1 + piece2);
  CHECK(out.body.compare(0, rejected.size(), rejected) == 0);  // same bytes again
}

TEST_CASE("curl_loop: Pause from on_headers holds the body until Resume") {
  LoopFixture f;
  const std::string body = Pattern(20000, 3);
  Flag saw_headers, server_done;
  TestServer server([&](int fd, const ServerRequest&) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\n\r\n");
    if (!saw_headers.WaitFor(10s)) return;
    SendAll(fd, body);
    server_done.Set();
    f.Wake();
  });
  Outcome out;
  uint64_t id = 0;
  ClientRequest req;
  req.url = server.Url("/export?name=db");
  out.Attach(req);
  req.on_headers = [&](int code, const HeaderList&) {
    out.header_calls++;
    out.header_status = code;
    f.curl->Pause(id);
    saw_headers.Set();
  };
  id = f.curl->Start(std::move(req));
  REQUIRE(f.RunUntil([&] { return server_done.IsSet(); }));
  CHECK(f.RunUntil([&] { return out.data_calls > 0 || out.done(); }, 200ms) == false);
  CHECK(out.header_calls == 1);
  f.curl->Resume(id);
  REQUIRE(f.RunUntil([&] { return out.done(); }));
  REQUIRE(out.status->ok());
  CHECK(out.body == body);
}

TEST_CASE("curl_loop: connection refused names the request") {
  LoopFixture f;
  // A bound but not listening socket: connecting to its port is refused.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/stream";

  Outcome out;
  ClientRequest req;
  req.method = "POST";
  req.url = url;
  req.body = "x";
  out.Attach(req);
  f.curl->Start(std::move(req));
  REQUIRE(f.RunUntil([&] { return out.done(); }));
  ::close(fd);
  REQUIRE_FALSE(out.status->ok());
  const std::string prefix = "POST " + url + ": Couldn't connect to server";
  INFO(out.status->message());
  CHECK(out.status->message().rfind(prefix, 0) == 0);
  CHECK(out.http_status == 0);
  CHECK(out.header_calls == 0);
  CHECK(f.curl->active() == 0);
}

TEST_CASE("curl_loop: unsupported scheme fails through on_done") {
  LoopFixture f;
  Outcome out;
  ClientRequest req;
  req.url = "https://127.0.0.1:1/info";
  out.Attach(req);
  f.curl->Start(std::move(req));
  REQUIRE(f.RunUntil([&] { return out.done(); }));
  REQUIRE_FALSE(out.status->ok());
  CHECK(out.status->message().rfind("GET https://127.0.0.1:1/info: ", 0) == 0);
}

TEST_CASE("curl_loop: low_speed_time aborts a silent server") {
  LoopFixture f;
  Flag client_gone;
  bool headers_then_silence = false;
  SUBCASE("silent from the start") { headers_then_silence = false; }
  SUBCASE("silent after the headers and a first chunk") { headers_then_silence = true; }
  TestServer server([&](int fd, const ServerRequest&) {
    if (headers_then_silence) {
      SendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunk("frame"));
    }
    if (WaitForPeerClose(fd)) client_gone.Set();
  });
  Outcome out;
  ClientRequest req;
  req.method = "POST";
  req.url = server.Url("/stream");
  req.low_speed_time_s = 1;
  req.low_speed_limit = 1;
  out.Attach(req);
  const auto start = std::chrono::steady_clock::now();
  f.curl->Start(std::move(req));
  REQUIRE(f.RunUntil([&] { return out.done(); }));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  INFO(out.status->message());
  REQUIRE_FALSE(out.status->ok());
  CHECK(out.status->message().rfind("POST " + server.Url("/stream") + ": Timeout was reached", 0) ==
        0);
  CHECK(elapsed >= 900ms);
  // curl averages the rate over ~5 s: after bytes have flowed the abort comes
  // up to ~5 s late (see ClientRequest::low_speed_time_s).
  CHECK(elapsed < (headers_then_silence ? 8s : 3s));
  CHECK(out.header_calls == (headers_then_silence ? 1 : 0));
  CHECK(out.body == (headers_then_silence ? "frame" : ""));
  CHECK(client_gone.WaitFor(10s));
}

TEST_CASE("curl_loop: Cancel inside on_data stops every callback and closes the connection") {
  LoopFixture f;
  Flag client_gone;
  TestServer server([&](int fd, const ServerRequest&) {
    // Two chunks in one write: curl hands them to its write callback one by
    // one, so the second one arrives after the Cancel in the first.
    SendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
                    Chunk(Pattern(5000, 4)) + Chunk(Pattern(1000, 5)));
    if (WaitForPeerClose(fd)) client_gone.Set();
    f.Wake();
  });
  Outcome out;
  uint64_t id = 0;
  ClientRequest req;
  req.url = server.Url("/stream");
  out.Attach(req);
  req.on_data = [&](std::span<const uint8_t>) {
    out.data_calls++;
    f.curl->Cancel(id);
    CHECK(f.curl->active() == 0);
    return DataAction::kContinue;
  };
  id = f.curl->Start(std::move(req));
  REQUIRE(f.RunUntil([&] { return client_gone.IsSet(); }));
  CHECK(out.data_calls == 1);
  CHECK(out.done_calls == 0);
  CHECK(f.curl->active() == 0);
  f.curl->Cancel(id);  // a second Cancel is harmless
  f.curl->Resume(id);
}

TEST_CASE("curl_loop: Cancel from outside callbacks, and destruction with transfers running") {
  LoopFixture f;
  Flag gone1, gone2;
  int conn = 0;
  TestServer server([&](int fd, const ServerRequest&) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunk("first"));
    const bool closed = WaitForPeerClose(fd);
    if (closed) (conn++ == 0 ? gone1 : gone2).Set();
    f.Wake();
  });
  Outcome a, b;
  ClientRequest ra;
  ra.url = server.Url("/stream");
  a.Attach(ra);
  const uint64_t id = f.curl->Start(std::move(ra));
  REQUIRE(f.RunUntil([&] { return a.data_calls > 0; }));
  f.curl->Cancel(id);
  CHECK(f.curl->active() == 0);
  REQUIRE(f.RunUntil([&] { return gone1.IsSet(); }));
  CHECK(a.done_calls == 0);

  ClientRequest rb;
  rb.url = server.Url("/stream");
  b.Attach(rb);
  f.curl->Start(std::move(rb));
  REQUIRE(f.RunUntil([&] { return b.data_calls > 0; }));
  f.curl.reset();  // cancels b: no on_done
  CHECK(b.done_calls == 0);
  CHECK(gone2.WaitFor(10s));
}

TEST_CASE("curl_loop: Start from inside callbacks") {
  LoopFixture f;
  TestServer server([](int fd, const ServerRequest& r) {
    const std::string body = "body of " + r.target;
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n" + body);
  });
  Outcome first, second, third;
  ClientRequest r1;
  r1.url = server.Url("/one");
  first.Attach(r1);
  r1.on_data = [&](std::span<const uint8_t> d) {
    first.data_calls++;
    first.body.append(reinterpret_cast<const char*>(d.data()), d.size());
    if (first.data_calls == 1) {
      ClientRequest r2;
      r2.url = server.Url("/two");
      second.Attach(r2);
      f.curl->Start(std::move(r2));  // inside curl's write callback
    }
    return DataAction::kContinue;
  };
  r1.on_done = [&](Status s, int code) {
    first.done_calls++;
    first.status = s;
    first.http_status = code;
    ClientRequest r3;
    r3.url = server.Url("/three");
    third.Attach(r3);
    f.curl->Start(std::move(r3));  // inside on_done
  };
  f.curl->Start(std::move(r1));
  REQUIRE(f.RunUntil([&] { return first.done() && second.done() && third.done(); }));
  CHECK(first.status->ok());
  CHECK(second.status->ok());
  CHECK(third.status->ok());
  CHECK(first.body == "body of /one");
  CHECK(second.body == "body of /two");
  CHECK(third.body == "body of /three");
  CHECK(f.curl->active() == 0);
}

TEST_CASE("curl_loop: idle_timeout_ms is an exact read deadline") {
  LoopFixture f;
  Flag client_gone;
  TestServer server([&](int fd, const ServerRequest&) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunk("heartbeat"));
    if (WaitForPeerClose(fd)) client_gone.Set();
  });
  Outcome out;
  ClientRequest req;
  req.method = "POST";
  req.url = server.Url("/stream");
  req.idle_timeout_ms = 1000;
  out.Attach(req);
  const auto start = std::chrono::steady_clock::now();
  f.curl->Start(std::move(req));
  REQUIRE(f.RunUntil([&] { return out.done(); }));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(out.status->ok());
  CHECK(out.status->message() ==
        "POST " + server.Url("/stream") + ": no data received for 1000 ms (idle timeout)");
  CHECK(out.http_status == 200);
  CHECK(out.body == "heartbeat");
  CHECK(elapsed >= 900ms);
  CHECK(elapsed < 2500ms);
  CHECK(f.curl->active() == 0);
  CHECK(client_gone.WaitFor(10s));
}

TEST_CASE("curl_loop: the idle clock stops while a transfer is paused") {
  LoopFixture f;
  Flag client_paused;
  TestServer server([&](int fd, const ServerRequest&) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunk("abc"));
    if (!client_paused.WaitFor(10s)) return;
    SendAll(fd, Chunk("def") + "0\r\n\r\n");
  });
  Outcome out;
  bool paused_once = false;
  ClientRequest req;
  req.url = server.Url("/stream");
  req.idle_timeout_ms = 300;
  out.Attach(req);
  req.on_data = [&](std::span<const uint8_t> d) {
    out.data_calls++;
    if (!paused_once) {
      paused_once = true;
      return DataAction::kPause;
    }
    out.body.append(reinterpret_cast<const char*>(d.data()), d.size());
    return DataAction::kContinue;
  };
  const uint64_t id = f.curl->Start(std::move(req));
  REQUIRE(f.RunUntil([&] { return paused_once; }));
  // Paused for twice the idle timeout: no failure.
  CHECK(f.RunUntil([&] { return out.done(); }, 600ms) == false);
  client_paused.Set();
  f.curl->Resume(id);
  REQUIRE(f.RunUntil([&] { return out.done(); }));
  INFO(out.status->message());
  CHECK(out.status->ok());
  CHECK(out.body == "abcdef");
}
