// A blocking client for the commit protocol (commit_protocol.h), used by one
// database file handle in the app. Connects lazily, reconnects after the
// sidecar restarts or the process forks, never raises SIGPIPE, and bounds
// every wait so a dead sidecar turns into an error, not a hang.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "ltx/status.h"
#include "vfs/commit_protocol.h"

namespace litefs::vfs {

class SidecarLink {
 public:
  explicit SidecarLink(std::string socket_path) : socket_path_(std::move(socket_path)) {}
  ~SidecarLink();
  SidecarLink(const SidecarLink&) = delete;
  SidecarLink& operator=(const SidecarLink&) = delete;

  // Sends `request` and waits up to `timeout_ms` for its reply. When
  // `may_reconnect`, a connection found dead before the request was sent is
  // replaced once (safe for idempotent requests only).
  Result<wire::Message> Call(const wire::Message& request, int timeout_ms, bool may_reconnect);

  // Sends a request that has no reply; errors only drop the connection.
  void Post(const wire::Message& request);

  // Connected, from this process (a forked child reconnects).
  bool connected() const;
  // Whether the sidecar is still at the other end, without sending it
  // anything: its lock on the connection page (connection_page.h), or a
  // peek at the socket without one; drops a dead connection.
  bool PeerAlive();

  // The connection page (connection_page.h), when the sidecar handed one
  // over: Writing(true) before a write transaction begins, Writing(false)
  // once it ended. False if this connection has none (then announce with
  // messages).
  bool has_page() const;
  void Writing(bool writing);
  // The page's committing mark (connection_page.h); no-op without a page.
  void Committing(bool committing);

 private:
  Status Connect();
  void Disconnect();
  Status SendAll(const std::string& bytes);
  Result<wire::Message> Receive(int timeout_ms);
  void MapPages();
  void DropReceivedFds();
  void SetPageWord(size_t offset, bool on);

  std::string socket_path_;
  int fd_ = -1;
  pid_t pid_ = 0;  // process that opened fd_; a forked child reconnects
  std::string out_;
  wire::FrameReader reader_;
  uint8_t* page_ = nullptr;        // mapped connection page, or none
  const uint8_t* lock_page_ = nullptr;  // the sidecar lock page (read-only), or none
  // Descriptors that came with a reply, not yet taken: the connection page,
  // then the sidecar lock page.
  std::vector<int> received_fds_;
};

}  // namespace litefs::vfs
