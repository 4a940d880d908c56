// One proxied exchange (see forwarder.h).
#include "proxy/forwarder.h"

#include <charconv>
#include <ctime>
#include <memory>
#include <string>
#include <utility>

#include "proxy/forward_headers.h"
#include "proxy/http/tcp_handoff.h"
#include "proxy/reverse_proxy.h"
#include "proxy/tunnel.h"
#include "proxy/txid_token.h"
#include "proxy/upstream_connection.h"

namespace litefs::proxy {
namespace {

// Body bytes in flight per direction before reading from the sender stops.
constexpr size_t kHighWater = 256 * 1024;
constexpr size_t kLowWater = 64 * 1024;

std::string HttpDate(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

bool IsIdempotentRead(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS";
}

std::string ChunkFrame(std::span<const uint8_t> data) {
  char size[20];
  auto r = std::to_chars(size, size + sizeof size, data.size(), 16);
  std::string out;
  out.reserve(size_t(r.ptr - size) + data.size() + 4);
  out.append(size, r.ptr);
  out.append("\r\n");
  out.append(reinterpret_cast<const char*>(data.data()), data.size());
  out.append("\r\n");
  return out;
}

class ForwardedExchange : public UpstreamHandler, public std::enable_shared_from_this<ForwardedExchange> {
 public:
  ForwardedExchange(ReverseProxy& proxy, std::shared_ptr<http::Exchange> ex, ForwardPlan plan)
      : proxy_(proxy), ex_(std::move(ex)), plan_(std::move(plan)) {}

  void Start() {
    self_ = shared_from_this();
    std::weak_ptr<ForwardedExchange> weak = self_;
    ex_->OnClose([weak] {
      if (auto me = weak.lock()) me->OnClientGone();
    });
    if (!done_) Acquire();  // OnClose runs at once when the client already left
  }

 private:
  void Acquire(bool fresh = false) {
    std::weak_ptr<ForwardedExchange> weak = self_;
    acquiring_ = true;
    dial_id_ = proxy_.pool().Acquire(plan_.target, [weak](Result<UpstreamConnection*> conn, bool reused) {
      auto me = weak.lock();
      if (!me) {
        if (conn.ok()) (*conn)->Close();
        return;
      }
      me->acquiring_ = false;
      me->OnAcquired(std::move(conn), reused);
    }, fresh);
  }

  void OnAcquired(Result<UpstreamConnection*> conn, bool reused) {
    if (done_) {
      if (conn.ok()) (*conn)->Close();
      return;
    }
    if (!conn.ok()) return FailBeforeHead(conn.status().message());
    conn_ = *conn;
    reused_ = reused;
    const http::Request& req = ex_->request();
    std::string head;
    ForwardedRequest fwd = BuildUpstreamRequest(req, req.upgrade, plan_.request_headers, head);
    chunked_ = fwd.chunked_body;
    conn_->Begin(std::move(head), req.method == "HEAD", this);
    if (conn_ == nullptr || done_) return;  // failed at once (OnEnd ran)
    if (!fwd.has_body) {
      conn_->EndBody();
      return;
    }
    body_started_ = true;
    std::weak_ptr<ForwardedExchange> weak = self_;
    Status st = ex_->ReadBody(
        [weak](std::span<const uint8_t> data) {
          if (auto me = weak.lock()) me->OnRequestData(data);
        },
        [weak](Status status) {
          if (auto me = weak.lock()) me->OnRequestEnd(std::move(status));
        });
    if (!st.ok()) FailBeforeHead(st.message());
  }

  void OnRequestData(std::span<const uint8_t> data) {
    if (conn_ == nullptr || data.empty()) return;
    std::string bytes = chunked_ ? ChunkFrame(data)
                                 : std::string(reinterpret_cast<const char*>(data.data()), data.size());
    std::weak_ptr<ForwardedExchange> weak = self_;
    conn_->WriteBody(std::move(bytes), [weak](Status) {
      auto me = weak.lock();
      if (me && me->conn_ && me->conn_->queued_bytes() < kLowWater) me->ex_->ResumeBody();
    });
    if (conn_ != nullptr && conn_->queued_bytes() > kHighWater) ex_->PauseBody();
  }

  void OnRequestEnd(Status status) {
    if (conn_ == nullptr) return;
    if (!status.ok()) {
      // The client's body broke off: the target must not see a complete request.
      return Fail("request body: " + status.message());
    }
    if (chunked_) conn_->WriteBody("0\r\n\r\n", nullptr);
    conn_->EndBody();
  }

  // --- UpstreamHandler ---

  void OnHead(UpstreamResponseHead& head) override {
    if (done_) return;
    std::shared_ptr<ForwardedExchange> keep = self_;  // closing the client may drop the last owner
    head_sent_ = true;
    if (head.status == 101) {
      if (!ex_->request().upgrade) return Fail("the target switched protocols without being asked");
      return StartTunnel(head);
    }
    StripHopByHop(head.headers, false);
    if (plan_.stale_token) head.headers.push_back({"Litefs-Txid-Stale", "1"});
    if (plan_.issue_token) return HoldUntilRecorded(head);
    ex_->StartResponse(head.status, std::move(head.headers));
  }

  void OnBody(std::span<const uint8_t> data) override {
    if (done_ || data.empty()) return;
    if (held_) {
      held_->body.append(reinterpret_cast<const char*>(data.data()), data.size());
      return;
    }
    std::shared_ptr<ForwardedExchange> keep = self_;  // closing the client may drop the last owner
    outstanding_ += data.size();
    size_t n = data.size();
    std::weak_ptr<ForwardedExchange> weak = self_;
    Status st = ex_->WriteBody(std::string(reinterpret_cast<const char*>(data.data()), data.size()),
                               [weak, n](Status) {
                                 auto me = weak.lock();
                                 if (!me) return;
                                 me->outstanding_ -= n;
                                 if (me->conn_ && me->outstanding_ < kLowWater) me->conn_->ResumeResponse();
                               });
    if (!st.ok()) return Fail(st.message());
    if (outstanding_ > kHighWater && conn_) conn_->PauseResponse();
  }

  void OnEnd(Status status) override {
    if (done_) return;
    std::shared_ptr<ForwardedExchange> keep = self_;  // closing the client may drop the last owner
    if (held_) {
      if (status.ok()) {
        held_->end = true;
        return;
      }
      held_.reset();
      return FailBeforeHead(status.message());  // nothing reached the client yet
    }
    if (!status.ok()) {
      if (!head_sent_ && reused_ && conn_ && !conn_->response_started() && !body_started_ && retries_ == 0 &&
          IsIdempotentRead(ex_->request().method)) {
        // A kept-alive connection the target had closed meanwhile: the request
        // cannot have run (no byte came back), and it is safe to repeat; try
        // once more on a new connection.
        ++retries_;
        conn_->Close();
        conn_ = nullptr;
        Acquire(/*fresh=*/true);
        return;
      }
      return Fail(status.message());
    }
    ex_->EndResponse();
    UpstreamConnection* conn = conn_;
    conn_ = nullptr;
    if (conn) proxy_.pool().Release(plan_.target, conn);
    Finish();
  }

  // --- read-your-writes ---

  // A write's response waits until this node recorded what the app
  // committed (WAL commits are captured just after the app's COMMIT
  // returns), so that the token names the app's own transactions. What the
  // target sends meanwhile waits with it; reading from the target pauses.
  void HoldUntilRecorded(UpstreamResponseHead& head) {
    held_ = std::make_unique<HeldResponse>();
    held_->status = head.status;
    held_->headers = std::move(head.headers);
    if (conn_) conn_->PauseResponse();
    std::weak_ptr<ForwardedExchange> weak = self_;
    proxy_.backend().WhenCommitsRecorded([weak] {
      if (auto me = weak.lock()) me->ReleaseHeld();
    });
  }

  void ReleaseHeld() {
    if (done_ || !held_) return;
    std::shared_ptr<ForwardedExchange> keep = self_;  // closing the client may drop the last owner
    std::unique_ptr<HeldResponse> held = std::move(held_);
    AddToken(held->headers);
    ex_->StartResponse(held->status, std::move(held->headers));
    if (!held->body.empty()) {
      OnBody({reinterpret_cast<const uint8_t*>(held->body.data()), held->body.size()});
      if (done_) return;
    }
    if (held->end) return OnEnd(Status());
    if (conn_ && outstanding_ < kLowWater) conn_->ResumeResponse();
  }

  // --- outcomes ---

  void AddToken(http::Headers& headers) {
    ProxyBackend& backend = proxy_.backend();
    TxidToken token;
    std::optional<uint64_t> main_txid = backend.txid(proxy_.options().db);
    if (main_txid) token.entries.push_back({proxy_.options().db, *main_txid});
    for (auto& [db, txid] : backend.ChangedSince(plan_.change_seq)) {
      if (db != proxy_.options().db) token.entries.push_back({db, txid});
    }
    if (token.entries.empty()) return;  // nothing to wait for
    token.issuer = backend.node_id();
    std::string expires = "; Path=/; Expires=" +
                          HttpDate(std::time(nullptr) + proxy_.options().cookie_expiry.count() / 1000) +
                          "; HttpOnly";
    if (main_txid) headers.push_back({"Set-Cookie", "__txid=" + FormatHex16(*main_txid) + expires});
    std::string value = FormatTxidToken(token);
    headers.push_back({"Set-Cookie", "__litefs=" + value + expires});
    headers.push_back({"Litefs-Txid", value});
  }

  void StartTunnel(UpstreamResponseHead& head) {
    UpstreamConnection* conn = conn_;
    conn_ = nullptr;
    std::string target_early;
    uv_tcp_t* target = conn->TakeTunnel(&target_early);
    if (target == nullptr) return Fail("cannot take over the target connection");
    ReverseProxy* proxy = &proxy_;
    ex_->SwitchProtocols(std::move(head.headers), [proxy, target, target_early = std::move(target_early)](
                                                      Result<http::Exchange::TakenStream> client) mutable {
      if (!client.ok()) {  // the client left before the 101 was written
        http::CloseAndDeleteTcp(target);
        return;
      }
      proxy->AddTunnel(client->tcp, std::move(client->early_bytes), target, std::move(target_early));
    });
    Finish();
  }

  void FailBeforeHead(const std::string& why) {
    if (done_) return;
    std::shared_ptr<ForwardedExchange> keep = self_;  // closing the client may drop the last owner
    ++proxy_.mutable_stats().upstream_errors;
    ex_->Respond(502, {{"Content-Type", "text/plain; charset=utf-8"}}, "Proxy error: " + why + "\n");
    CloseUpstream();
    Finish();
  }

  void Fail(const std::string& why) {
    if (done_) return;
    std::shared_ptr<ForwardedExchange> keep = self_;  // closing the client may drop the last owner
    if (!head_sent_) return FailBeforeHead(why);
    ++proxy_.mutable_stats().upstream_errors;
    CloseUpstream();
    ex_->Abort();
    Finish();
  }

  void OnClientGone() {
    if (done_) return;
    CloseUpstream();
    Finish();
  }

  void CloseUpstream() {
    if (acquiring_) {
      proxy_.pool().Cancel(dial_id_);
      acquiring_ = false;
    }
    if (conn_) {
      conn_->Detach();
      conn_->Close();
      conn_ = nullptr;
    }
  }

  void Finish() {
    done_ = true;
    self_.reset();  // may destroy this object: nothing may follow
  }

  ReverseProxy& proxy_;
  std::shared_ptr<http::Exchange> ex_;
  ForwardPlan plan_;
  std::shared_ptr<ForwardedExchange> self_;  // alive until Finish()
  UpstreamConnection* conn_ = nullptr;
  uint64_t dial_id_ = 0;
  bool acquiring_ = false;
  bool reused_ = false;
  bool chunked_ = false;
  bool body_started_ = false;
  bool head_sent_ = false;
  bool done_ = false;
  int retries_ = 0;
  size_t outstanding_ = 0;
  struct HeldResponse {
    int status = 0;
    http::Headers headers;
    std::string body;
    bool end = false;
  };
  std::unique_ptr<HeldResponse> held_;  // see HoldUntilRecorded
};

}  // namespace

void Forward(ReverseProxy& proxy, std::shared_ptr<http::Exchange> ex, ForwardPlan plan) {
  std::make_shared<ForwardedExchange>(proxy, std::move(ex), std::move(plan))->Start();
}

}  // namespace litefs::proxy
