// The sidecar end of the commit protocol (vfs/commit_protocol.h): a Unix
// socket in the managed directory that app processes connect to. Approves
// write transactions on the primary (Begin; later ones of the same
// connection may only announce themselves, Begun: vfs/commit_window.h),
// hands captured commits to their Database and answers with the new
// position, and turns a connection that vanished in the middle of a write
// transaction into a recovery of that database (the app may have died
// between its commit point and Commit).
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ltx/status.h"
#include "sidecar/sidecar_lock.h"
#include "sidecar/store.h"

namespace litefs {

class CommitServer {
 public:
  CommitServer(uv_loop_t* loop, Store& store);
  ~CommitServer();

  // Reads every message the apps have sent so far and handles it, without
  // waiting for the loop to report their sockets readable: a rollback-mode
  // commit handed over without waiting is then known to its database
  // (Database::RollbackCommitsCaptured). Store calls it through
  // SetCommitMessageReader.
  void ReadPendingMessages();

  // Binds the socket; refuses when another sidecar is serving it.
  Status Listen(const std::string& path);
  // Stops accepting, drops every connection, removes the socket file.
  void Close(std::function<void()> done);

  size_t connections() const { return conns_.size(); }
  // Commits being recorded now; `fn` runs at once if there are none, else
  // when the last one finishes.
  size_t commits_in_progress() const { return commits_in_progress_; }
  void WhenNoCommitsInProgress(std::function<void()> fn);

  // After the commit window closed: true once no app connection with a
  // connection page is between its window check and its handed-over commit
  // (those without one hold the window's lock: Store::NoCommitInFlight).
  bool NoCommitInFlight() const;

  // Before a voluntary step-down (handoff, shutdown): refuses new write
  // transactions (kBusy) but lets those already approved commit; `done`
  // runs once none is left, or after `limit` (a writer holding its
  // transaction open longer is then refused at its commit).
  void Drain(std::chrono::milliseconds limit, std::function<void()> done);

 private:
  struct Conn;
  static void OnConnection(uv_stream_t* server, int status);
  void Process(Conn* conn);
  void Handle(Conn* conn, wire::Message msg);
  void AnswerBegin(Conn* conn, Database* db);
  // Ok, with the connection page and the sidecar lock page attached when
  // they can be made.
  void AnswerHello(Conn* conn);
  // Marks the connection's pending request done; false if the connection
  // went away meanwhile (and was freed).
  static bool Resume(Conn* conn);
  void Reply(Conn* conn, const wire::Message& msg);
  void Drop(Conn* conn);
  // Why writes are refused now (kReadOnly on a replica, kBusy on a primary
  // past its lease deadline), or nullopt when they are accepted.
  std::optional<wire::Message> Refusal() const;
  void CommitFinished();
  void CheckDrained();
  size_t open_write_transactions() const;

  uv_loop_t* loop_;
  Store& store_;
  std::string path_;
  // Held while this server serves (vfs/connection_page.h); none where the
  // platform cannot provide it.
  std::unique_ptr<SidecarLock> lock_;
  uv_pipe_t* server_ = nullptr;
  std::set<Conn*> conns_;
  size_t commits_in_progress_ = 0;
  std::vector<std::function<void()>> idle_waiters_;
  std::function<void()> drained_;  // set while draining
  uv_timer_t* drain_timer_ = nullptr;       // the drain's limit
  uv_timer_t* drain_poll_timer_ = nullptr;  // while draining: are the transactions over?
};

}  // namespace litefs
