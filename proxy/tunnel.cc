// Bidirectional byte relay for upgraded connections (see tunnel.h).
#include "proxy/tunnel.h"

#include <memory>
#include <utility>

namespace litefs::proxy {
namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr size_t kMaxQueued = 256 * 1024;

constexpr unsigned kKeepaliveDelaySeconds = 60;

}  // namespace

class Tunnel {
 public:
  Tunnel(uv_tcp_t* client, uv_tcp_t* target, std::function<void()> on_closed) : on_closed_(std::move(on_closed)) {
    ends_[0].tcp = client;
    ends_[1].tcp = target;
    for (int i = 0; i < 2; ++i) {
      ends_[i].tunnel = this;
      ends_[i].index = i;
      ends_[i].tcp->data = &ends_[i];
      uv_tcp_keepalive(ends_[i].tcp, 1, kKeepaliveDelaySeconds);
    }
  }

  void Close() { Fail(); }

  void Start(std::string client_early, std::string target_early) {
    if (!client_early.empty()) Write(1, std::move(client_early));
    if (!target_early.empty()) Write(0, std::move(target_early));
    UpdateReading(0);
    UpdateReading(1);
  }

 private:
  struct End {
    Tunnel* tunnel = nullptr;
    int index = 0;
    uv_tcp_t* tcp = nullptr;
    size_t queued = 0;       // bytes waiting to be written to this end
    bool read_eof = false;   // this end sent FIN
    bool reading = false;
    bool shut = false;       // we sent FIN to this end
    bool closed = false;
  };
  struct WriteReq {
    uv_write_t req;
    std::string data;
    End* to;
  };

  End& peer(const End& e) { return ends_[1 - e.index]; }

  void UpdateReading(int i) {
    End& e = ends_[i];
    bool want = !failed_ && !e.read_eof && peer(e).queued < kMaxQueued;
    if (want == e.reading) return;
    auto* s = reinterpret_cast<uv_stream_t*>(e.tcp);
    if (want) {
      if (uv_read_start(s, &Tunnel::OnAlloc, &Tunnel::OnRead) != 0) return Fail();
    } else {
      uv_read_stop(s);
    }
    e.reading = want;
  }

  static void OnAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
    buf->base = new char[kReadSize];
    buf->len = kReadSize;
  }

  static void OnRead(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
    End& e = *static_cast<End*>(s->data);
    Tunnel* t = e.tunnel;
    std::unique_ptr<char[]> owned(buf->base);
    if (n > 0) {
      t->Write(1 - e.index, std::string(buf->base, size_t(n)));
      t->UpdateReading(e.index);
      return;
    }
    if (n == 0) return;
    if (n == UV_EOF) {
      e.read_eof = true;
      t->UpdateReading(e.index);
      t->ShutdownWhenDrained(t->peer(e));
      return;
    }
    t->Fail();
  }

  void Write(int to, std::string data) {
    End& e = ends_[to];
    if (failed_) return;
    auto* w = new WriteReq;
    w->data = std::move(data);
    w->to = &e;
    w->req.data = this;
    e.queued += w->data.size();
    uv_buf_t b = uv_buf_init(w->data.data(), unsigned(w->data.size()));
    if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(e.tcp), &b, 1, &Tunnel::OnWritten) != 0) {
      e.queued -= w->data.size();
      delete w;
      Fail();
    }
  }

  static void OnWritten(uv_write_t* req, int status) {
    auto* w = reinterpret_cast<WriteReq*>(req);
    Tunnel* t = static_cast<Tunnel*>(req->data);
    End& e = *w->to;
    e.queued -= w->data.size();
    delete w;
    if (status != 0) return t->Fail();
    t->UpdateReading(1 - e.index);
    t->ShutdownWhenDrained(e);
  }

  // Passes a half-close on once everything read before the EOF was written.
  void ShutdownWhenDrained(End& to) {
    if (failed_ || to.shut || !peer(to).read_eof || to.queued > 0) return;
    to.shut = true;
    auto* req = new uv_shutdown_t;
    req->data = this;
    if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(to.tcp), [](uv_shutdown_t* r, int) {
          Tunnel* t = static_cast<Tunnel*>(r->data);
          delete r;
          t->MaybeClose();
        }) != 0) {
      delete req;
      Fail();
    }
  }

  void MaybeClose() {
    if (ends_[0].shut && ends_[1].shut) CloseAll();
  }

  void Fail() {
    if (failed_) return;
    failed_ = true;
    CloseAll();
  }

  void CloseAll() {
    for (End& e : ends_) {
      if (e.closed) continue;
      e.closed = true;
      uv_close(reinterpret_cast<uv_handle_t*>(e.tcp), [](uv_handle_t* h) {
        End& end = *static_cast<End*>(h->data);
        Tunnel* t = end.tunnel;
        delete reinterpret_cast<uv_tcp_t*>(h);
        if (++t->handles_closed_ == 2) {
          std::function<void()> done = std::move(t->on_closed_);
          delete t;
          if (done) done();
        }
      });
    }
  }

  End ends_[2];
  bool failed_ = false;
  int handles_closed_ = 0;
  std::function<void()> on_closed_;
};

Tunnel* StartTunnel(uv_tcp_t* client, std::string client_early, uv_tcp_t* target, std::string target_early,
                    std::function<void()> on_closed) {
  auto* t = new Tunnel(client, target, std::move(on_closed));
  t->Start(std::move(client_early), std::move(target_early));
  return t;
}

void CloseTunnel(Tunnel* tunnel) { tunnel->Close(); }

}  // namespace litefs::proxy
