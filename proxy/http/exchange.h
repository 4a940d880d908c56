// Exchange: one request and its response, handed to the Server's handler.
//
// Owned through std::shared_ptr: a handler that answers later keeps its copy
// and the Exchange stays valid even after the connection is gone (every call
// then becomes a harmless no-op or returns an error). All calls must come from
// the event loop thread.
//
// Request body (read at most once, by one of):
//   ReadBody(on_data, on_end)    streams the body as it arrives. on_data's span
//                                is valid only during the call. PauseBody()
//                                stops reading the socket (TCP backpressure) until
//                                ResumeBody(). on_end fires exactly once: ok after
//                                the last byte, or an error (malformed chunked
//                                body, client gone, response ended first).
//   ReadFullBody(max, done)      collects the whole body into one string. When the
//                                body is larger than max the server answers 413
//                                itself (Connection: close) and done gets an error.
// Both send "100 Continue" first when the client asked for it. A body nobody
// reads is dropped before the next request (see ServerOptions::max_discard_bytes);
// if the client sent "Expect: 100-continue" and the handler responds without
// reading, the connection closes after the response.
//
// Response (exactly one of):
//   Respond(status, headers, body)         whole response, Content-Length set.
//   StartResponse(status, headers) + WriteBody()* + EndResponse()
//        streaming. With a Content-Length header the body is sent as is (and
//        must match it); without one it is chunked (HTTP/1.1) or runs until the
//        connection closes (HTTP/1.0). WriteBody's on_written fires once the
//        bytes were handed to the kernel: write the next piece only then and
//        memory stays bounded however slow the client is.
// The server owns framing: Content-Length (Respond), Transfer-Encoding and
// Connection headers given by the handler are replaced; "Connection: close"
// from the handler is honoured. HEAD responses and 1xx/204/304 carry no body
// (body bytes given for them are dropped, callbacks still fire). Calling
// Respond/StartResponse a second time, or after the server answered (413), is
// ignored. Status 101 goes through SwitchProtocols() only.
//
// Upgrade (request().upgrade): SwitchProtocols(headers, ready) writes the 101
// head with `headers` as given (Connection/Upgrade included), then hands the
// client's socket over as a raw byte stream; the HTTP connection is gone.
//
// No method calls one of the handler's callbacks before returning, except
// OnClose() on an exchange that is already closed.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ltx/status.h"
#include "proxy/http/header.h"
#include "proxy/http/request.h"

namespace litefs::http {

class Connection;

class Exchange {
 public:
  using DataCallback = std::function<void(std::span<const uint8_t> data)>;
  using EndCallback = std::function<void(Status status)>;
  using FullBodyCallback = std::function<void(Status status, std::string body)>;
  using WrittenCallback = std::function<void(Status status)>;

  Exchange() = default;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  const Request& request() const { return request_; }

  // --- request body ---
  // Errors (and no callback) when the body is already being read, the
  // response has ended, or the connection is closed.
  Status ReadBody(DataCallback on_data, EndCallback on_end);
  Status ReadFullBody(size_t max_bytes, FullBodyCallback done);
  void PauseBody();
  void ResumeBody();

  // --- response ---
  void Respond(int status, std::vector<Header> headers, std::string body);
  void StartResponse(int status, std::vector<Header> headers);
  // Errors (and no callback) when the response is not streaming or the
  // connection is closed; otherwise on_written fires exactly once, later.
  Status WriteBody(std::string data, WrittenCallback on_written);
  // Zero-copy: `data` must stay valid and unchanged until on_written fires.
  Status WriteBody(std::span<const uint8_t> data, WrittenCallback on_written);
  void EndResponse();
  // Closes the connection at once: the only way to tell a client that a
  // streamed response failed midway.
  void Abort();

  // The client's socket after a 101: the caller owns `tcp` (open, not
  // reading; uv_close it when done) and gets the bytes the client sent after
  // its request head.
  struct TakenStream {
    uv_tcp_t* tcp = nullptr;
    std::string early_bytes;
  };
  using TakeOverCallback = std::function<void(Result<TakenStream> stream)>;
  void SwitchProtocols(std::vector<Header> headers, TakeOverCallback ready);

  // `fn` fires once if the connection closes (client gone, write error,
  // Server::Close) before the response ended; at once if that already
  // happened. Never fires once the response has ended.
  void OnClose(std::function<void()> fn);
  bool closed() const { return closed_; }
  bool response_started() const { return response_ != ResponseState::kNone; }
  bool response_ended() const { return response_ == ResponseState::kEnded; }

 private:
  friend class Connection;

  enum class BodyMode : uint8_t { kUnset, kStream, kFull, kDiscard };
  enum class ResponseState : uint8_t { kNone, kStreaming, kEnded };
  enum class Framing : uint8_t { kNone, kLength, kChunked, kUntilClose };

  // Writes the head; `length` is the body size when known (Respond).
  void WriteHead(int status, std::vector<Header>& headers, const uint64_t* length);
  Status CheckWritable() const;
  void AppendBodyFraming(size_t n);
  // Server-generated plain-text answer ("<message>\n"), always closing.
  void RespondPlain(int status, std::string_view message);
  // Reader bookkeeping used by the connection.
  bool reader_waiting() const {
    return (body_mode_ == BodyMode::kStream || body_mode_ == BodyMode::kFull) && !reader_done_;
  }
  void FinishReader(const Status& status);
  // The connection went away before the response ended.
  void NotifyClosed();
  // Forgets the connection and every stored callback (breaks cycles).
  void Detach();

  Connection* conn_ = nullptr;
  Request request_;
  bool is_head_ = false;
  bool expect_continue_ = false;
  bool continue_sent_ = false;

  BodyMode body_mode_ = BodyMode::kUnset;
  bool body_paused_ = false;
  bool reader_done_ = false;
  bool delivering_ = false;  // on_data_ is running: it must not be destroyed
  bool body_overflow_ = false;
  size_t full_max_ = 0;
  std::string full_body_;
  DataCallback on_data_;
  EndCallback on_end_;
  FullBodyCallback on_full_;

  ResponseState response_ = ResponseState::kNone;
  Framing framing_ = Framing::kNone;
  bool body_allowed_ = false;
  uint64_t length_left_ = 0;

  bool closed_ = false;
  std::function<void()> on_close_;
};

}  // namespace litefs::http
