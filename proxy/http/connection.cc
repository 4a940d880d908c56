// Request parsing, ordering, timeouts and closing of one connection (see
// connection.h).
#include "proxy/http/connection.h"

#include <algorithm>
#include <cassert>
#include <string>
#include <utility>

#include "proxy/http/server.h"
#include "proxy/http/tcp_handoff.h"

namespace litefs::http {
namespace {

// Stop reading once this much unparsed input waits (pipelined requests or an
// unclaimed body); TCP flow control then holds the client back.
constexpr size_t kPendingHighWater = 64 * 1024;
constexpr size_t kReadBufferSize = 64 * 1024;

Connection* Self(llhttp_t* p) { return static_cast<Connection*>(p->data); }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string PeerName(uv_tcp_t* tcp) {
  sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  char ip[64] = {0};
  int port = 0;
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    uv_ip6_name(a, ip, sizeof(ip));
    port = ntohs(a->sin6_port);
    return "[" + std::string(ip) + "]:" + std::to_string(port);
  }
  auto* a = reinterpret_cast<sockaddr_in*>(&ss);
  uv_ip4_name(a, ip, sizeof(ip));
  port = ntohs(a->sin_port);
  return std::string(ip) + ":" + std::to_string(port);
}

}  // namespace

const llhttp_settings_t* Connection::Settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &Connection::OnMessageBegin;
    s.on_url = &Connection::OnUrl;
    s.on_header_field = &Connection::OnHeaderField;
    s.on_header_field_complete = &Connection::OnHeaderFieldComplete;
    s.on_header_value = &Connection::OnHeaderValue;
    s.on_headers_complete = &Connection::OnHeadersComplete;
    s.on_body = &Connection::OnBody;
    s.on_chunk_header = &Connection::OnChunkBoundary;
    s.on_chunk_complete = &Connection::OnChunkBoundary;
    s.on_message_complete = &Connection::OnMessageComplete;
    return s;
  }();
  return &settings;
}

Connection::Connection(Server* server)
    : server_(server),
      out_(reinterpret_cast<uv_stream_t*>(&tcp_), &server->counters_, &Connection::OnWriteDone,
           this) {
  llhttp_init(&parser_, HTTP_REQUEST, Settings());
  parser_.data = this;
}

Connection::~Connection() = default;

const ServerOptions& Connection::options() const { return server_->options_; }

void Connection::Start(uv_stream_t* listener) {
  uv_loop_t* loop = server_->loop_;
  uv_tcp_init(loop, &tcp_);
  uv_timer_init(loop, &timer_);
  uv_timer_init(loop, &request_timer_);
  tcp_.data = this;
  timer_.data = this;
  request_timer_.data = this;
  handles_open_ = 3;
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&tcp_)) != 0) {
    HardClose();
    return;
  }
  uv_tcp_nodelay(&tcp_, 1);
  peer_ = PeerName(&tcp_);
  SetDeadline(Timer::kHeader, options().header_read_timeout);
  UpdateReading();
}

// ---------------------------------------------------------------------------
// libuv callbacks

void Connection::OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  Server* server = static_cast<Connection*>(handle->data)->server_;
  if (!server->read_buffer_) server->read_buffer_.reset(new char[kReadBufferSize]);
  *buf = uv_buf_init(server->read_buffer_.get(), kReadBufferSize);
}

void Connection::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  Connection* c = static_cast<Connection*>(stream->data);
  if (nread > 0) {
    c->OnData(buf->base, static_cast<size_t>(nread));
  } else if (nread == UV_EOF) {
    c->OnEof();
  } else if (nread < 0) {
    c->HardClose();  // ECONNRESET and friends: the client is gone
  }
}

void Connection::OnTimer(uv_timer_t* timer) {
  Connection* c = static_cast<Connection*>(timer->data);
  if (c->timer_kind_ == Timer::kNone || c->state_ == State::kClosing) return;
  uint64_t now = uv_now(timer->loop);
  if (now < c->deadline_) {  // the deadline moved later since the timer was set
    uv_timer_start(timer, &Connection::OnTimer, c->deadline_ - now, 0);
    return;
  }
  Timer kind = c->timer_kind_;
  c->timer_kind_ = Timer::kNone;
  switch (kind) {
    case Timer::kHeader:
      if (c->state_ == State::kOpen) c->FailRequest(408, "request header read timeout");
      break;
    case Timer::kIdle:
    case Timer::kLinger:
      c->HardClose();
      break;
    case Timer::kNone:
      break;
  }
}

void Connection::OnRequestTimer(uv_timer_t* timer) {
  Connection* c = static_cast<Connection*>(timer->data);
  if (c->state_ != State::kOpen) return;
  uint64_t now = uv_now(timer->loop);
  if (c->read_deadline_ != 0 && now >= c->read_deadline_) {
    c->read_deadline_ = 0;
    if (c->dispatched_) {
      c->HardClose();  // the handler is reading the body: it hears of the close
    } else {
      c->FailRequest(408, "request read timeout");
    }
    return;
  }
  if (c->write_deadline_ != 0 && now >= c->write_deadline_) {
    c->write_deadline_ = 0;
    c->HardClose();
    return;
  }
  c->ArmRequestTimer();
}

void Connection::OnShutdown(uv_shutdown_t* req, int status) {
  Connection* c = static_cast<Connection*>(req->data);
  if (c->state_ == State::kClosing) return;
  c->shutdown_done_ = true;
  // Our FIN is out after the last response byte; close once the client's
  // FIN arrives (or the linger timer fires).
  if (status < 0 || c->read_eof_ || c->options().linger_timeout.count() <= 0) {
    c->HardClose();
    return;
  }
  c->SetDeadline(Timer::kLinger, c->options().linger_timeout);
}

void Connection::OnHandleClosed(uv_handle_t* handle) {
  Connection* c = static_cast<Connection*>(handle->data);
  if (--c->handles_open_ == 0) c->server_->OnConnectionClosed(c);  // deletes c
}

void Connection::OnWriteDone(void* ctx, int status) {
  Connection* c = static_cast<Connection*>(ctx);
  if (status < 0 && c->state_ != State::kClosing) c->HardClose();
}

// ---------------------------------------------------------------------------
// llhttp callbacks. They only record what they see and ask the parser to stop
// where the connection has to decide something; handler code runs in Step().

int Connection::OnMessageBegin(llhttp_t* p) {
  Connection* c = Self(p);
  if (c->state_ != State::kOpen) return HPE_USER;
  c->AcquireExchange();
  c->phase_ = Phase::kHeaders;
  c->field_open_ = false;
  c->StartRequestDeadline(c->read_deadline_, c->options().read_timeout);
  return 0;
}

int Connection::OnUrl(llhttp_t* p, const char* at, size_t len) {
  Connection* c = Self(p);
  if (c->state_ != State::kOpen) return HPE_USER;
  c->ex_->request_.target.append(at, len);
  return 0;
}

int Connection::OnHeaderField(llhttp_t* p, const char* at, size_t len) {
  Connection* c = Self(p);
  if (c->state_ != State::kOpen) return HPE_USER;
  if (c->phase_ != Phase::kHeaders) return 0;  // trailers of a chunked body: ignored
  Headers& headers = c->ex_->request_.headers;
  if (!c->field_open_) {
    headers.emplace_back();
    c->field_open_ = true;
  }
  headers.back().name.append(at, len);
  return 0;
}

int Connection::OnHeaderFieldComplete(llhttp_t* p) {
  Connection* c = Self(p);
  if (c->state_ != State::kOpen) return HPE_USER;
  if (c->phase_ != Phase::kHeaders) return 0;
  c->field_open_ = false;
  if (c->ex_->request_.headers.size() > c->options().max_headers) {
    c->user_error_status_ = 431;
    llhttp_set_error_reason(p, "too many header fields");
    return HPE_USER;
  }
  return 0;
}

int Connection::OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
  Connection* c = Self(p);
  if (c->state_ != State::kOpen) return HPE_USER;
  if (c->phase_ != Phase::kHeaders) return 0;
  c->ex_->request_.headers.back().value.append(at, len);
  return 0;
}

int Connection::OnHeadersComplete(llhttp_t* p) {
  Connection* c = Self(p);
  if (c->state_ != State::kOpen) return HPE_USER;
  Exchange& ex = *c->ex_;
  Request& r = ex.request_;
  r.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  r.http_major = p->http_major;
  r.http_minor = p->http_minor;
  r.keep_alive = llhttp_should_keep_alive(p) != 0;
  r.upgrade = p->upgrade != 0;
  ex.is_head_ = p->method == HTTP_HEAD;
  if (const std::string* expect = r.Header("Expect")) {
    // RFC 9110 10.1.1: a server ignores 100-continue from an HTTP/1.0 client.
    bool http11 = r.http_major > 1 || (r.http_major == 1 && r.http_minor >= 1);
    if (HeaderNameEquals(Trim(*expect), "100-continue")) {
      ex.expect_continue_ = http11;
    } else {
      c->expect_failed_ = true;
    }
  }
  c->phase_ = Phase::kBody;
  c->timer_kind_ = Timer::kNone;
  c->StartRequestDeadline(c->write_deadline_, c->options().write_timeout);
  bool has_body = !(p->upgrade && p->method == HTTP_CONNECT) &&
                  ((p->flags & F_CHUNKED) != 0 || p->content_length > 0);
  // Stop before the body so the handler decides how it is read.
  return has_body ? HPE_PAUSED : 0;
}

int Connection::OnBody(llhttp_t* p, const char* at, size_t len) {
  Connection* c = Self(p);
  if (c->state_ != State::kOpen) return HPE_USER;
  Exchange& ex = *c->ex_;
  if (ex.response_ == Exchange::ResponseState::kEnded || ex.body_overflow_ ||
      ex.body_mode_ == Exchange::BodyMode::kDiscard) {
    c->discarded_ += len;
    if (c->discarded_ > c->options().max_discard_bytes) {
      c->close_after_response_ = true;
      llhttp_set_error_reason(p, "unread request body too large to discard");
      return HPE_USER;
    }
    return 0;
  }
  if (ex.body_mode_ == Exchange::BodyMode::kFull) {
    if (ex.full_body_.size() + len > ex.full_max_) {
      ex.body_overflow_ = true;  // Step() answers 413
      ex.full_body_.clear();
      return 0;
    }
    ex.full_body_.append(at, len);
    return 0;
  }
  // kStream: hand the bytes over in place. Keep the exchange alive and its
  // callback intact while it runs, whatever the callback does.
  if (!ex.on_data_) return 0;
  std::shared_ptr<Exchange> hold = c->ex_;
  ex.delivering_ = true;
  ex.on_data_(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(at), len));
  ex.delivering_ = false;
  if (ex.reader_done_ || ex.conn_ == nullptr) ex.on_data_ = nullptr;
  return 0;
}

int Connection::OnChunkBoundary(llhttp_t* p) {
  Connection* c = Self(p);
  if (c->state_ != State::kOpen) return HPE_USER;
  return c->BodyPaused() ? HPE_PAUSED : 0;
}

int Connection::OnMessageComplete(llhttp_t* p) {
  Connection* c = Self(p);
  if (c->state_ != State::kOpen) return HPE_USER;
  c->phase_ = Phase::kComplete;
  c->read_deadline_ = 0;
  return HPE_PAUSED;  // the next request waits for this response
}

// ---------------------------------------------------------------------------
// Input

void Connection::OnData(const char* data, size_t n) {
  if (state_ != State::kOpen) return;  // draining: dropped
  if (timer_kind_ == Timer::kIdle) SetDeadline(Timer::kHeader, options().header_read_timeout);
  if (HasInput()) {
    pending_.append(data, n);
    Drive();
    return;
  }
  fresh_ = data;
  fresh_len_ = n;
  Drive();
  if (state_ == State::kOpen && fresh_len_ > 0) pending_.append(fresh_, fresh_len_);
  fresh_ = nullptr;
  fresh_len_ = 0;
  UpdateReading();
}

void Connection::OnEof() {
  read_eof_ = true;
  reading_ = false;  // libuv stopped reading
  if (state_ == State::kDraining) {
    if (shutdown_done_) HardClose();
    return;
  }
  Drive();
}

void Connection::Drive() {
  if (driving_ || state_ != State::kOpen || taking_over_) return;
  driving_ = true;
  while (state_ == State::kOpen && Step()) {
  }
  if (state_ == State::kOpen && read_eof_ && !HasInput()) OnInputEnded();
  driving_ = false;
  UpdateReading();
}

// One decision; true when something changed and another step may follow.
bool Connection::Step() {
  if (ex_ && (phase_ == Phase::kBody || phase_ == Phase::kComplete)) {
    Exchange& ex = *ex_;
    if (!dispatched_) {
      Dispatch();
      return true;
    }
    if (ex.body_overflow_ && ex.reader_waiting()) {
      close_after_response_ = true;
      if (ex.response_ == Exchange::ResponseState::kNone) {
        ex.RespondPlain(413, "request body too large");
      }
      ex.FinishReader(Status::Error("request body larger than " + std::to_string(ex.full_max_) +
                                    " bytes"));
      return true;
    }
    if (phase_ == Phase::kComplete && ex.reader_waiting()) {
      ex.FinishReader(body_error_ ? *body_error_ : Status());
      return true;
    }
    if (ex.response_ == Exchange::ResponseState::kEnded) {
      if (ex.reader_waiting()) {
        ex.FinishReader(Status::Error("response ended before the request body was read"));
        return true;
      }
      if (close_after_response_) {
        EndExchange();
        BeginDrain();
        return false;
      }
      if (phase_ == Phase::kComplete) {
        EndExchange();
        StartNextMessage();
        return true;
      }
      ex.body_mode_ = Exchange::BodyMode::kDiscard;  // Parse() drops the rest
    }
  }
  return Parse();
}

bool Connection::CanParse() const {
  switch (phase_) {
    case Phase::kIdle:
    case Phase::kHeaders:
      return true;
    case Phase::kBody:
      return ex_ && ex_->body_mode_ != Exchange::BodyMode::kUnset && !BodyPaused();
    case Phase::kComplete:
      return false;
  }
  return false;
}

bool Connection::BodyPaused() const {
  return ex_ && ex_->body_paused_ && ex_->body_mode_ == Exchange::BodyMode::kStream &&
         !ex_->reader_done_ && ex_->response_ != Exchange::ResponseState::kEnded;
}

bool Connection::Parse() {
  if (!CanParse()) return false;
  bool from_pending = pending_.size() > pending_off_;
  const char* data;
  size_t len;
  if (from_pending) {
    data = pending_.data() + pending_off_;
    len = pending_.size() - pending_off_;
  } else if (fresh_len_ > 0) {
    data = fresh_;
    len = fresh_len_;
  } else {
    return false;
  }
  Phase before = phase_;
  size_t used = Execute(data, len);
  if (state_ != State::kOpen) return false;  // buffers were dropped
  if (from_pending) {
    pending_off_ += used;
    if (pending_off_ == pending_.size()) {
      pending_.clear();
      pending_off_ = 0;
    } else if (pending_off_ > pending_.size() / 2) {
      pending_.erase(0, pending_off_);
      pending_off_ = 0;
    }
  } else {
    fresh_ += used;
    fresh_len_ -= used;
  }
  return used > 0 || phase_ != before;
}

size_t Connection::Execute(const char* data, size_t len) {
  const size_t max_head = options().max_header_bytes;
  size_t total = 0;
  for (int round = 0; round < 4; ++round) {
    bool in_head = phase_ == Phase::kIdle || phase_ == Phase::kHeaders;
    size_t n = len - total;
    // Never hand llhttp more head bytes than the limit allows: the limit is
    // exact without a second scan.
    if (in_head) n = std::min(n, max_head - header_bytes_);
    const char* p = data + total;
    llhttp_errno_t err = llhttp_execute(&parser_, p, n);
    size_t used = err == HPE_OK ? n : static_cast<size_t>(llhttp_get_error_pos(&parser_) - p);
    if (in_head) header_bytes_ += used;
    total += used;
    if (state_ != State::kOpen) return total;
    switch (err) {
      case HPE_OK:
        if ((phase_ == Phase::kIdle || phase_ == Phase::kHeaders) && header_bytes_ >= max_head) {
          FailRequest(431, "request header fields too large");
        }
        return total;
      case HPE_PAUSED:
        llhttp_resume(&parser_);  // a callback asked to stop here; Step() goes on
        return total;
      case HPE_PAUSED_UPGRADE:
        // Hook for tunnelling (proxy milestone): this is where the socket and
        // the bytes after the request would be handed over when the response
        // was 101. Until then the connection goes on speaking HTTP/1.x.
        llhttp_resume_after_upgrade(&parser_);
        if (total == len) return total;
        continue;
      case HPE_PAUSED_H2_UPGRADE:
        // "PRI * HTTP/2.0": an h2c prior-knowledge client. Hook for HTTP/2
        // (LiteFS's node API speaks it); not spoken yet, so just close.
        BeginDrain();
        return total;
      default:
        OnParseError(err, llhttp_get_error_reason(&parser_));
        return total;
    }
  }
  return total;
}

void Connection::OnParseError(llhttp_errno_t err, const char* reason) {
  std::string why = reason != nullptr ? reason : llhttp_errno_name(err);
  if (!dispatched_) {
    // A callback's own error code is not kept by llhttp for every callback
    // kind, so callbacks record the status they want instead.
    int status = user_error_status_ != 0 ? user_error_status_ : 400;
    FailRequest(status, status == 431 ? "request header fields too large"
                                      : "malformed request: " + why);
    return;
  }
  // The handler owns this exchange: the reader (if any) gets the error, and
  // the connection closes once the response has ended.
  close_after_response_ = true;
  body_error_ = Status::Error("malformed request body: " + why);
  phase_ = Phase::kComplete;
}

void Connection::OnInputEnded() {
  // The client sent FIN and every byte it sent has been used.
  if (dispatched_ && ex_ && ex_->response_ != Exchange::ResponseState::kEnded) {
    HardClose();  // like Go: a half-closed client is a gone client
    return;
  }
  BeginDrain();
}

void Connection::UpdateReading() {
  bool want = false;
  switch (state_) {
    case State::kOpen:
      want = !taking_over_ && !read_eof_ && pending_.size() - pending_off_ < kPendingHighWater && !BodyPaused();
      break;
    case State::kDraining:
      want = !read_eof_;
      break;
    case State::kClosing:
      want = false;
      break;
  }
  if (want == reading_) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
  if (want) {
    if (uv_read_start(stream, &Connection::OnAlloc, &Connection::OnRead) != 0) {
      HardClose();
      return;
    }
  } else {
    uv_read_stop(stream);
  }
  reading_ = want;
}

// ---------------------------------------------------------------------------
// Exchanges

Exchange& Connection::AcquireExchange() {
  if (!ex_) {
    ex_ = std::make_shared<Exchange>();
    ex_->conn_ = this;
    ex_->request_.peer = peer_;
    ex_->request_.headers.reserve(16);
  }
  return *ex_;
}

void Connection::Dispatch() {
  dispatched_ = true;
  if (expect_failed_) {
    ex_->RespondPlain(417, "unsupported Expect header");
    return;
  }
  server_->handler_(ex_);
}

void Connection::EndExchange() {
  std::shared_ptr<Exchange> ex = std::move(ex_);
  dispatched_ = false;
  read_deadline_ = 0;
  write_deadline_ = 0;
  if (ex) ex->Detach();  // drops its callbacks, which may hold the exchange itself
}

void Connection::StartNextMessage() {
  phase_ = Phase::kIdle;
  header_bytes_ = 0;
  discarded_ = 0;
  expect_failed_ = false;
  user_error_status_ = 0;
  body_error_.reset();
  if (HasInput()) {
    SetDeadline(Timer::kHeader, options().header_read_timeout);
  } else {
    SetDeadline(Timer::kIdle, options().idle_timeout);
  }
}

bool Connection::MustCloseAfterResponse() const {
  if (close_after_response_ || server_->closing_) return true;
  if (phase_ == Phase::kComplete || !ex_) return false;
  const Exchange& ex = *ex_;
  if (ex.body_mode_ == Exchange::BodyMode::kStream || ex.body_mode_ == Exchange::BodyMode::kFull) {
    return false;  // being read; what is left is discarded when the response ends
  }
  if (ex.expect_continue_ && !ex.continue_sent_) return true;  // the client still holds it back
  if ((parser_.flags & F_CHUNKED) != 0) return true;            // unknown size
  return parser_.content_length > options().max_discard_bytes;
}

void Connection::FailRequest(int status, std::string_view message) {
  if (state_ != State::kOpen) return;
  Exchange& ex = AcquireExchange();
  dispatched_ = true;
  close_after_response_ = true;
  ex.is_head_ = false;
  ex.RespondPlain(status, message);
  EndExchange();
  BeginDrain();
}

void Connection::BeginTakeOver(Exchange::TakeOverCallback ready) {
  taking_over_ = true;
  takeover_ready_ = std::move(ready);
  timer_kind_ = Timer::kNone;
  read_deadline_ = write_deadline_ = 0;  // the new owner sets its own
  UpdateReading();  // later bytes stay in the kernel for the new owner
  out_.AppendCallback([this](Status st) {
    if (!st.ok()) return;  // closing: HardClose tells the exchange
    takeover_written_ = true;
    server_->Schedule(this);
  });
  RequestFlush();
}

// Runs from RunScheduled (never inside a libuv callback of this handle): a
// second handle on a duplicate of the socket goes to the new owner, then this
// connection closes its own.
void Connection::FinishTakeOver() {
  Exchange::TakeOverCallback ready = std::move(takeover_ready_);
  takeover_ready_ = nullptr;
  Exchange::TakenStream taken;
  taken.early_bytes.assign(pending_, pending_off_, std::string::npos);
  taken.tcp = DuplicateTcpHandle(server_->loop_, &tcp_);
  if (ex_) ex_->response_ = Exchange::ResponseState::kEnded;  // not "closed early"
  HardClose();
  if (!ready) {
    if (taken.tcp) CloseAndDeleteTcp(taken.tcp);
    return;
  }
  if (taken.tcp == nullptr) return ready(Status::Error("cannot take over the client socket"));
  ready(std::move(taken));
}

void Connection::Wake() {
  if (driving_ || state_ != State::kOpen) return;  // a running Drive() sees it
  drive_wanted_ = true;
  server_->Schedule(this);
}

void Connection::RequestFlush() {
  if (state_ == State::kClosing) return;
  server_->Schedule(this);
}

void Connection::OnBodyRequested(Exchange& ex) {
  if (ex.expect_continue_ && !ex.continue_sent_ && phase_ == Phase::kBody &&
      ex.response_ == Exchange::ResponseState::kNone && !ex.body_overflow_) {
    ex.continue_sent_ = true;
    out_.AppendCopy("HTTP/1.1 100 Continue\r\n\r\n");
    RequestFlush();
  }
  Wake();
}

void Connection::OnResponseEnded() {
  RequestFlush();
  Wake();
}

// ---------------------------------------------------------------------------
// Output and closing

void Connection::RunScheduled() {
  if (state_ == State::kClosing) return;
  if (takeover_written_) {
    FinishTakeOver();
    return;
  }
  if (drive_wanted_) {
    drive_wanted_ = false;
    Drive();
  }
  FlushOutput();
}

void Connection::FlushOutput() {
  if (state_ == State::kClosing) return;
  if (!out_.Flush().ok()) {
    HardClose();
    return;
  }
  if (state_ == State::kDraining && !shutdown_started_) {
    shutdown_started_ = true;
    shutdown_req_.data = this;
    // libuv sends FIN after every queued write has completed.
    if (uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_),
                    &Connection::OnShutdown) != 0) {
      HardClose();
    }
  }
}

void Connection::BeginDrain() {
  if (state_ != State::kOpen) return;
  if (ex_ && dispatched_ && ex_->response_ != Exchange::ResponseState::kEnded) {
    HardClose();  // nothing sensible left to send
    return;
  }
  state_ = State::kDraining;
  if (ex_) {
    ex_->Detach();
    ex_.reset();
  }
  dispatched_ = false;
  pending_.clear();
  pending_off_ = 0;
  fresh_len_ = 0;
  // Until the last response byte is out (then OnShutdown arms the linger
  // timer), a client that stops reading is given idle_timeout.
  SetDeadline(Timer::kLinger, options().idle_timeout);
  RequestFlush();
  UpdateReading();
}

void Connection::HardClose() {
  if (state_ == State::kClosing) return;
  state_ = State::kClosing;
  // A takeover that cannot happen any more is told so (its owner releases
  // what it holds for the tunnel), after the exchange below.
  Exchange::TakeOverCallback takeover = std::move(takeover_ready_);
  takeover_ready_ = nullptr;
  timer_kind_ = Timer::kNone;
  reading_ = false;
  fresh_len_ = 0;
  if (handles_open_ > 0) {
    // Pending writes are cancelled: their callbacks get an error, before
    // OnHandleClosed deletes this connection.
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), &Connection::OnHandleClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &Connection::OnHandleClosed);
    uv_close(reinterpret_cast<uv_handle_t*>(&request_timer_), &Connection::OnHandleClosed);
  }
  std::shared_ptr<Exchange> ex = std::move(ex_);
  bool unfinished = ex && dispatched_ && ex->response_ != Exchange::ResponseState::kEnded;
  dispatched_ = false;
  // The exchange lets go of the connection first, so that the write callbacks
  // failed below cannot queue more output.
  if (ex) {
    if (unfinished) {
      ex->NotifyClosed();  // handler callbacks: may call anything
    } else {
      ex->Detach();
    }
  }
  out_.Abort(Status::Error("connection closed"));
  if (takeover) takeover(Status::Error("the client connection closed before the switch"));
}

void Connection::SetDeadline(Timer kind, std::chrono::milliseconds after) {
  if (after.count() <= 0) {
    timer_kind_ = Timer::kNone;
    return;
  }
  uint64_t ms = static_cast<uint64_t>(after.count());
  timer_kind_ = kind;
  deadline_ = uv_now(server_->loop_) + ms;
  // Re-arm only when the running timer would fire too late; a timer firing
  // early re-arms itself for the rest (cheap: no timer churn per request).
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&timer_)) ||
      uv_timer_get_due_in(&timer_) > ms) {
    uv_timer_start(&timer_, &Connection::OnTimer, ms, 0);
  }
}

void Connection::StartRequestDeadline(uint64_t& deadline, std::chrono::milliseconds after) {
  deadline = after.count() > 0 ? uv_now(server_->loop_) + static_cast<uint64_t>(after.count()) : 0;
  if (deadline != 0) ArmRequestTimer();
}

// Due at the earlier deadline; a stale timer (its deadline cleared or moved)
// fires early and re-arms itself for what is left.
void Connection::ArmRequestTimer() {
  uint64_t next = 0;
  for (uint64_t d : {read_deadline_, write_deadline_}) {
    if (d != 0 && (next == 0 || d < next)) next = d;
  }
  if (next == 0) return;
  uint64_t now = uv_now(server_->loop_);
  uint64_t due = next > now ? next - now : 0;
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&request_timer_)) ||
      uv_timer_get_due_in(&request_timer_) > due) {
    uv_timer_start(&request_timer_, &Connection::OnRequestTimer, due, 0);
  }
}

}  // namespace litefs::http
