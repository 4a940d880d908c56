// See commit_server.h.
#include "sidecar/commit_server.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "sidecar/fsutil.h"
#include "sidecar/log.h"
#include "vfs/commit_protocol.h"
#include "vfs/connection_page.h"

namespace litefs {

struct CommitServer::Conn {
  uv_pipe_t pipe;
  CommitServer* server = nullptr;
  wire::FrameReader reader;
  bool waiting = false;   // a request is being served; later ones wait
  bool closing = false;
  bool handle_closed = false;  // freed when both the handle and any commit are done
  uint32_t pid = 0;
  std::string db;          // the database it was last approved to write
  bool writing = false;    // without a page: Begin approved, no Commit/Abort yet
  // The connection page (vfs/connection_page.h), or none (a failed memfd).
  // The app clears its mark; the sidecar sets it when it approves a Begin.
  uint8_t* page = nullptr;

  ~Conn() {
    if (page) munmap(page, connection_page::kSize);
  }
  std::atomic_ref<uint64_t> PageWord(size_t offset) const {
    return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(page + offset));
  }
  // Inside a write transaction the sidecar approved (or was told of).
  bool Writing() const {
    if (db.empty()) return false;
    return page ? PageWord(connection_page::kWritingOffset).load(std::memory_order_seq_cst) != 0 : writing;
  }
  // Between its commit window check and its handed-over commit (a
  // connection without a page holds the window's lock instead).
  bool Committing() const {
    return page && PageWord(connection_page::kCommittingOffset).load(std::memory_order_seq_cst) != 0;
  }
  void MarkWriting(std::string name) {
    db = std::move(name);
    if (page) {
      PageWord(connection_page::kWritingOffset).store(1, std::memory_order_seq_cst);
    } else {
      writing = true;
    }
  }
  // A Commit or Abort message. With a page the app clears its own mark: it
  // may already have begun its next transaction when this is read.
  void EndedByMessage() {
    if (!page) writing = false;
  }
};

namespace {

// True if a live process accepts connections on `path`.
bool SocketIsLive(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  bool live = connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return live;
}

// A fresh connection page and its descriptor (to send), or nullptr.
uint8_t* NewConnectionPage(fs::UniqueFd& fd_out) {
  int fd = memfd_create("litefs-connection", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return nullptr;
  fs::UniqueFd fd_owner(fd);
  if (ftruncate(fd, off_t(connection_page::kSize)) != 0) return nullptr;
  // Sealed at its size: an app that shrank it would make the sidecar's
  // reads of the page fault (SIGBUS).
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) return nullptr;
  void* p = mmap(nullptr, connection_page::kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return nullptr;
  std::memcpy(p, connection_page::kMagic, sizeof connection_page::kMagic);
  fd_out = std::move(fd_owner);
  return static_cast<uint8_t*>(p);
}

// Sends `bytes` with `fds` attached, at once; false if the socket would not
// take all of it right now (nothing was sent then).
bool SendWithDescriptors(int sock, const std::string& bytes, const std::vector<int>& fds) {
  struct iovec iov = {const_cast<char*>(bytes.data()), bytes.size()};
  alignas(struct cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  if (fds.empty() || fds.size() > 2) return false;
  struct msghdr mh {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
  struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
  std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  for (;;) {
    ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    // A stream socket sends a message this small whole or not at all.
    return n == ssize_t(bytes.size());
  }
}

wire::Message Reply(wire::MsgType type, std::string text = {}) {
  wire::Message m;
  m.type = type;
  m.text = std::move(text);
  return m;
}

}  // namespace

CommitServer::CommitServer(uv_loop_t* loop, Store& store) : loop_(loop), store_(store) {
  store_.SetCommitMessageReader([this] { ReadPendingMessages(); });
}

CommitServer::~CommitServer() {
  store_.SetCommitMessageReader(nullptr);
  // Close() must have run; handles are owned by the loop until their close callbacks.
}

void CommitServer::ReadPendingMessages() {
  // Everything the apps have sent first, then handled in order per
  // connection (one waiting for an answer handles nothing more). A message
  // handled here may ask again: every connection it could reach up the
  // stack is waiting by then.
  std::vector<Conn*> conns(conns_.begin(), conns_.end());
  for (Conn* c : conns) {
    uv_os_fd_t fd;
    if (c->closing || uv_fileno(reinterpret_cast<uv_handle_t*>(&c->pipe), &fd) != 0) continue;
    uint8_t buf[4096];
    for (int reads = 0; reads < 64; reads++) {
      ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;  // nothing more now; an end or an error is libuv's to report
      c->reader.Append({buf, size_t(n)});
    }
  }
  for (Conn* c : conns) {
    if (conns_.count(c) && !c->closing) Process(c);
  }
}

Status CommitServer::Listen(const std::string& path) {
  struct sockaddr_un probe;
  if (path.size() >= sizeof probe.sun_path) {
    return Status::Error("commit socket path is too long (" + std::to_string(path.size()) +
                         " bytes, the limit is " + std::to_string(sizeof probe.sun_path - 1) +
                         "): " + path + "; use a shorter dir");
  }
  if (SocketIsLive(path)) {
    return Status::Error("another litefs sidecar is already serving " + path);
  }
  unlink(path.c_str());  // a stale socket from a sidecar that died
  server_ = new uv_pipe_t;
  uv_pipe_init(loop_, server_, 0);
  server_->data = this;
  int rc = uv_pipe_bind(server_, path.c_str());
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(server_), 128, OnConnection);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(server_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_pipe_t*>(h); });
    server_ = nullptr;
    return Status::Error("listen on " + path + ": " + uv_strerror(rc));
  }
  // Apps may run as another user (another container of the pod).
  chmod(path.c_str(), 0666);
  path_ = path;
  Result<std::unique_ptr<SidecarLock>> lock = SidecarLock::Create();
  if (lock.ok()) {
    lock_ = std::move(*lock);
  } else {
    log::Warn("apps will peek at the commit socket to see this sidecar alive",
              {{"error", lock.message()}});
  }
  return Status();
}

void CommitServer::OnConnection(uv_stream_t* stream, int status) {
  auto* self = static_cast<CommitServer*>(stream->data);
  if (status < 0) return;
  auto* conn = new Conn;
  conn->server = self;
  uv_pipe_init(self->loop_, &conn->pipe, 0);
  conn->pipe.data = conn;
  if (uv_accept(stream, reinterpret_cast<uv_stream_t*>(&conn->pipe)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&conn->pipe),
             [](uv_handle_t* h) { delete static_cast<Conn*>(h->data); });
    return;
  }
  self->conns_.insert(conn);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&conn->pipe),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];
        buf->len = suggested;
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* c = static_cast<Conn*>(s->data);
        if (n > 0) c->reader.Append({reinterpret_cast<uint8_t*>(buf->base), size_t(n)});
        delete[] buf->base;
        if (n < 0) {
          c->server->Drop(c);
          return;
        }
        c->server->Process(c);
      });
}

void CommitServer::Process(Conn* conn) {
  while (!conn->waiting && !conn->closing) {
    wire::Message msg;
    Result<bool> got = conn->reader.Next(msg);
    if (!got.ok()) {
      log::Warn("bad message on the commit socket; dropping the connection",
                {{"pid", std::to_string(conn->pid)}, {"error", got.message()}});
      Drop(conn);
      return;
    }
    if (!*got) return;
    Handle(conn, std::move(msg));
  }
}

void CommitServer::Handle(Conn* conn, wire::Message msg) {
  switch (msg.type) {
    case wire::MsgType::kHello:
      conn->pid = msg.pid;
      if (msg.version != wire::kProtocolVersion) {
        Reply(conn, litefs::Reply(wire::MsgType::kError,
                                  "protocol version " + std::to_string(msg.version) +
                                      " is not supported (this sidecar speaks " +
                                      std::to_string(wire::kProtocolVersion) + ")"));
        return;
      }
      AnswerHello(conn);
      return;

    case wire::MsgType::kBegin: {
      if (std::optional<wire::Message> no = Refusal()) {
        Reply(conn, *no);
        return;
      }
      if (drained_) {
        Reply(conn, litefs::Reply(wire::MsgType::kBusy, "the primary is handing over; retry shortly"));
        return;
      }
      Result<Database*> db = store_.GetOrCreate(msg.text);
      if (!db.ok()) {
        Reply(conn, litefs::Reply(wire::MsgType::kError, db.message()));
        return;
      }
      Database* d = *db;
      if (d->recovering()) {
        // A database seen for the first time (or being checked): answer
        // once it is settled rather than make the app retry.
        conn->waiting = true;
        d->WhenSettled([this, conn, d] {
          if (!Resume(conn)) return;
          AnswerBegin(conn, d);
          Process(conn);
        });
        return;
      }
      AnswerBegin(conn, d);
      return;
    }

    case wire::MsgType::kCommit: {
      conn->EndedByMessage();
      Database* db = store_.Find(msg.text);
      if (db && !(msg.flags & wire::kCommitFlush)) db->NoteCommitMessage();
      // The app checked the commit window right before its commit point,
      // so a Commit that arrives while this node is still the primary is
      // recorded even past the lease deadline: it committed inside the
      // window (stepping down waits for these, commit_window.h).
      const bool async = msg.flags & wire::kCommitAsync;
      if ((msg.flags & wire::kCommitFlush) && (!store_.is_primary() || !db)) {
        // Nothing of this node's to capture: a replica's WAL is the
        // sidecar's, and a database never seen has no history to continue.
        Reply(conn, litefs::Reply(wire::MsgType::kOk));
        return;
      }
      if (!store_.is_primary() || !db) {
        // A late async WAL commit was recorded by the step-down, which
        // captures every WAL frame committed while the window was open (its
        // commit frame was published before the app let go of the window);
        // so was an async rollback-mode one (the step-down waits for the
        // database file's last commit to be captured).
        if (async && ((msg.flags & wire::kCommitWal) || !db)) return;
        if (async) {
          db->Recover();
          return;
        }
        // Only an app stalled past the step-down gets here: its commit
        // happened in its files but is not recorded. Recovery records it as
        // a local transaction (one the primary does not have, so this node
        // resyncs by snapshot).
        if (db) db->Recover();
        Reply(conn, litefs::Reply(wire::MsgType::kError,
                                  db ? "this node stopped accepting commits (no longer the primary, or its lease "
                                       "could not be renewed); the transaction is not replicated"
                                     : "unknown database " + msg.text));
        CheckDrained();
        return;
      }
      commits_in_progress_++;
      if (async) {
        // No answer: the frames wait in the WAL, and the next message of
        // this connection is read at once.
        db->Commit(std::move(msg), [this](const Result<ltx::Pos>&) { CommitFinished(); });
        return;
      }
      conn->waiting = true;
      db->Commit(std::move(msg), [this, conn](Result<ltx::Pos> pos) {
                   CommitFinished();
                   if (!Resume(conn)) return;
                   wire::Message reply;
                   if (pos.ok()) {
                     reply.type = wire::MsgType::kOk;
                     reply.txid = pos->txid;
                     reply.checksum = pos->checksum;
                   } else {
                     reply = litefs::Reply(wire::MsgType::kError, pos.message());
                   }
                   Reply(conn, reply);
                   Process(conn);
                 });
      return;
    }

    case wire::MsgType::kAwaitCapture: {
      // Waiting before reading the other connections' messages: this one's
      // next must wait for the answer.
      conn->waiting = true;
      ReadPendingMessages();
      Database* db = store_.Find(msg.text);
      if (!db || db->RollbackCommitsCaptured()) {
        if (!Resume(conn)) return;
        Reply(conn, litefs::Reply(wire::MsgType::kOk));
        return;
      }
      db->WhenRollbackCommitsCaptured([this, conn] {
        if (!Resume(conn)) return;
        Reply(conn, litefs::Reply(wire::MsgType::kOk));
        Process(conn);
      });
      return;
    }

    case wire::MsgType::kAbort:
      conn->EndedByMessage();
      CheckDrained();
      return;

    case wire::MsgType::kBegun:
      // Begun without asking, on an approval the commit window says still
      // holds: tracked like an approved Begin.
      if (Database* db = store_.Find(msg.text)) conn->MarkWriting(db->name());
      return;

    default:
      log::Warn("unexpected message on the commit socket", {{"type", std::to_string(int(msg.type))}});
      Drop(conn);
      return;
  }
}

std::optional<wire::Message> CommitServer::Refusal() const {
  if (!store_.is_primary()) {
    const auto& p = store_.primary();
    return litefs::Reply(wire::MsgType::kReadOnly,
                         p ? p->hostname : "unknown (no primary is reachable right now)");
  }
  if (!store_.approving_writes()) {
    return litefs::Reply(wire::MsgType::kBusy,
                         "the primary could not renew its lease in time; writes are paused until it "
                         "does or another node takes over");
  }
  return std::nullopt;
}

void CommitServer::CommitFinished() {
  if (--commits_in_progress_ > 0) return;
  std::vector<std::function<void()>> waiters;
  waiters.swap(idle_waiters_);
  for (auto& fn : waiters) fn();
  CheckDrained();
}

bool CommitServer::NoCommitInFlight() const {
  // After the window was published closed: an app marks its page before it
  // reads the window (vfs/db_file.cc).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (const Conn* c : conns_) {
    if (c->Committing()) return false;
  }
  return true;
}

size_t CommitServer::open_write_transactions() const {
  size_t n = 0;
  for (const Conn* c : conns_) n += c->Writing() ? 1 : 0;
  return n;
}

void CommitServer::Drain(std::chrono::milliseconds limit, std::function<void()> done) {
  if (drained_) {  // already draining: both finish together
    auto first = std::move(drained_);
    drained_ = [first = std::move(first), done = std::move(done)] {
      first();
      done();
    };
    return;
  }
  drained_ = std::move(done);
  store_.WithdrawWriteApprovals();  // new writers ask, and are told to wait
  if (!drain_timer_) {
    drain_timer_ = new uv_timer_t;
    uv_timer_init(loop_, drain_timer_);
    drain_timer_->data = this;
  }
  uv_timer_start(drain_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<CommitServer*>(t->data);
    if (!self->drained_) return;
    log::Warn("write transactions still open after the drain limit; they will not be recorded",
              {{"open", std::to_string(self->open_write_transactions())}});
    uv_timer_stop(self->drain_poll_timer_);
    auto fn = std::move(self->drained_);
    self->drained_ = nullptr;
    fn();
  }, uint64_t(limit.count()), 0);
  // Apps with a connection page end their transactions without a message:
  // look again every millisecond.
  if (!drain_poll_timer_) {
    drain_poll_timer_ = new uv_timer_t;
    uv_timer_init(loop_, drain_poll_timer_);
    drain_poll_timer_->data = this;
  }
  uv_timer_start(drain_poll_timer_, [](uv_timer_t* t) { static_cast<CommitServer*>(t->data)->CheckDrained(); },
                 1, 1);
  CheckDrained();
}

void CommitServer::CheckDrained() {
  if (!drained_ || commits_in_progress_ > 0 || open_write_transactions() > 0) return;
  uv_timer_stop(drain_timer_);
  uv_timer_stop(drain_poll_timer_);
  auto fn = std::move(drained_);
  drained_ = nullptr;
  fn();
}

void CommitServer::WhenNoCommitsInProgress(std::function<void()> fn) {
  if (commits_in_progress_ == 0) return fn();
  idle_waiters_.push_back(std::move(fn));
}

void CommitServer::AnswerBegin(Conn* conn, Database* db) {
  if (std::optional<wire::Message> no = Refusal()) {
    Reply(conn, *no);
    return;
  }
  if (!db->writable()) {
    db->Recover();  // the last recovery failed: try again, and let the app retry
    Reply(conn, litefs::Reply(wire::MsgType::kBusy, db->problem()));
    return;
  }
  if (drained_) {
    Reply(conn, litefs::Reply(wire::MsgType::kBusy, "the primary is handing over; retry shortly"));
    return;
  }
  if (db->import_waiting()) {
    Reply(conn, litefs::Reply(wire::MsgType::kBusy, "an import is waiting for the write lock"));
    return;
  }
  conn->MarkWriting(db->name());
  db->NoteAppWriter();
  wire::Message ok = litefs::Reply(wire::MsgType::kOk);
  ok.capture_slot = store_.CaptureSlot(*db);
  Reply(conn, ok);
}

void CommitServer::AnswerHello(Conn* conn) {
  wire::Message ok = litefs::Reply(wire::MsgType::kOk);
  if (!conn->page && uv_stream_get_write_queue_size(reinterpret_cast<uv_stream_t*>(&conn->pipe)) == 0) {
    fs::UniqueFd fd;
    uint8_t* page = NewConnectionPage(fd);
    uv_os_fd_t sock;
    if (page && uv_fileno(reinterpret_cast<uv_handle_t*>(&conn->pipe), &sock) == 0) {
      std::string bytes;
      wire::EncodeMessage(ok, bytes);
      std::vector<int> fds = {fd.get()};
      if (lock_) fds.push_back(lock_->fd());
      if (SendWithDescriptors(sock, bytes, fds)) {
        conn->page = page;
        return;
      }
    }
    if (page) munmap(page, connection_page::kSize);
  }
  Reply(conn, ok);  // without a page the app announces with messages
}

bool CommitServer::Resume(Conn* conn) {
  conn->waiting = false;
  if (!conn->closing) return true;
  if (conn->handle_closed) delete conn;
  return false;
}

void CommitServer::Reply(Conn* conn, const wire::Message& msg) {
  struct WriteReq {
    uv_write_t req;
    std::string bytes;
  };
  auto* w = new WriteReq;
  wire::EncodeMessage(msg, w->bytes);
  uv_buf_t buf = uv_buf_init(w->bytes.data(), unsigned(w->bytes.size()));
  int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&conn->pipe), &buf, 1,
                    [](uv_write_t* req, int) { delete reinterpret_cast<WriteReq*>(req); });
  if (rc != 0) {
    delete w;
    Drop(conn);
  }
}

void CommitServer::Drop(Conn* conn) {
  if (conn->closing) return;
  conn->closing = true;
  conns_.erase(conn);
  if (conn->Writing()) {
    // The app vanished inside a write transaction, maybe after its commit
    // point: make the database and the log agree again.
    if (Database* db = store_.Find(conn->db)) {
      log::Warn("a writer disconnected mid-transaction; checking the database",
                {{"db", conn->db}, {"pid", std::to_string(conn->pid)}});
      db->Recover();
    }
  }
  conn->db.clear();
  if (conn->page) {
    // Before the socket closes: the app may look here rather than at it.
    conn->PageWord(connection_page::kDroppedOffset).store(1, std::memory_order_seq_cst);
  }
  CheckDrained();
  uv_close(reinterpret_cast<uv_handle_t*>(&conn->pipe), [](uv_handle_t* h) {
    auto* c = static_cast<Conn*>(h->data);
    // A commit still running holds a pointer to the connection: whichever
    // finishes last frees it.
    c->handle_closed = true;
    if (!c->waiting) delete c;
  });
}

void CommitServer::Close(std::function<void()> done) {
  if (lock_) lock_->Release();  // apps see this sidecar gone from here on
  if (drained_) {
    auto fn = std::move(drained_);
    drained_ = nullptr;
    fn();
  }
  for (uv_timer_t** timer : {&drain_timer_, &drain_poll_timer_}) {
    if (!*timer) continue;
    uv_close(reinterpret_cast<uv_handle_t*>(*timer),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    *timer = nullptr;
  }
  for (Conn* c : std::set<Conn*>(conns_)) Drop(c);
  if (!server_) {
    if (done) done();
    return;
  }
  auto* cb = new std::function<void()>(std::move(done));
  server_->data = cb;
  uv_close(reinterpret_cast<uv_handle_t*>(server_), [](uv_handle_t* h) {
    auto* fn = static_cast<std::function<void()>*>(h->data);
    delete reinterpret_cast<uv_pipe_t*>(h);
    if (*fn) (*fn)();
    delete fn;
  });
  server_ = nullptr;
  unlink(path_.c_str());
}

}  // namespace litefs
