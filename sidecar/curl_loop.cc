// CurlLoop: libcurl's multi_socket API on libuv (uv_poll_t per socket, one
// uv_timer_t for curl's timeout), with deferred easy-handle cleanup so owners
// may start, pause, resume and cancel transfers from inside callbacks.
#include "sidecar/curl_loop.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <string_view>

namespace litefs::http {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlLoop::Transfer {
  CurlLoop* owner = nullptr;
  uint64_t id = 0;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  ClientRequest req;
  bool added = false;        // in the multi handle
  bool cancelled = false;
  bool want_pause = false;   // owner wants body bytes held
  bool curl_paused = false;  // our write callback returned CURL_WRITEFUNC_PAUSE
  bool headers_done = false;
  int status = 0;            // from the latest status line
  HeaderList response_headers;
  std::string setup_error;
  uv_timer_t* idle = nullptr;  // idle_timeout_ms clock (heap: freed on close)
  char errbuf[CURL_ERROR_SIZE] = {};

  std::string Describe() const { return req.method + " " + req.url; }
};

struct CurlLoop::Socket {
  CurlLoop* owner = nullptr;
  curl_socket_t fd = CURL_SOCKET_BAD;
  uv_poll_t poll;
};

namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

CURLM* Multi(void* m) { return static_cast<CURLM*>(m); }

}  // namespace

CurlLoop::CurlLoop(uv_loop_t* loop) : loop_(loop) {
  GlobalInit();
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  kick_ = new uv_timer_t;
  uv_timer_init(loop_, kick_);
  kick_->data = this;
  CURLM* multi = curl_multi_init();
  multi_ = multi;
  if (multi != nullptr) {
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &CurlLoop::OnSocket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &CurlLoop::OnTimerRequest);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
  }
}

CurlLoop::~CurlLoop() {
  for (auto& [id, t] : transfers_) {
    t->cancelled = true;
    Destroy(std::move(t));
  }
  transfers_.clear();
  auto dead = std::move(graveyard_);
  graveyard_.clear();
  for (auto& t : dead) Destroy(std::move(t));
  pending_add_.clear();
  pending_resume_.clear();
  pending_failed_.clear();
  if (multi_ != nullptr) curl_multi_cleanup(Multi(multi_));
  multi_ = nullptr;
  while (!sockets_.empty()) CloseSocket(sockets_.back());
  auto close_timer = [](uv_timer_t* timer) {
    uv_timer_stop(timer);
    uv_close(reinterpret_cast<uv_handle_t*>(timer),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  };
  close_timer(timer_);
  close_timer(kick_);
}

std::string CurlLoop::Configure(Transfer* t) {
  const ClientRequest& req = t->req;
  CURL* easy = curl_easy_init();
  if (easy == nullptr) return "curl_easy_init failed";
  t->easy = easy;
  CURLcode rc = CURLE_OK;
  auto set = [&](CURLoption opt, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(easy, opt, value);
  };
  set(CURLOPT_URL, req.url.c_str());
  set(CURLOPT_PRIVATE, static_cast<void*>(t));
  set(CURLOPT_ERRORBUFFER, t->errbuf);
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  if (!req.tls.ca_file.empty()) set(CURLOPT_CAINFO, req.tls.ca_file.c_str());
  if (!req.tls.cert_file.empty()) set(CURLOPT_SSLCERT, req.tls.cert_file.c_str());
  if (!req.tls.key_file.empty()) set(CURLOPT_SSLKEY, req.tls.key_file.c_str());
  set(CURLOPT_NOPROXY, "*");
  set(CURLOPT_TCP_KEEPALIVE, 1L);
  set(CURLOPT_TCP_NODELAY, 1L);
  set(CURLOPT_CONNECTTIMEOUT_MS, req.connect_timeout_ms);
  set(CURLOPT_TIMEOUT_MS, req.total_timeout_ms);
  if (req.low_speed_time_s > 0) {
    set(CURLOPT_LOW_SPEED_TIME, req.low_speed_time_s);
    set(CURLOPT_LOW_SPEED_LIMIT, req.low_speed_limit);
  }
  set(CURLOPT_HEADERFUNCTION, &CurlLoop::OnHeaderLine);
  set(CURLOPT_HEADERDATA, static_cast<void*>(t));
  set(CURLOPT_WRITEFUNCTION, &CurlLoop::OnBody);
  set(CURLOPT_WRITEDATA, static_cast<void*>(t));

  const std::string& m = req.method;
  const bool send_body = !req.body.empty() || m == "POST" || m == "PUT" || m == "PATCH";
  if (m == "HEAD") {
    set(CURLOPT_NOBODY, 1L);
  } else if (send_body) {
    set(CURLOPT_POST, 1L);
    set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    set(CURLOPT_POSTFIELDS, req.body.data());  // t owns req: stable address
    if (m != "POST") set(CURLOPT_CUSTOMREQUEST, m.c_str());
  } else {
    set(CURLOPT_HTTPGET, 1L);
    if (m != "GET") set(CURLOPT_CUSTOMREQUEST, m.c_str());
  }

  bool has_expect = false, has_content_type = false;
  for (const auto& [name, value] : req.headers) {
    has_expect = has_expect || IEquals(name, "Expect");
    has_content_type = has_content_type || IEquals(name, "Content-Type");
    // "Name;" is curl's spelling of a header with an empty value.
    const std::string line = value.empty() ? name + ";" : name + ": " + value;
    curl_slist* next = curl_slist_append(t->header_list, line.c_str());
    if (next == nullptr) return "out of memory building headers";
    t->header_list = next;
  }
  // No "Expect: 100-continue" round trip, no implicit form Content-Type.
  for (const char* suppress : {has_expect ? nullptr : "Expect:",
                               has_content_type ? nullptr : "Content-Type:"}) {
    if (suppress == nullptr) continue;
    curl_slist* next = curl_slist_append(t->header_list, suppress);
    if (next == nullptr) return "out of memory building headers";
    t->header_list = next;
  }
  set(CURLOPT_HTTPHEADER, t->header_list);
  if (rc != CURLE_OK) return std::string("curl_easy_setopt: ") + curl_easy_strerror(rc);
  return "";
}

uint64_t CurlLoop::Start(ClientRequest request) {
  const uint64_t id = next_id_++;
  auto owned = std::make_unique<Transfer>();
  Transfer* t = owned.get();
  t->owner = this;
  t->id = id;
  t->req = std::move(request);
  transfers_.emplace(id, std::move(owned));
  t->setup_error = multi_ == nullptr ? "curl_multi_init failed" : Configure(t);
  if (!t->setup_error.empty()) {
    pending_failed_.push_back(id);
    Kick();
  } else if (in_curl_ > 0) {
    pending_add_.push_back(id);  // curl forbids adding from inside its callbacks
    Kick();
  } else {
    Add(t);
  }
  return id;
}

void CurlLoop::Add(Transfer* t) {
  const CURLMcode rc = curl_multi_add_handle(Multi(multi_), t->easy);
  if (rc != CURLM_OK) {
    t->setup_error = std::string("curl_multi_add_handle: ") + curl_multi_strerror(rc);
    pending_failed_.push_back(t->id);
    Kick();
    return;
  }
  t->added = true;
  if (t->req.idle_timeout_ms > 0) {
    t->idle = new uv_timer_t;
    uv_timer_init(loop_, t->idle);
    t->idle->data = t;
    IdleClock(t);
  }
}

void CurlLoop::IdleClock(Transfer* t) {
  if (t->idle == nullptr) return;
  if (t->want_pause && t->curl_paused) {
    uv_timer_stop(t->idle);
  } else {
    uv_timer_start(t->idle, &CurlLoop::OnIdleTimeout,
                   static_cast<uint64_t>(t->req.idle_timeout_ms), 0);
  }
}

void CurlLoop::OnIdleTimeout(uv_timer_t* timer) {
  auto* t = static_cast<Transfer*>(timer->data);
  CurlLoop* self = t->owner;
  auto it = self->transfers_.find(t->id);
  if (it == self->transfers_.end() || self->in_curl_ > 0) return;
  std::unique_ptr<Transfer> owned = std::move(it->second);
  self->transfers_.erase(it);
  long http_status = 0;
  curl_easy_getinfo(owned->easy, CURLINFO_RESPONSE_CODE, &http_status);
  Status status = Status::Error(owned->Describe() + ": no data received for " +
                                std::to_string(owned->req.idle_timeout_ms) +
                                " ms (idle timeout)");
  auto on_done = std::move(owned->req.on_done);
  self->Destroy(std::move(owned));
  if (on_done) on_done(std::move(status), static_cast<int>(http_status));
}

void CurlLoop::Pause(uint64_t id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  // The write callback holds the next bytes (CURL_WRITEFUNC_PAUSE).
  it->second->want_pause = true;
}

void CurlLoop::Resume(uint64_t id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  Transfer* t = it->second.get();
  t->want_pause = false;
  if (t->curl_paused) {
    pending_resume_.push_back(id);
    Kick();
  }
}

void CurlLoop::Cancel(uint64_t id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  std::unique_ptr<Transfer> t = std::move(it->second);
  transfers_.erase(it);
  t->cancelled = true;
  if (in_curl_ > 0) {
    graveyard_.push_back(std::move(t));  // removed once curl has returned
    Kick();
  } else {
    Destroy(std::move(t));
  }
}

void CurlLoop::Destroy(std::unique_ptr<Transfer> t) {
  if (t->added) curl_multi_remove_handle(Multi(multi_), t->easy);
  t->added = false;
  if (t->easy != nullptr) curl_easy_cleanup(t->easy);
  if (t->header_list != nullptr) curl_slist_free_all(t->header_list);
  if (t->idle != nullptr) {
    uv_timer_stop(t->idle);
    uv_close(reinterpret_cast<uv_handle_t*>(t->idle),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    t->idle = nullptr;
  }
}

void CurlLoop::Kick() {
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(kick_))) {
    uv_timer_start(kick_, &CurlLoop::OnKick, 0, 0);
  }
}

void CurlLoop::OnKick(uv_timer_t* timer) { static_cast<CurlLoop*>(timer->data)->Drain(); }

void CurlLoop::SocketAction(int fd, int flags) {
  int running = 0;
  ++in_curl_;
  curl_multi_socket_action(Multi(multi_), fd, flags, &running);
  --in_curl_;
  Drain();
}

void CurlLoop::Drain() {
  if (in_curl_ > 0 || draining_ || multi_ == nullptr) return;
  draining_ = true;
  for (bool progress = true; progress;) {
    progress = false;

    if (!graveyard_.empty()) {
      auto dead = std::move(graveyard_);
      graveyard_.clear();
      for (auto& t : dead) Destroy(std::move(t));
      progress = true;
    }

    while (!pending_add_.empty()) {
      const uint64_t id = pending_add_.front();
      pending_add_.pop_front();
      auto it = transfers_.find(id);
      if (it != transfers_.end() && !it->second->added) Add(it->second.get());
      progress = true;
    }

    while (!pending_resume_.empty()) {
      const uint64_t id = pending_resume_.front();
      pending_resume_.pop_front();
      auto it = transfers_.find(id);
      if (it == transfers_.end()) continue;
      Transfer* t = it->second.get();
      if (t->want_pause || !t->curl_paused) continue;
      t->curl_paused = false;
      IdleClock(t);
      // Held bytes may be delivered from inside this call.
      ++in_curl_;
      curl_easy_pause(t->easy, CURLPAUSE_CONT);
      --in_curl_;
      progress = true;
    }

    while (!pending_failed_.empty()) {
      const uint64_t id = pending_failed_.front();
      pending_failed_.pop_front();
      auto it = transfers_.find(id);
      if (it == transfers_.end()) continue;
      std::unique_ptr<Transfer> t = std::move(it->second);
      transfers_.erase(it);
      auto on_done = std::move(t->req.on_done);
      Status status = Status::Error(t->Describe() + ": " + t->setup_error);
      Destroy(std::move(t));
      if (on_done) on_done(std::move(status), 0);
      progress = true;
    }

    // Collect ids first: an on_done may cancel or start other transfers.
    std::vector<std::pair<uint64_t, CURLcode>> done;
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(Multi(multi_), &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      void* priv = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
      if (priv != nullptr) done.emplace_back(static_cast<Transfer*>(priv)->id, msg->data.result);
    }
    for (const auto& [id, code] : done) {
      Finish(id, code);
      progress = true;
    }
  }
  draining_ = false;
}

void CurlLoop::Finish(uint64_t id, int curl_code) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;  // cancelled meanwhile
  std::unique_ptr<Transfer> t = std::move(it->second);
  transfers_.erase(it);
  long http_status = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &http_status);
  Status status;
  const auto code = static_cast<CURLcode>(curl_code);
  if (code != CURLE_OK) {
    std::string message = t->Describe() + ": " + curl_easy_strerror(code);
    const std::string_view detail = Trim(t->errbuf);
    if (!detail.empty() && detail != curl_easy_strerror(code)) {
      message += " (" + std::string(detail) + ")";
    }
    status = Status::Error(std::move(message));
  }
  auto on_done = std::move(t->req.on_done);
  Destroy(std::move(t));
  if (on_done) on_done(std::move(status), static_cast<int>(http_status));
}

int CurlLoop::OnTimerRequest(void* /*multi*/, long timeout_ms, void* self) {
  auto* loop = static_cast<CurlLoop*>(self);
  if (timeout_ms < 0) {
    uv_timer_stop(loop->timer_);
  } else {
    uv_timer_start(loop->timer_, &CurlLoop::OnTimer, static_cast<uint64_t>(timeout_ms), 0);
  }
  return 0;
}

void CurlLoop::OnTimer(uv_timer_t* timer) {
  static_cast<CurlLoop*>(timer->data)->SocketAction(CURL_SOCKET_TIMEOUT, 0);
}

int CurlLoop::OnSocket(void* /*easy*/, int fd, int what, void* self, void* socket_ctx) {
  auto* loop = static_cast<CurlLoop*>(self);
  auto* s = static_cast<Socket*>(socket_ctx);
  if (what == CURL_POLL_REMOVE) {
    if (s != nullptr) {
      loop->CloseSocket(s);
      curl_multi_assign(Multi(loop->multi_), fd, nullptr);
    }
    return 0;
  }
  if (s == nullptr) {
    s = new Socket;
    s->owner = loop;
    s->fd = fd;
    if (uv_poll_init_socket(loop->loop_, &s->poll, fd) != 0) {
      delete s;
      return -1;
    }
    s->poll.data = s;
    loop->sockets_.push_back(s);
    curl_multi_assign(Multi(loop->multi_), fd, s);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&s->poll, events, &CurlLoop::OnPoll);
  return 0;
}

void CurlLoop::CloseSocket(Socket* s) {
  sockets_.erase(std::remove(sockets_.begin(), sockets_.end(), s), sockets_.end());
  uv_poll_stop(&s->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&s->poll),
           [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); });
}

void CurlLoop::OnPoll(uv_poll_t* poll, int status, int events) {
  auto* s = static_cast<Socket*>(poll->data);
  int flags = 0;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  s->owner->SocketAction(s->fd, flags);
}

size_t CurlLoop::OnHeaderLine(char* data, size_t size, size_t n, void* transfer) {
  auto* t = static_cast<Transfer*>(transfer);
  const size_t len = size * n;
  if (t->cancelled) return 0;
  t->owner->IdleClock(t);
  const std::string_view line = Trim(std::string_view(data, len));
  if (line.substr(0, 5) == "HTTP/") {
    // A new status line: 1xx interim responses are followed by another.
    t->status = 0;
    const size_t sp = line.find(' ');
    for (size_t i = sp == std::string_view::npos ? line.size() : sp + 1;
         i < line.size() && line[i] >= '0' && line[i] <= '9'; i++) {
      t->status = t->status * 10 + (line[i] - '0');
    }
    t->response_headers.clear();
    t->headers_done = false;
  } else if (line.empty()) {
    if (!t->headers_done && t->status >= 200) {
      t->headers_done = true;
      if (t->req.on_headers) t->req.on_headers(t->status, t->response_headers);
    }
  } else if (!t->headers_done) {
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      t->response_headers.emplace_back(std::string(Trim(line.substr(0, colon))),
                                       std::string(Trim(line.substr(colon + 1))));
    }
  }
  return t->cancelled ? 0 : len;
}

size_t CurlLoop::OnBody(char* data, size_t size, size_t n, void* transfer) {
  auto* t = static_cast<Transfer*>(transfer);
  const size_t len = size * n;
  if (t->cancelled) return 0;  // aborts; the handle is removed once curl returns
  if (t->want_pause) {
    t->curl_paused = true;
    t->owner->IdleClock(t);  // stops while paused
    return CURL_WRITEFUNC_PAUSE;
  }
  t->owner->IdleClock(t);
  if (!t->req.on_data || len == 0) return len;
  const DataAction action = t->req.on_data(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data), len));
  if (t->cancelled) return 0;
  if (action == DataAction::kPause) {
    t->want_pause = true;
    t->curl_paused = true;
    t->owner->IdleClock(t);  // stops while paused
    return CURL_WRITEFUNC_PAUSE;
  }
  return len;
}

}  // namespace litefs::http
