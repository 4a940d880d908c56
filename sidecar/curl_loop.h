// CurlLoop: HTTP/1.1 client transfers (libcurl multi) driven by a libuv loop.
//
// Contract:
// - Everything runs on the loop thread: construct, call, and destroy a CurlLoop
//   on the thread that runs `loop`; every callback runs there too.
// - No callback ever runs synchronously inside Start/Pause/Resume/Cancel; they
//   run later from the loop. Start/Pause/Resume/Cancel may be called from
//   inside any callback (easy-handle cleanup is deferred as libcurl requires).
// - on_done runs exactly once per transfer unless the transfer is cancelled
//   (Cancel or destruction): after Cancel no callback of that transfer runs
//   again, not even on_done.
// - A transport failure (connect, timeout, reset, ...) is a failed Status whose
//   message names the request and curl's error:
//   "POST http://127.0.0.1:20202/stream: Couldn't connect to server (...)".
//   An HTTP error status (404, 500, ...) is NOT a failed Status: on_done gets an
//   ok Status and the code; the owner decides.
// - Transfers are plain HTTP/1.1 (no TLS, no HTTP/2, no proxy from the
//   environment, no redirects followed), with TCP keepalive and no signals.
// - curl_global_init: GlobalInit() below, called by the first CurlLoop
//   constructor (std::call_once); main() may call it earlier, before starting
//   threads. curl_global_cleanup is never called (process lifetime).
// - Destruction cancels every transfer (no callbacks) and closes the libuv
//   handles; their memory is released by the loop's close callbacks, so run the
//   loop again afterwards (as any libuv owner does before uv_loop_close).
//   Do not destroy a CurlLoop from inside one of its callbacks.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ltx/status.h"

namespace litefs::http {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// What on_data did with the bytes it was offered.
enum class DataAction {
  kContinue,  // consumed them all
  kPause,     // took none: the transfer pauses and, after Resume(id), the SAME
              // bytes are offered again (libcurl's CURL_WRITEFUNC_PAUSE)
};

struct ClientRequest {
  std::string method = "GET";  // GET, HEAD, POST, PUT, DELETE, ...
  std::string url;             // http://host:port/path?query
  HeaderList headers;          // sent as given; an empty value sends "Name:" empty
  std::string body;            // sent with Content-Length when non-empty or for
                               // POST/PUT/PATCH; no default Content-Type is added
  long connect_timeout_ms = 5000;
  long total_timeout_ms = 0;   // 0 = no limit on the whole transfer
  // libcurl's low-speed abort: fail when the transfer rate stays below
  // low_speed_limit bytes/s for low_speed_time_s seconds; 0 = off. curl
  // averages the rate over the last ~5 s, so after traffic stops the abort
  // comes up to ~5 s later than low_speed_time_s (a fully silent server is
  // caught after low_speed_time_s). For an exact deadline use idle_timeout_ms.
  long low_speed_time_s = 0;
  long low_speed_limit = 1;
  // Read deadline: fail when no response byte (header or body) has arrived
  // for this long; the clock restarts on every byte and stops while paused
  // bytes are held (kPause or Pause). 0 = off. Message: "<METHOD> <URL>: no data received
  // for <N> ms (idle timeout)".
  long idle_timeout_ms = 0;
  // https: PEM files; empty = the system's CAs, no client certificate.
  struct Tls {
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
  } tls;

  // Once, when the final (non-1xx) response headers are complete. Header names
  // are as received; values have surrounding whitespace trimmed.
  std::function<void(int http_status, const HeaderList& headers)> on_headers;
  // Body bytes as they arrive (after on_headers). See DataAction.
  std::function<DataAction(std::span<const uint8_t> data)> on_data;
  // Exactly once at the end unless cancelled: ok or a transport error;
  // http_status is 0 when no response status line was received.
  std::function<void(Status status, int http_status)> on_done;
};

// Idempotent, thread-safe curl_global_init(CURL_GLOBAL_DEFAULT).
void GlobalInit();

class CurlLoop {
 public:
  explicit CurlLoop(uv_loop_t* loop);
  ~CurlLoop();
  CurlLoop(const CurlLoop&) = delete;
  CurlLoop& operator=(const CurlLoop&) = delete;

  // Starts a transfer; returns its id (never 0). Setup failures are reported
  // through on_done, later, like any other failure.
  uint64_t Start(ClientRequest request);

  // Stops delivering body bytes of transfer `id` until Resume(id): bytes that
  // arrive meanwhile are held by libcurl. Unknown or finished ids are ignored.
  void Pause(uint64_t id);

  // Undoes Pause or an on_data kPause; held bytes are offered again, from the
  // loop, not from inside this call. Unknown or finished ids are ignored.
  void Resume(uint64_t id);

  // Abandons transfer `id`: no callback of it runs afterwards (on_done
  // included); its connection is closed. Unknown or finished ids are ignored.
  void Cancel(uint64_t id);

  // Transfers started and neither finished (on_done called) nor cancelled.
  size_t active() const { return transfers_.size(); }

 private:
  struct Transfer;
  struct Socket;

  static int OnSocket(void* easy, int fd, int what, void* self, void* socket_ctx);
  static int OnTimerRequest(void* multi, long timeout_ms, void* self);
  static void OnTimer(uv_timer_t* timer);
  static void OnKick(uv_timer_t* timer);
  static void OnPoll(uv_poll_t* poll, int status, int events);
  static size_t OnHeaderLine(char* data, size_t size, size_t n, void* transfer);
  static size_t OnBody(char* data, size_t size, size_t n, void* transfer);

  static std::string Configure(Transfer* t);  // "" or what failed
  void CloseSocket(Socket* s);
  void SocketAction(int fd, int flags);
  void Drain();
  void Kick();
  void Add(Transfer* t);
  void Destroy(std::unique_ptr<Transfer> t);
  void Finish(uint64_t id, int curl_code);
  static void OnIdleTimeout(uv_timer_t* timer);
  void IdleClock(Transfer* t);  // (re)starts or stops t's idle timer

  uv_loop_t* loop_;
  void* multi_ = nullptr;              // CURLM*
  uv_timer_t* timer_ = nullptr;        // curl's timeout (heap: freed on close)
  uv_timer_t* kick_ = nullptr;         // runs deferred work on the next turn
  int in_curl_ = 0;                    // >0 while libcurl may call our callbacks
  bool draining_ = false;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Transfer>> transfers_;
  std::vector<std::unique_ptr<Transfer>> graveyard_;  // cancelled, cleanup deferred
  std::deque<uint64_t> pending_add_;      // started inside a curl callback
  std::deque<uint64_t> pending_resume_;   // Resume() requests
  std::deque<uint64_t> pending_failed_;   // setup failed: report via on_done
  std::vector<Socket*> sockets_;          // live poll handles
};

}  // namespace litefs::http
