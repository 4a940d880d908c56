// Request body reading and response writing for one exchange (see exchange.h).
#include "proxy/http/exchange.h"

#include <charconv>
#include <optional>
#include <utility>

#include "proxy/http/connection.h"
#include "proxy/http/response_head.h"

namespace litefs::http {
namespace {

bool IsHttp11(const Request& r) {
  return r.http_major > 1 || (r.http_major == 1 && r.http_minor >= 1);
}

std::optional<uint64_t> ParseLength(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  uint64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

// --- request body ---

Status Exchange::ReadBody(DataCallback on_data, EndCallback on_end) {
  if (response_ == ResponseState::kEnded) return Status::Error("response already ended");
  if (conn_ == nullptr) return Status::Error("connection closed");
  if (body_mode_ != BodyMode::kUnset) return Status::Error("request body is already being read");
  body_mode_ = BodyMode::kStream;
  on_data_ = std::move(on_data);
  on_end_ = std::move(on_end);
  conn_->OnBodyRequested(*this);
  return Status();
}

Status Exchange::ReadFullBody(size_t max_bytes, FullBodyCallback done) {
  if (response_ == ResponseState::kEnded) return Status::Error("response already ended");
  if (conn_ == nullptr) return Status::Error("connection closed");
  if (body_mode_ != BodyMode::kUnset) return Status::Error("request body is already being read");
  body_mode_ = BodyMode::kFull;
  full_max_ = max_bytes;
  on_full_ = std::move(done);
  Connection& c = *conn_;
  if (c.phase_ == Connection::Phase::kBody && (c.parser_.flags & F_CHUNKED) == 0) {
    uint64_t length = c.parser_.content_length;  // nothing of it consumed yet
    if (length > max_bytes) {
      body_overflow_ = true;  // answered 413 without asking for the body
    } else {
      full_body_.reserve(static_cast<size_t>(length));
    }
  }
  c.OnBodyRequested(*this);
  return Status();
}

void Exchange::PauseBody() {
  body_paused_ = true;
  if (conn_ != nullptr) conn_->UpdateReading();
}

void Exchange::ResumeBody() {
  if (!body_paused_) return;
  body_paused_ = false;
  if (conn_ != nullptr) conn_->Wake();
}

void Exchange::FinishReader(const Status& status) {
  reader_done_ = true;
  if (body_mode_ == BodyMode::kStream) {
    EndCallback cb = std::move(on_end_);
    on_end_ = nullptr;
    if (!delivering_) on_data_ = nullptr;
    if (cb) cb(status);
  } else if (body_mode_ == BodyMode::kFull) {
    FullBodyCallback cb = std::move(on_full_);
    on_full_ = nullptr;
    std::string body;
    if (status.ok()) body = std::move(full_body_);
    full_body_.clear();
    if (cb) cb(status, std::move(body));
  }
}

// --- response ---

void Exchange::WriteHead(int status, std::vector<Header>& headers, const uint64_t* length) {
  Connection& c = *conn_;
  const ServerOptions& options = c.options();
  if (options.add_headers) options.add_headers(headers);

  std::string& head = c.head_;
  head.clear();
  AppendStatusLine(head, status);
  bool handler_close = false;
  std::optional<uint64_t> declared;
  for (const Header& h : headers) {
    // Framing and connection management belong to the server.
    if (HeaderNameEquals(h.name, "Connection")) {
      if (HeaderHasToken(h.value, "close")) handler_close = true;
      continue;
    }
    if (HeaderNameEquals(h.name, "Transfer-Encoding")) continue;
    if (HeaderNameEquals(h.name, "Content-Length")) {
      if (!declared) declared = ParseLength(h.value);
      continue;
    }
    AppendHeaderLine(head, h.name, h.value);
  }

  const bool http11 = IsHttp11(request_);
  const bool bodiless_status = (status >= 100 && status < 200) || status == 204 || status == 304;
  const uint64_t* size = length != nullptr ? length : (declared ? &*declared : nullptr);
  if (bodiless_status) {
    framing_ = Framing::kNone;
    // A 304 may describe the representation's length, when the handler said so.
    if (status == 304 && length == nullptr && declared) {
      AppendHeaderLine(head, "Content-Length", *declared);
    }
  } else if (size != nullptr) {
    framing_ = Framing::kLength;
    length_left_ = *size;
    AppendHeaderLine(head, "Content-Length", *size);
  } else if (is_head_) {
    framing_ = Framing::kNone;
  } else if (http11) {
    framing_ = Framing::kChunked;
    head.append("Transfer-Encoding: chunked\r\n");
  } else {
    framing_ = Framing::kUntilClose;
  }
  body_allowed_ = !bodiless_status && !is_head_;

  bool close = handler_close || !request_.keep_alive || framing_ == Framing::kUntilClose ||
               c.MustCloseAfterResponse();
  if (close) {
    c.close_after_response_ = true;
    head.append("Connection: close\r\n");
  } else if (!http11) {
    head.append("Connection: keep-alive\r\n");
  }
  head.append("\r\n");
  c.out_.AppendCopy(head);
}

void Exchange::Respond(int status, std::vector<Header> headers, std::string body) {
  if (conn_ == nullptr || response_ != ResponseState::kNone) return;
  uint64_t size = body.size();
  WriteHead(status, headers, &size);
  if (body_allowed_ && !body.empty()) conn_->out_.AppendOwned(std::move(body));
  response_ = ResponseState::kEnded;
  conn_->OnResponseEnded();
}

void Exchange::RespondPlain(int status, std::string_view message) {
  if (conn_ == nullptr || response_ != ResponseState::kNone) return;
  conn_->close_after_response_ = true;
  std::string body(message);
  body.push_back('\n');
  Respond(status, {{"Content-Type", "text/plain; charset=utf-8"}}, std::move(body));
}

void Exchange::StartResponse(int status, std::vector<Header> headers) {
  if (conn_ == nullptr || response_ != ResponseState::kNone) return;
  WriteHead(status, headers, nullptr);
  response_ = ResponseState::kStreaming;
  conn_->RequestFlush();
}

Status Exchange::CheckWritable() const {
  if (closed_) return Status::Error("connection closed");
  if (response_ == ResponseState::kNone) return Status::Error("response not started");
  if (response_ == ResponseState::kEnded || conn_ == nullptr) {
    return Status::Error("response already ended");
  }
  return Status();
}

void Exchange::AppendBodyFraming(size_t n) {
  char line[24];
  auto r = std::to_chars(line, line + sizeof(line) - 2, static_cast<uint64_t>(n), 16);
  *r.ptr++ = '\r';
  *r.ptr++ = '\n';
  conn_->out_.AppendCopy(std::string_view(line, static_cast<size_t>(r.ptr - line)));
}

Status Exchange::WriteBody(std::span<const uint8_t> data, WrittenCallback on_written) {
  LITEFS_RETURN_IF_ERROR(CheckWritable());
  OutputQueue& out = conn_->out_;
  if (body_allowed_ && !data.empty()) {
    if (framing_ == Framing::kLength) {
      if (data.size() > length_left_) return Status::Error("body longer than its Content-Length");
      length_left_ -= data.size();
    }
    if (framing_ == Framing::kChunked) AppendBodyFraming(data.size());
    out.AppendExternal(data);
    if (framing_ == Framing::kChunked) out.AppendCopy("\r\n");
  }
  out.AppendCallback(std::move(on_written));
  conn_->RequestFlush();
  return Status();
}

Status Exchange::WriteBody(std::string data, WrittenCallback on_written) {
  LITEFS_RETURN_IF_ERROR(CheckWritable());
  OutputQueue& out = conn_->out_;
  if (body_allowed_ && !data.empty()) {
    if (framing_ == Framing::kLength) {
      if (data.size() > length_left_) return Status::Error("body longer than its Content-Length");
      length_left_ -= data.size();
    }
    if (framing_ == Framing::kChunked) AppendBodyFraming(data.size());
    out.AppendOwned(std::move(data));
    if (framing_ == Framing::kChunked) out.AppendCopy("\r\n");
  }
  out.AppendCallback(std::move(on_written));
  conn_->RequestFlush();
  return Status();
}

void Exchange::EndResponse() {
  if (conn_ == nullptr || response_ != ResponseState::kStreaming) return;
  if (body_allowed_) {
    if (framing_ == Framing::kChunked) {
      conn_->out_.AppendCopy("0\r\n\r\n");
    } else if (framing_ == Framing::kLength && length_left_ > 0) {
      conn_->close_after_response_ = true;  // short body: only closing tells the client
    }
  }
  response_ = ResponseState::kEnded;
  conn_->OnResponseEnded();
}

void Exchange::Abort() {
  if (conn_ != nullptr) conn_->HardClose();
}

void Exchange::SwitchProtocols(std::vector<Header> headers, TakeOverCallback ready) {
  if (conn_ == nullptr || response_ != ResponseState::kNone || !request_.upgrade) {
    if (ready) ready(Status::Error("cannot switch protocols on this exchange"));
    return;
  }
  Connection& c = *conn_;
  if (c.options().add_headers) c.options().add_headers(headers);
  std::string& head = c.head_;
  head.clear();
  AppendStatusLine(head, 101);
  for (const Header& h : headers) AppendHeaderLine(head, h.name, h.value);
  head.append("\r\n");
  c.out_.AppendCopy(head);
  response_ = ResponseState::kStreaming;  // no body, no framing: raw bytes follow
  c.BeginTakeOver(std::move(ready));
}

// --- lifetime ---

void Exchange::OnClose(std::function<void()> fn) {
  if (closed_) {
    if (fn) fn();
    return;
  }
  if (conn_ == nullptr || response_ == ResponseState::kEnded) return;  // can no longer happen
  on_close_ = std::move(fn);
}

void Exchange::NotifyClosed() {
  closed_ = true;
  conn_ = nullptr;
  if (reader_waiting()) FinishReader(Status::Error("connection closed"));
  std::function<void()> fn = std::move(on_close_);
  on_close_ = nullptr;
  if (fn) fn();
  Detach();
}

void Exchange::Detach() {
  conn_ = nullptr;
  on_close_ = nullptr;
  on_end_ = nullptr;
  on_full_ = nullptr;
  if (!delivering_) on_data_ = nullptr;
}

}  // namespace litefs::http
