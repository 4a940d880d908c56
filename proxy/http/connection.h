// Connection: one accepted TCP connection of a Server (internal; handlers only
// see Exchange).
//
// Reads with libuv into the server's shared buffer and parses with llhttp in
// place (bytes are copied to a per-connection buffer only when parsing has to
// stop: pipelined requests waiting for a response, a paused or not yet claimed
// body). Requests are handled strictly one at a time: the parser pauses at the
// end of each request head that has a body and at the end of each request, and
// the next request is parsed only after the current response has ended and
// its body has been consumed. Handler code never runs inside llhttp except
// ReadBody's on_data. Enforces head size/count limits (431), the header read
// timeout (408), the request read and write timeouts, the keep-alive idle
// timeout and lingering close.
//
// Lifetime: created by Server on accept; deleted after both libuv handles
// closed (HardClose), which libuv reports after every pending write callback.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ltx/status.h"
#include "proxy/http/exchange.h"
#include "proxy/http/output_queue.h"
#include "proxy/http/server_options.h"

namespace litefs::http {

class Server;

class Connection {
 public:
  explicit Connection(Server* server);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Accepts a pending connection from `listener` and starts reading. On
  // failure the connection closes itself (and is deleted later).
  void Start(uv_stream_t* listener);
  // Closes now. OnClose fires for an exchange whose response had not ended.
  void HardClose();
  // Deferred work queued by Schedule(): parsing/dispatch and output flush.
  void RunScheduled();

  size_t index_ = 0;        // slot in Server::connections_
  bool scheduled_ = false;  // in Server::scheduled_

 private:
  friend class Exchange;

  enum class State : uint8_t { kOpen, kDraining, kClosing };
  // Where the parser is in the current inbound message.
  enum class Phase : uint8_t { kIdle, kHeaders, kBody, kComplete };
  enum class Timer : uint8_t { kNone, kHeader, kIdle, kLinger };

  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void OnTimer(uv_timer_t* timer);
  static void OnRequestTimer(uv_timer_t* timer);
  static void OnShutdown(uv_shutdown_t* req, int status);
  static void OnHandleClosed(uv_handle_t* handle);
  static void OnWriteDone(void* ctx, int status);

  static int OnMessageBegin(llhttp_t* p);
  static int OnUrl(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderFieldComplete(llhttp_t* p);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnBody(llhttp_t* p, const char* at, size_t len);
  static int OnChunkBoundary(llhttp_t* p);
  static int OnMessageComplete(llhttp_t* p);
  static const llhttp_settings_t* Settings();

  // Input.
  void OnData(const char* data, size_t n);
  void OnEof();
  void Drive();
  bool Step();
  bool Parse();
  size_t Execute(const char* data, size_t len);
  void OnParseError(llhttp_errno_t err, const char* reason);
  void OnInputEnded();
  bool CanParse() const;
  bool BodyPaused() const;
  bool HasInput() const { return pending_.size() > pending_off_ || fresh_len_ > 0; }
  void UpdateReading();

  // Exchanges.
  Exchange& AcquireExchange();
  void Dispatch();
  void EndExchange();
  void StartNextMessage();
  bool MustCloseAfterResponse() const;
  void FailRequest(int status, std::string_view message);

  // Called by Exchange.
  void BeginTakeOver(Exchange::TakeOverCallback ready);
  void FinishTakeOver();
  void Wake();
  void RequestFlush();
  void OnBodyRequested(Exchange& ex);
  void OnResponseEnded();
  const ServerOptions& options() const;

  // Output and closing.
  void FlushOutput();
  void BeginDrain();
  void SetDeadline(Timer kind, std::chrono::milliseconds after);
  // The request's read and write deadlines (ServerOptions::read_timeout,
  // write_timeout) run on request_timer_, beside the connection's own timer.
  void StartRequestDeadline(uint64_t& deadline, std::chrono::milliseconds after);
  void ArmRequestTimer();

  Server* server_;
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  uv_shutdown_t shutdown_req_;
  llhttp_t parser_;
  OutputQueue out_;
  std::string head_;  // response head being serialised (capacity reused)
  std::string peer_;

  State state_ = State::kOpen;
  Phase phase_ = Phase::kIdle;
  Timer timer_kind_ = Timer::kNone;
  uint64_t deadline_ = 0;  // uv_now() value at which timer_kind_ expires
  uv_timer_t request_timer_;
  uint64_t read_deadline_ = 0;   // uv_now() value; 0: none
  uint64_t write_deadline_ = 0;  // uv_now() value; 0: none
  int handles_open_ = 0;
  bool reading_ = false;
  bool read_eof_ = false;
  bool driving_ = false;
  bool drive_wanted_ = false;
  bool shutdown_started_ = false;
  bool shutdown_done_ = false;

  // Current inbound message.
  // A new Exchange per request: a handler may keep a weak_ptr to an old one,
  // so they are never recycled.
  std::shared_ptr<Exchange> ex_;
  bool dispatched_ = false;
  bool field_open_ = false;
  bool expect_failed_ = false;
  bool close_after_response_ = false;
  int user_error_status_ = 0;  // status a callback chose for its error (0: none)
  size_t header_bytes_ = 0;
  size_t discarded_ = 0;
  std::optional<Status> body_error_;

  // SwitchProtocols: parsing stops; once the 101 head is written the socket
  // is handed over.
  bool taking_over_ = false;
  bool takeover_written_ = false;
  Exchange::TakeOverCallback takeover_ready_;

  // Unparsed input: pending_[pending_off_..] first, then fresh_ (the read
  // buffer of the read callback in progress).
  std::string pending_;
  size_t pending_off_ = 0;
  const char* fresh_ = nullptr;
  size_t fresh_len_ = 0;
};

}  // namespace litefs::http
