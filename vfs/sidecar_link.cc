// See sidecar_link.h.
#include "vfs/sidecar_link.h"

#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "vfs/connection_page.h"
#include "vfs/process_id.h"

namespace litefs::vfs {
namespace {

constexpr int kHelloTimeoutMs = 5000;

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

SidecarLink::~SidecarLink() { Disconnect(); }

void SidecarLink::Disconnect() {
  if (fd_ >= 0 && pid_ == CurrentPid()) close(fd_);
  fd_ = -1;
  reader_ = wire::FrameReader();
  // A forked child only drops its copies.
  if (page_) munmap(page_, connection_page::kSize);
  page_ = nullptr;
  if (lock_page_) munmap(const_cast<uint8_t*>(lock_page_), connection_page::sidecar_lock::kSize);
  lock_page_ = nullptr;
  DropReceivedFds();
}

void SidecarLink::DropReceivedFds() {
  for (int fd : received_fds_) close(fd);
  received_fds_.clear();
}

namespace {

// Maps what `fd` holds if it starts with `magic`; nullptr otherwise.
uint8_t* MapIfMagic(int fd, size_t size, int prot, const char (&magic)[8]) {
  void* p = mmap(nullptr, size, prot, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return nullptr;
  if (std::memcmp(p, magic, sizeof magic) != 0) {
    munmap(p, size);
    return nullptr;
  }
  return static_cast<uint8_t*>(p);
}

}  // namespace

// Maps the pages the sidecar sent with its answer to Hello, if they are
// what they should be: the connection page, then the sidecar lock page.
void SidecarLink::MapPages() {
  if (received_fds_.size() >= 1) {
    page_ = MapIfMagic(received_fds_[0], connection_page::kSize, PROT_READ | PROT_WRITE,
                       connection_page::kMagic);
  }
  if (page_ && received_fds_.size() >= 2) {
    lock_page_ = MapIfMagic(received_fds_[1], connection_page::sidecar_lock::kSize, PROT_READ,
                            connection_page::sidecar_lock::kMagic);
  }
  DropReceivedFds();
}

bool SidecarLink::PeerAlive() {
  if (fd_ < 0 || pid_ != CurrentPid()) return false;
  if (lock_page_ && page_) {
    if (connection_page::SidecarServes(lock_page_, page_)) return true;
    Disconnect();  // it stopped, died or dropped this connection
    return false;
  }
  char c;
  for (;;) {
    ssize_t n = recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    // 0: the sidecar closed it; an error: gone too. (No reply is ever
    // pending between calls, so data here is as unexpected as the end.)
    Disconnect();
    return false;
  }
}

bool SidecarLink::connected() const { return fd_ >= 0 && pid_ == CurrentPid(); }

bool SidecarLink::has_page() const { return page_ && connected(); }

void SidecarLink::Writing(bool writing) { SetPageWord(connection_page::kWritingOffset, writing); }

void SidecarLink::Committing(bool committing) {
  SetPageWord(connection_page::kCommittingOffset, committing);
}

void SidecarLink::SetPageWord(size_t offset, bool on) {
  if (!has_page()) return;
  auto* word = reinterpret_cast<uint64_t*>(page_ + offset);
  // seq_cst and a fence: ordered before the reads of the commit window that
  // follow (generation, deadline, capture-armed word), as the sidecar
  // orders its writes there before it reads the marks (commit_server.cc).
  std::atomic_ref<uint64_t>(*word).store(on ? 1 : 0, std::memory_order_seq_cst);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

Status SidecarLink::Connect() {
  Disconnect();
  struct sockaddr_un addr;
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof addr.sun_path) {
    return Status::Error("sidecar socket path is too long: " + socket_path_);
  }
  std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Error(std::string("socket: ") + strerror(errno));
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    close(fd);
    return Status::Error("cannot reach the litefs sidecar at " + socket_path_ + ": " +
                         strerror(err));
  }
  fd_ = fd;
  pid_ = CurrentPid();
  wire::Message hello;
  hello.type = wire::MsgType::kHello;
  hello.version = wire::kProtocolVersion;
  hello.pid = uint32_t(pid_);
  out_.clear();
  wire::EncodeMessage(hello, out_);
  Status st = SendAll(out_);
  if (!st.ok()) return st;
  Result<wire::Message> reply = Receive(kHelloTimeoutMs);
  if (!reply.ok()) return reply.status();
  if (reply->type != wire::MsgType::kOk) {
    std::string why = reply->text;
    Disconnect();
    return Status::Error("the litefs sidecar refused this library: " + why);
  }
  MapPages();
  return Status();
}

Status SidecarLink::SendAll(const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      Disconnect();
      return Status::Error(std::string("lost the litefs sidecar: ") + strerror(err));
    }
    off += size_t(n);
  }
  return Status();
}

Result<wire::Message> SidecarLink::Receive(int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  uint8_t buf[4096];
  for (;;) {
    wire::Message msg;
    Result<bool> got = reader_.Next(msg);
    if (!got.ok()) {
      Disconnect();
      return Status::Error("bad reply from the litefs sidecar: " + got.message());
    }
    if (*got) return msg;
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      Disconnect();
      return Status::Error("the litefs sidecar did not answer within " +
                           std::to_string(timeout_ms) + " ms");
    }
    struct pollfd pfd = {fd_, POLLIN, 0};
    int r = poll(&pfd, 1, int(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;  // timeout is handled at the top of the loop
    // recvmsg: the answer to Hello may carry the connection and lock pages.
    struct iovec iov = {buf, sizeof buf};
    alignas(struct cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
    struct msghdr mh {};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    ssize_t n = recvmsg(fd_, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      DropReceivedFds();  // only the last reply's descriptors count
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; i++) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
        received_fds_.push_back(fd);
      }
    }
    if (n <= 0) {
      Disconnect();
      return Status::Error("the litefs sidecar closed the connection");
    }
    reader_.Append({buf, size_t(n)});
  }
}

Result<wire::Message> SidecarLink::Call(const wire::Message& request, int timeout_ms,
                                        bool may_reconnect) {
  if (fd_ >= 0 && pid_ != CurrentPid()) Disconnect();  // forked: the socket is the parent's
  bool fresh = false;
  if (fd_ < 0) {
    LITEFS_RETURN_IF_ERROR(Connect());
    fresh = true;
  }
  out_.clear();
  wire::EncodeMessage(request, out_);
  Status st = SendAll(out_);
  if (!st.ok() && may_reconnect && !fresh) {
    LITEFS_RETURN_IF_ERROR(Connect());
    st = SendAll(out_);
  }
  if (!st.ok()) return st;
  Result<wire::Message> reply = Receive(timeout_ms);
  if (!reply.ok() && may_reconnect && !fresh && !connected()) {
    // The sidecar restarted since our last call: the request died with the
    // old connection before it could be processed. Try once more.
    LITEFS_RETURN_IF_ERROR(Connect());
    LITEFS_RETURN_IF_ERROR(SendAll(out_));
    return Receive(timeout_ms);
  }
  return reply;
}

void SidecarLink::Post(const wire::Message& request) {
  if (fd_ < 0 || pid_ != CurrentPid()) return;  // nothing to tell a sidecar we are not talking to
  out_.clear();
  wire::EncodeMessage(request, out_);
  (void)SendAll(out_);
}

}  // namespace litefs::vfs

