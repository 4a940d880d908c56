// UpstreamConnection: the client side of one HTTP/1.1 connection from the
// proxy to a target (the app, or the primary's proxy), on the libuv loop.
//
// One exchange at a time:
//   conn->Begin(head, is_head_request, handler)   request head (already serialised)
//   conn->WriteBody(bytes, on_written)*           body bytes, framed as the head announced
//   conn->EndBody()
// and the response arrives through the handler: OnHead once for the final
// head (1xx interim responses other than 101 are skipped), OnBody for each
// piece (valid only during the call), OnEnd once (ok, or the error that ended
// it; at the end of the response, even if the request body was not all sent:
// the connection is then not reused). PauseResponse()/ResumeResponse() stop
// reading (backpressure towards a slow client). After a 101 the connection is a raw tunnel: TakeTunnel()
// hands the socket over.
//
// reusable() tells the pool whether another exchange may follow (both sides
// kept the connection alive and both messages completed). Loop thread only.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "ltx/status.h"
#include "proxy/http/header.h"
#include "proxy/http/output_queue.h"

namespace litefs::proxy {

struct UpstreamResponseHead {
  int status = 0;
  int http_major = 1;
  int http_minor = 1;
  http::Headers headers;
  bool keep_alive = true;
};

class UpstreamHandler {
 public:
  virtual ~UpstreamHandler() = default;
  virtual void OnHead(UpstreamResponseHead& head) = 0;
  virtual void OnBody(std::span<const uint8_t> data) = 0;
  virtual void OnEnd(Status status) = 0;
};

class UpstreamConnection {
 public:
  using ConnectCallback = std::function<void(int uv_status)>;  // 0 or a libuv error
  using WrittenCallback = std::function<void(Status)>;

  explicit UpstreamConnection(uv_loop_t* loop);
  // Use Close(); the object deletes itself once libuv let go of the handle.
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Connects to `addr`: a libuv error when that fails at once (and `done`
  // never runs), else 0 and `done` runs once, later, with the result.
  int Connect(const sockaddr* addr, ConnectCallback done);

  // Starts an exchange: writes `head` ("GET / HTTP/1.1\r\n...\r\n\r\n").
  void Begin(std::string head, bool head_request, UpstreamHandler* handler);
  // Queues body bytes (already framed by the caller); on_written fires once
  // they reached the kernel.
  void WriteBody(std::string data, WrittenCallback on_written);
  void EndBody();
  size_t queued_bytes() const { return out_ ? out_->queued_bytes() : 0; }

  void PauseResponse();
  void ResumeResponse();

  // The exchange's handler is forgotten (no more calls); used when the
  // client went away.
  void Detach() { handler_ = nullptr; }

  bool reusable() const;
  // Bytes of the upstream's response that arrived since Begin (a failure
  // with none is safe to retry on a fresh connection for a bodiless request).
  bool response_started() const { return response_started_; }
  // A kept-alive idle connection that the peer closed (EOF or error seen).
  bool broken() const { return broken_; }

  // Idle in the pool: keeps reading so a peer close is noticed at once.
  void WatchIdle();

  // After a 101: the raw stream and the bytes that followed the response head.
  // The connection is no longer usable as HTTP; the caller owns the handle.
  uv_tcp_t* TakeTunnel(std::string* early_bytes);

  // Closes the socket; the object deletes itself later.
  void Close();

 private:
  ~UpstreamConnection();
  static const llhttp_settings_t* Settings();
  static void OnConnect(uv_connect_t* req, int status);
  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void OnWriteDone(void* ctx, int status);
  static int OnMessageBegin(llhttp_t* p);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderFieldComplete(llhttp_t* p);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnBody(llhttp_t* p, const char* at, size_t len);
  static int OnMessageComplete(llhttp_t* p);

  void OnData(const char* data, size_t n);
  void Fail(Status status);
  void Finish(Status status);
  void UpdateReading();

  uv_loop_t* loop_;
  uv_tcp_t tcp_;
  uv_connect_t connect_req_;
  ConnectCallback on_connect_;
  std::unique_ptr<http::OutputQueue> out_;
  http::OutputCounters counters_;
  llhttp_t parser_;
  UpstreamHandler* handler_ = nullptr;
  UpstreamResponseHead head_;
  bool field_open_ = false;
  bool head_request_ = false;
  bool in_exchange_ = false;
  bool request_ended_ = false;
  bool response_ended_ = false;
  bool response_started_ = false;
  bool interim_ = false;        // the message being parsed is a 1xx to skip
  bool upgraded_ = false;
  bool paused_ = false;
  bool reading_ = false;
  bool broken_ = false;
  bool closing_ = false;
  bool tunnel_taken_ = false;
  std::string tunnel_early_;    // bytes after a 101 head
  std::unique_ptr<char[]> read_buffer_;
};

}  // namespace litefs::proxy
