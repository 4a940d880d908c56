// Test support for http_tests: a libuv loop on its own thread with a Server on
// it, and a blocking raw-socket client. Every wait is bounded by a deadline;
// nothing sleeps to synchronise.
#pragma once

#include <uv.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "proxy/http/header.h"
#include "proxy/http/server.h"

namespace litefs::http::test {

using namespace std::chrono_literals;
inline constexpr std::chrono::milliseconds kWait = 5s;

// A uv loop running on a thread of its own.
class LoopThread {
 public:
  LoopThread();
  ~LoopThread();
  uv_loop_t* loop() { return &loop_; }
  // Runs fn on the loop thread.
  void Post(std::function<void()> fn);
  // Runs fn on the loop thread and waits for it; false when it did not finish in time.
  bool Run(std::function<void()> fn, std::chrono::milliseconds timeout = kWait);

 private:
  static void OnAsync(uv_async_t* handle);
  uv_loop_t loop_;
  uv_async_t async_;
  std::mutex mu_;
  std::vector<std::function<void()>> tasks_;
  std::thread thread_;
};

// Runs fn on the loop (thread) after `ms` milliseconds.
void RunAfter(uv_loop_t* loop, uint64_t ms, std::function<void()> fn);

// A counter other threads wait on with a deadline.
class Event {
 public:
  void Signal();
  bool WaitFor(int count, std::chrono::milliseconds timeout = kWait);
  int count();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

// A Server listening on 127.0.0.1:0 on its own loop thread.
class TestServer {
 public:
  explicit TestServer(Server::Handler handler, ServerOptions options = {});
  ~TestServer();
  int port() const { return port_; }
  LoopThread& loop() { return loop_; }
  ServerStats Stats();
  // Server::Close, waiting for done; false on timeout.
  bool Close();

 private:
  LoopThread loop_;
  Server* server_ = nullptr;
  int port_ = 0;
  bool closed_ = false;
};

struct Response {
  bool complete = false;  // a whole response was read
  int status = 0;
  std::string head;       // status line and headers, with the final CRLF CRLF
  Headers headers;
  std::string body;       // decoded
  bool chunked = false;
  const std::string* Header(std::string_view name) const { return FindHeader(headers, name); }
};

// A blocking TCP client for exact byte-level checks.
class Client {
 public:
  explicit Client(int port);
  ~Client();
  bool connected() const { return fd_ >= 0; }
  void Send(std::string_view bytes);
  void ShutdownWrite();
  void Close();
  // Exactly n bytes (fewer if the connection ends or the deadline passes).
  std::string ReadExactly(size_t n, std::chrono::milliseconds timeout = kWait);
  // One response; `head_request` means no body follows whatever the headers say.
  Response ReadResponse(bool head_request = false, std::chrono::milliseconds timeout = kWait);
  // True when the server closes the connection (EOF or reset) before the
  // deadline; bytes arriving first are collected in *extra when given.
  bool WaitClosed(std::string* extra = nullptr, std::chrono::milliseconds timeout = kWait);
  // Reads at most `max` bytes (one recv), waiting up to the deadline; "" on EOF.
  std::string ReadSome(size_t max, std::chrono::milliseconds timeout = kWait);
  // Sets SO_RCVBUF (before reading a large response slowly).
  void SetReceiveBuffer(int bytes);

 private:
  // Appends more input to buf_; false on EOF, error or deadline.
  bool Fill(std::chrono::steady_clock::time_point deadline);
  bool Need(size_t n, std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

std::string Repeat(std::string_view s, size_t times);

}  // namespace litefs::http::test
