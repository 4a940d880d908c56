// Loop thread, test server and raw client for http_tests (see http_test_support.h).
#include "http_test_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>

#include <doctest.h>

namespace litefs::http::test {

// ---------------------------------------------------------------------------
// LoopThread

LoopThread::LoopThread() {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &async_, &LoopThread::OnAsync);
  async_.data = this;
  thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
}

LoopThread::~LoopThread() {
  int leaked = 0;
  Post([this, &leaked] {
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
    // Anything still open here is a leak of the code under test: report it
    // and close it so the loop (and this thread) can end.
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void* arg) {
          if (!uv_is_closing(h)) {
            ++*static_cast<int*>(arg);
            uv_close(h, nullptr);
          }
        },
        &leaked);
  });
  thread_.join();
  CHECK(leaked == 0);
  CHECK(uv_loop_close(&loop_) == 0);
}

void LoopThread::OnAsync(uv_async_t* handle) {
  auto* self = static_cast<LoopThread*>(handle->data);
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    tasks.swap(self->tasks_);
  }
  for (auto& t : tasks) t();
}

void LoopThread::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(fn));
  }
  uv_async_send(&async_);
}

bool LoopThread::Run(std::function<void()> fn, std::chrono::milliseconds timeout) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> f = done->get_future();
  Post([fn = std::move(fn), done] {
    fn();
    done->set_value();
  });
  return f.wait_for(timeout) == std::future_status::ready;
}

void RunAfter(uv_loop_t* loop, uint64_t ms, std::function<void()> fn) {
  struct Later {
    uv_timer_t timer;
    std::function<void()> fn;
  };
  auto* later = new Later{{}, std::move(fn)};
  uv_timer_init(loop, &later->timer);
  later->timer.data = later;
  uv_timer_start(
      &later->timer,
      [](uv_timer_t* t) {
        auto* l = static_cast<Later*>(t->data);
        l->fn();
        uv_close(reinterpret_cast<uv_handle_t*>(t),
                 [](uv_handle_t* h) { delete static_cast<Later*>(h->data); });
      },
      ms, 0);
}

// ---------------------------------------------------------------------------
// Event

void Event::Signal() {
  std::lock_guard<std::mutex> lock(mu_);
  ++count_;
  cv_.notify_all();
}

bool Event::WaitFor(int count, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return count_ >= count; });
}

int Event::count() {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

// ---------------------------------------------------------------------------
// TestServer

TestServer::TestServer(Server::Handler handler, ServerOptions options) {
  std::string error;
  bool ran = loop_.Run([&] {
    server_ = new Server(loop_.loop(), std::move(options), std::move(handler));
    Status s = server_->Listen("127.0.0.1:0");
    if (!s.ok()) error = s.message();
    port_ = server_->port();
  });
  REQUIRE(ran);
  REQUIRE(error == "");
  REQUIRE(port_ > 0);
}

TestServer::~TestServer() {
  if (!closed_) CHECK(Close());
  CHECK(loop_.Run([this] { delete server_; }));
}

ServerStats TestServer::Stats() {
  ServerStats stats;
  CHECK(loop_.Run([&] { stats = server_->stats(); }));
  return stats;
}

bool TestServer::Close() {
  closed_ = true;
  auto done = std::make_shared<Event>();
  loop_.Post([this, done] { server_->Close([done] { done->Signal(); }); });
  return done->WaitFor(1);
}

// ---------------------------------------------------------------------------
// Client

Client::Client(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd_ >= 0);
  sockaddr_in addr;
  std::memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
}

Client::~Client() { Close(); }

void Client::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void Client::SetReceiveBuffer(int bytes) {
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

void Client::Send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the server closed; the test checks what it read
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

void Client::ShutdownWrite() { shutdown(fd_, SHUT_WR); }

bool Client::Fill(std::chrono::steady_clock::time_point deadline) {
  if (eof_) return false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left.count()) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char tmp[65536];
    ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n > 0) {
      buf_.append(tmp, static_cast<size_t>(n));
      return true;
    }
    eof_ = true;  // orderly EOF or reset: the server closed
    return false;
  }
}

bool Client::Need(size_t n, std::chrono::steady_clock::time_point deadline) {
  while (buf_.size() < n) {
    if (!Fill(deadline)) return false;
  }
  return true;
}

std::string Client::ReadExactly(size_t n, std::chrono::milliseconds timeout) {
  Need(n, std::chrono::steady_clock::now() + timeout);
  std::string out = buf_.substr(0, n);
  buf_.erase(0, out.size());
  return out;
}

std::string Client::ReadSome(size_t max, std::chrono::milliseconds timeout) {
  if (buf_.empty()) Fill(std::chrono::steady_clock::now() + timeout);
  std::string out = buf_.substr(0, max);
  buf_.erase(0, out.size());
  return out;
}

bool Client::WaitClosed(std::string* extra, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (Fill(deadline)) {
  }
  if (extra != nullptr) *extra = buf_;
  buf_.clear();
  return eof_;
}

Response Client::ReadResponse(bool head_request, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Response r;
  size_t end;
  while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!Fill(deadline)) return r;
  }
  r.head = buf_.substr(0, end + 4);
  buf_.erase(0, end + 4);
  // Status line.
  size_t line_end = r.head.find("\r\n");
  std::string status_line = r.head.substr(0, line_end);
  if (status_line.rfind("HTTP/1.1 ", 0) != 0 || status_line.size() < 12) return r;
  r.status = std::atoi(status_line.substr(9, 3).c_str());
  // Header lines.
  size_t pos = line_end + 2;
  while (pos < end) {
    size_t eol = r.head.find("\r\n", pos);
    std::string line = r.head.substr(pos, eol - pos);
    size_t colon = line.find(':');
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers.push_back({line.substr(0, colon), value});
    pos = eol + 2;
  }
  if (head_request || r.status / 100 == 1 || r.status == 204 || r.status == 304) {
    r.complete = true;
    return r;
  }
  const std::string* te = r.Header("Transfer-Encoding");
  const std::string* cl = r.Header("Content-Length");
  if (te != nullptr) {
    if (*te != "chunked") return r;
    r.chunked = true;
    for (;;) {
      size_t eol;
      while ((eol = buf_.find("\r\n")) == std::string::npos) {
        if (!Fill(deadline)) return r;
      }
      size_t size = std::strtoul(buf_.substr(0, eol).c_str(), nullptr, 16);
      buf_.erase(0, eol + 2);
      if (size == 0) {
        if (!Need(2, deadline) || buf_.compare(0, 2, "\r\n") != 0) return r;  // no trailers expected
        buf_.erase(0, 2);
        r.complete = true;
        return r;
      }
      if (!Need(size + 2, deadline)) return r;
      if (buf_.compare(size, 2, "\r\n") != 0) return r;
      r.body.append(buf_, 0, size);
      buf_.erase(0, size + 2);
    }
  }
  if (cl != nullptr) {
    size_t n = std::strtoul(cl->c_str(), nullptr, 10);
    if (!Need(n, deadline)) return r;
    r.body = buf_.substr(0, n);
    buf_.erase(0, n);
    r.complete = true;
    return r;
  }
  while (Fill(deadline)) {
  }
  r.body = buf_;
  buf_.clear();
  r.complete = eof_;
  return r;
}

std::string Repeat(std::string_view s, size_t times) {
  std::string out;
  out.reserve(s.size() * times);
  for (size_t i = 0; i < times; ++i) out.append(s);
  return out;
}

}  // namespace litefs::http::test
