// Server: an HTTP/1.x server on a libuv loop, shared by the node API and the
// reverse proxy.
//
//   Server server(loop, options, [](std::shared_ptr<Exchange> ex) { ... });
//   Status s = server.Listen(":20202");
//   ...
//   server.Close([] { /* every connection and handle is closed */ });
//
// The handler is called once per request, on the loop thread, in the order
// requests arrive on a connection, and never for the next request of that
// connection before the previous response has ended (pipelined requests wait
// buffered). It may answer at once or keep the Exchange and answer later.
//
// Protocol handling (see exchange.h for bodies and responses): keep-alive
// (HTTP/1.1 default, HTTP/1.0 with "Connection: keep-alive"), pipelining,
// chunked request bodies, HEAD, Expect: 100-continue; a malformed request gets
// 400, an oversized head 431, a slow head 408 — each with "Connection: close",
// after which the connection closes. Upgrade/CONNECT requests are served as
// ordinary requests for now (tunnelling comes with the proxy milestone);
// "PRI * HTTP/2.0" (h2c prior knowledge) is not spoken: the connection closes.
//
// Not thread-safe: construct, use and destroy on the loop thread. A Server that
// listened must be closed (and `done` have fired) before it is destroyed; done
// may destroy the Server.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ltx/status.h"
#include "proxy/http/exchange.h"
#include "proxy/http/output_queue.h"
#include "proxy/http/server_options.h"

namespace litefs::http {

class Connection;

// Counters for metrics and tests.
struct ServerStats {
  size_t connections = 0;                // open now
  uint64_t accepted = 0;                 // connections accepted and served
  uint64_t rejected = 0;                 // closed at once: max_connections reached
  size_t queued_output_bytes = 0;        // response bytes held by the server now
  size_t peak_queued_output_bytes = 0;   // the most it ever held at once
};

class Server {
 public:
  using Options = ServerOptions;
  using Handler = std::function<void(std::shared_ptr<Exchange> exchange)>;

  Server(uv_loop_t* loop, Options options, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on "host:port", ":port" (every interface, IPv6 and IPv4)
  // or "[v6]:port"; port 0 picks a free port (see port()). Once per Server.
  // Errors name the address: "listen 127.0.0.1:20202: address already in use".
  Status Listen(std::string_view addr);
  // The bound port, or 0 when not listening.
  int port() const { return port_; }

  // Stops listening and closes every connection at once; OnClose fires for
  // each exchange whose response had not ended. `done` runs once every handle
  // is closed: on a later loop iteration, or at once when nothing was open.
  // Calling it again while closing adds another `done`.
  void Close(std::function<void()> done);

  ServerStats stats() const;
  const Options& options() const { return options_; }

 private:
  friend class Connection;

  static void OnConnection(uv_stream_t* listener, int status);
  static void OnRejectClosed(uv_handle_t* handle);
  static void OnOwnHandleClosed(uv_handle_t* handle);
  static void OnCheck(uv_check_t* handle);
  static void OnIdle(uv_idle_t* handle);

  void Accept();
  void RunScheduled();
  void MaybeFinishClose();
  // Used by connections.
  void Schedule(Connection* c);
  void OnConnectionClosed(Connection* c);

  uv_loop_t* loop_;
  Options options_;
  Handler handler_;
  uv_tcp_t* listener_ = nullptr;  // heap: a failed attempt closes on its own
  uv_check_t check_;
  uv_idle_t idle_;
  bool started_ = false;    // handles initialised
  bool closing_ = false;
  bool closed_ = false;
  int own_handles_open_ = 0;
  int rejects_open_ = 0;
  int port_ = 0;
  std::vector<std::function<void()>> close_done_;

  std::vector<Connection*> connections_;   // Connection::index_ is its slot
  std::vector<Connection*> scheduled_;     // waiting for RunScheduled()
  std::vector<Connection*> running_;       // scratch for RunScheduled()
  std::unique_ptr<char[]> read_buffer_;    // shared by all reads (one thread)
  OutputCounters counters_;
  uint64_t accepted_ = 0;
  uint64_t rejected_ = 0;
};

}  // namespace litefs::http
