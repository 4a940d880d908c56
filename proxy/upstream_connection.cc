// HTTP/1.1 client connection to a proxy target (see upstream_connection.h).
#include "proxy/upstream_connection.h"

#include <cstring>
#include <utility>

#include "proxy/http/tcp_handoff.h"

namespace litefs::proxy {
namespace {

constexpr size_t kReadBufferSize = 64 * 1024;

UpstreamConnection* Self(llhttp_t* p) { return static_cast<UpstreamConnection*>(p->data); }

Status UvError(std::string_view what, int code) {
  return Status::Error(std::string(what) + ": " + uv_strerror(code));
}

}  // namespace

UpstreamConnection::UpstreamConnection(uv_loop_t* loop) : loop_(loop) {
  uv_tcp_init(loop_, &tcp_);
  tcp_.data = this;
  uv_tcp_nodelay(&tcp_, 1);
  out_ = std::make_unique<http::OutputQueue>(reinterpret_cast<uv_stream_t*>(&tcp_), &counters_,
                                             &UpstreamConnection::OnWriteDone, this);
  llhttp_init(&parser_, HTTP_RESPONSE, Settings());
  parser_.data = this;
}

UpstreamConnection::~UpstreamConnection() = default;

const llhttp_settings_t* UpstreamConnection::Settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &UpstreamConnection::OnMessageBegin;
    s.on_header_field = &UpstreamConnection::OnHeaderField;
    s.on_header_value = &UpstreamConnection::OnHeaderValue;
    s.on_header_field_complete = &UpstreamConnection::OnHeaderFieldComplete;
    s.on_headers_complete = &UpstreamConnection::OnHeadersComplete;
    s.on_body = &UpstreamConnection::OnBody;
    s.on_message_complete = &UpstreamConnection::OnMessageComplete;
    return s;
  }();
  return &settings;
}

int UpstreamConnection::Connect(const sockaddr* addr, ConnectCallback done) {
  on_connect_ = std::move(done);
  connect_req_.data = this;
  int rc = uv_tcp_connect(&connect_req_, &tcp_, addr, &UpstreamConnection::OnConnect);
  if (rc != 0) on_connect_ = nullptr;  // failed at once: the caller is told by the return value
  return rc;
}

void UpstreamConnection::OnConnect(uv_connect_t* req, int status) {
  auto* c = static_cast<UpstreamConnection*>(req->data);
  ConnectCallback cb = std::move(c->on_connect_);
  c->on_connect_ = nullptr;
  if (status == UV_ECANCELED) return;  // closed while connecting
  if (status != 0) c->broken_ = true;
  if (cb) cb(status);
}

void UpstreamConnection::Begin(std::string head, bool head_request, UpstreamHandler* handler) {
  handler_ = handler;
  head_request_ = head_request;
  in_exchange_ = true;
  request_ended_ = false;
  response_ended_ = false;
  response_started_ = false;
  interim_ = false;
  paused_ = false;
  head_ = UpstreamResponseHead{};
  llhttp_init(&parser_, HTTP_RESPONSE, Settings());
  parser_.data = this;
  out_->AppendOwned(std::move(head));
  Status st = out_->Flush();
  if (!st.ok()) return Fail(st);
  UpdateReading();
}

void UpstreamConnection::WriteBody(std::string data, WrittenCallback on_written) {
  if (broken_ || closing_) {
    if (on_written) on_written(Status::Error("upstream connection closed"));
    return;
  }
  out_->AppendOwned(std::move(data));
  out_->AppendCallback(std::move(on_written));
  Status st = out_->Flush();
  if (!st.ok()) Fail(st);
}

void UpstreamConnection::EndBody() { request_ended_ = true; }

void UpstreamConnection::OnWriteDone(void* ctx, int status) {
  auto* c = static_cast<UpstreamConnection*>(ctx);
  if (status == 0 || status == UV_ECANCELED) return;
  // The target stopped reading (it may already have answered, e.g. 413).
  c->broken_ = true;
  if (!c->response_ended_) c->Fail(UvError("write to target", status));
}

void UpstreamConnection::PauseResponse() {
  paused_ = true;
  UpdateReading();
}

void UpstreamConnection::ResumeResponse() {
  if (!paused_) return;
  paused_ = false;
  UpdateReading();
}

bool UpstreamConnection::reusable() const {
  return !broken_ && !closing_ && !upgraded_ && request_ended_ && response_ended_ && head_.keep_alive &&
         out_->queued_bytes() == 0;
}

void UpstreamConnection::WatchIdle() {
  handler_ = nullptr;
  in_exchange_ = false;
  paused_ = false;
  UpdateReading();
}

uv_tcp_t* UpstreamConnection::TakeTunnel(std::string* early_bytes) {
  tunnel_taken_ = true;
  closing_ = true;
  handler_ = nullptr;
  if (reading_) uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp_));
  reading_ = false;
  *early_bytes = std::move(tunnel_early_);
  // The tunnel gets its own handle; this object closes its own and goes.
  uv_tcp_t* tcp = http::DuplicateTcpHandle(loop_, &tcp_);
  Close();
  return tcp;
}

void UpstreamConnection::Close() {
  if (closing_ && uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp_))) return;
  closing_ = true;
  handler_ = nullptr;
  out_->Abort(Status::Error("upstream connection closed"));
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), [](uv_handle_t* h) {
    delete static_cast<UpstreamConnection*>(h->data);
  });
}

// ---------------------------------------------------------------------------
// Input

void UpstreamConnection::UpdateReading() {
  bool want = !closing_ && !broken_ && !paused_ && !upgraded_;
  if (want == reading_) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(&tcp_);
  if (want) {
    if (uv_read_start(stream, &UpstreamConnection::OnAlloc, &UpstreamConnection::OnRead) != 0) {
      Fail(Status::Error("read from target failed"));
      return;
    }
  } else {
    uv_read_stop(stream);
  }
  reading_ = want;
}

void UpstreamConnection::OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* c = static_cast<UpstreamConnection*>(handle->data);
  if (!c->read_buffer_) c->read_buffer_.reset(new char[kReadBufferSize]);
  *buf = uv_buf_init(c->read_buffer_.get(), kReadBufferSize);
}

void UpstreamConnection::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<UpstreamConnection*>(stream->data);
  if (c->closing_) return;
  if (nread > 0) {
    if (!c->in_exchange_) {
      // An idle connection must stay silent; anything else ends it.
      c->broken_ = true;
      c->UpdateReading();
      return;
    }
    c->OnData(buf->base, static_cast<size_t>(nread));
    return;
  }
  if (nread == 0) return;
  c->broken_ = true;
  c->UpdateReading();
  if (!c->in_exchange_ || c->response_ended_) return;
  if (nread == UV_EOF) {
    // A body delimited by the close ends here (OnMessageComplete pauses the
    // parser, so llhttp_finish reports HPE_PAUSED); anything else is cut short.
    llhttp_errno_t err = llhttp_finish(&c->parser_);
    if ((err == HPE_OK || err == HPE_PAUSED) && c->response_ended_) {
      c->Finish(Status());
      return;
    }
    c->Fail(Status::Error(c->response_started_ ? "target closed the connection mid-response"
                                               : "target closed the connection without a response"));
    return;
  }
  c->Fail(UvError("read from target", static_cast<int>(nread)));
}

void UpstreamConnection::OnData(const char* data, size_t n) {
  if (response_ended_) {
    // Bytes after a complete response: the connection is out of step.
    broken_ = true;
    UpdateReading();
    return;
  }
  response_started_ = true;
  llhttp_errno_t err = llhttp_execute(&parser_, data, n);
  if (closing_) return;
  switch (err) {
    case HPE_OK:
      return;
    case HPE_PAUSED: {
      // The response is complete. Bytes after it are a protocol violation:
      // don't reuse this connection. A request body still being sent is
      // abandoned (the connection is then not reused either): the client has
      // its answer.
      const char* stop = llhttp_get_error_pos(&parser_);
      if (stop != nullptr && stop < data + n) broken_ = true;
      UpdateReading();
      Finish(Status());
      return;
    }
    case HPE_PAUSED_UPGRADE: {
      const char* stop = llhttp_get_error_pos(&parser_);
      if (stop != nullptr && stop < data + n) tunnel_early_.assign(stop, size_t(data + n - stop));
      upgraded_ = true;
      UpdateReading();
      UpstreamHandler* h = handler_;
      if (h) h->OnHead(head_);
      if (!tunnel_taken_ && !closing_) Close();
      return;
    }
    default:
      Fail(Status::Error(std::string("malformed response from target: ") +
                         llhttp_get_error_reason(&parser_)));
  }
}

void UpstreamConnection::Fail(Status status) {
  broken_ = true;
  UpdateReading();
  if (!in_exchange_) return;
  in_exchange_ = false;
  UpstreamHandler* h = handler_;
  handler_ = nullptr;
  if (h) h->OnEnd(std::move(status));
}

void UpstreamConnection::Finish(Status status) {
  if (!in_exchange_) return;
  in_exchange_ = false;
  UpstreamHandler* h = handler_;
  handler_ = nullptr;
  if (h) h->OnEnd(std::move(status));
}

int UpstreamConnection::OnMessageBegin(llhttp_t* p) {
  UpstreamConnection* c = Self(p);
  c->head_.headers.clear();
  c->field_open_ = false;
  return 0;
}

int UpstreamConnection::OnHeaderField(llhttp_t* p, const char* at, size_t len) {
  UpstreamConnection* c = Self(p);
  if (!c->field_open_) {
    c->head_.headers.emplace_back();
    c->field_open_ = true;
  }
  c->head_.headers.back().name.append(at, len);
  return 0;
}

int UpstreamConnection::OnHeaderFieldComplete(llhttp_t* p) {
  Self(p)->field_open_ = false;
  return 0;
}

int UpstreamConnection::OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
  Self(p)->head_.headers.back().value.append(at, len);
  return 0;
}

int UpstreamConnection::OnHeadersComplete(llhttp_t* p) {
  UpstreamConnection* c = Self(p);
  UpstreamResponseHead& head = c->head_;
  head.status = p->status_code;
  head.http_major = p->http_major;
  head.http_minor = p->http_minor;
  head.keep_alive = llhttp_should_keep_alive(p) != 0;
  if (head.status == 101) return 0;  // reported once the tunnel bytes are known
  if (head.status >= 100 && head.status < 200) {
    c->interim_ = true;  // 100 Continue and friends: the proxy speaks its own
    return 0;
  }
  if (c->handler_) c->handler_->OnHead(head);
  return c->head_request_ ? 1 : 0;  // 1: no body follows (HEAD)
}

int UpstreamConnection::OnBody(llhttp_t* p, const char* at, size_t len) {
  UpstreamConnection* c = Self(p);
  if (c->handler_) c->handler_->OnBody(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(at), len));
  return 0;
}

int UpstreamConnection::OnMessageComplete(llhttp_t* p) {
  UpstreamConnection* c = Self(p);
  if (c->interim_) {
    c->interim_ = false;
    return 0;  // the final response follows
  }
  if (p->status_code == 101) return 0;  // llhttp pauses for the upgrade next
  c->head_.keep_alive = llhttp_should_keep_alive(p) != 0;
  c->response_ended_ = true;
  return HPE_PAUSED;
}

}  // namespace litefs::proxy
