// See db_file.h. Capture rules: ../shared/reference/sqlite-internals.md §2.4, §5.
#include "vfs/db_file.h"

#include <strings.h>
#include <unistd.h>

#include <cstring>

#include <new>
#include <optional>

#include "ltx/io.h"
#include "vfs/commit_protocol.h"
#include "vfs/commit_window.h"
#include "vfs/commit_window_client.h"
#include "vfs/sidecar_link.h"
#include "vfs/vfs_log.h"
#include "vfs/wal_index_header.h"

namespace litefs::vfs {
namespace {

// Waiting for the sidecar: Begin is cheap; a Commit reads and writes every
// page of the transaction, so a large one may take a while.
constexpr int kBeginTimeoutMs = 5000;
constexpr int kCommitTimeoutMs = 10 * 60 * 1000;
constexpr uint64_t kMaxPostedCommitBytes = 4 << 20;
// A writer polls the rollback-captured word this many times, this far apart,
// before it asks the sidecar (AwaitCapture).
constexpr unsigned kCapturePolls = 50;
constexpr unsigned kCapturePollMicros = 20;

// wal-index lock slots (xShmLock offsets).
constexpr int kShmWriteLock = 0;
constexpr int kShmFirstReadLock = 3;
constexpr int kShmLockCount = 8;

struct DbFileState {
  DbFileState(std::string n, const SqliteApi& a, const VfsConfig& c)
      : name(std::move(n)), api(a), link(c.socket_path), window(WindowPath(c)),
        wait_for_capture(c.wait_for_capture) {}

  static std::string WindowPath(const VfsConfig& c) {
    size_t slash = c.socket_path.rfind('/');
    std::string dir = slash == std::string::npos ? "." : c.socket_path.substr(0, slash);
    return dir + "/" + window::kFileName;
  }

  std::string name;
  const SqliteApi& api;
  SidecarLink link;
  CommitWindowClient window;  // entered from the commit check until the Commit is answered
  const bool wait_for_capture;  // VfsConfig::wait_for_capture
  int lock = SQLITE_LOCK_NONE;
  bool begun = false;   // the sidecar approved a write transaction
  // The commit window's approvals generation read before the sidecar last
  // approved a Begin; while the window still shows it, the next write
  // transactions begin without asking (commit_window.h).
  std::optional<uint64_t> approved_generation;
  // The database's capture-armed slot in the commit window, named with the
  // last approval (0: none).
  uint32_t capture_slot = 0;
  bool synced = false;  // the app fsynced the database since the last commit
  // This write transaction made sure the last rollback-mode commit is
  // captured before its first write to the database (AwaitEarlierCapture),
  // and the file's change counter then.
  bool capture_checked = false;
  std::optional<uint32_t> counter_before;  // set by AwaitCapture
  bool exclusive_locking = false;  // PRAGMA locking_mode=EXCLUSIVE on this connection
  // A rollback-mode commit was handed over without waiting since this
  // connection last made sure its commits were captured.
  bool posted_rollback_commit = false;
  // PRAGMA synchronous=EXTRA: SQLite makes each rollback-mode commit durable
  // before COMMIT returns, so the app waits for the capture too.
  bool synchronous_extra = false;
  wire::RangeSet dirty;
  unsigned shm_read_locks = 0;  // bit per WAL read slot held by this handle

  // WAL mode.
  volatile void* shm_region0 = nullptr;  // the wal-index header lives here
  bool wal_writing = false;              // holds the WAL write lock for a transaction
  WalIndexHeader wal_start;              // wal-index header when the write began
};

struct DbFile {
  sqlite3_file base;  // must be first: SQLite sees this
  sqlite3_file* real;
  DbFileState* state;
};

DbFile* Cast(sqlite3_file* f) { return reinterpret_cast<DbFile*>(f); }
sqlite3_file* Real(sqlite3_file* f) { return Cast(f)->real; }
DbFileState& State(sqlite3_file* f) { return *Cast(f)->state; }

// Asks the sidecar whether this node may write the database now, or, when an
// earlier approval still holds, only tells it.
int BeginWrite(DbFileState& s) {
  wire::Message req;
  req.text = s.name;
  if (s.approved_generation && s.link.has_page() && s.link.PeerAlive()) {
    // Marked before the generation is read: a drain bumps the generation
    // before it reads the marks, so it sees this transaction or this
    // connection sees the bump (and asks).
    s.link.Writing(true);
    if (s.window.MayBeginUnasked(*s.approved_generation)) return SQLITE_OK;
    s.link.Writing(false);
  } else if (s.approved_generation && s.link.connected() && !s.link.has_page() &&
             s.window.MayBeginUnasked(*s.approved_generation)) {
    req.type = wire::MsgType::kBegun;
    s.link.Post(req);
    if (s.link.connected()) return SQLITE_OK;  // else the sidecar went away: ask the next one
  }
  s.approved_generation = s.window.Generation();  // read before asking: a later withdrawal wins
  req.type = wire::MsgType::kBegin;
  // The sidecar marks the connection page itself when it approves.
  Result<wire::Message> reply = s.link.Call(req, kBeginTimeoutMs, /*may_reconnect=*/true);
  if (!reply.ok() || reply->type != wire::MsgType::kOk) s.approved_generation.reset();
  s.capture_slot = reply.ok() && reply->type == wire::MsgType::kOk ? reply->capture_slot : 0;
  if (!reply.ok()) {
    LogWarning(SQLITE_BUSY, "cannot write %s: %s", s.name.c_str(), reply.message().c_str());
    return SQLITE_BUSY;
  }
  switch (reply->type) {
    case wire::MsgType::kOk:
      return SQLITE_OK;
    case wire::MsgType::kBusy:
      LogWarning(SQLITE_BUSY, "cannot write %s yet: %s", s.name.c_str(), reply->text.c_str());
      return SQLITE_BUSY;
    case wire::MsgType::kReadOnly:
      LogWarning(SQLITE_READONLY, "cannot write %s: this node is a read replica; the primary is %s",
                 s.name.c_str(), reply->text.empty() ? "unknown" : reply->text.c_str());
      return SQLITE_READONLY;
    default:
      LogWarning(SQLITE_READONLY, "cannot write %s: %s", s.name.c_str(), reply->text.c_str());
      return SQLITE_READONLY;
  }
}

// Right before the commit point: may this node still commit? Refusing here
// makes SQLite roll the transaction back, so the app's COMMIT fails and
// nothing reaches the database (commit_window.h).
int EnterCommitWindow(DbFileState& s) {
  CommitWindowClient::Verdict verdict;
  // Only a live sidecar reads the mark: after a restart the new one knows
  // nothing of this connection's page until it reconnects, so a connection
  // whose sidecar went away takes the lock, which any sidecar respects.
  if (s.link.has_page() && s.link.PeerAlive()) {
    // The mark first, then the check: the sidecar publishes "closed" and
    // then reads the marks, so it waits for this commit or this check
    // sees "closed". No lock.
    s.link.Committing(true);
    verdict = s.window.Check();
    if (verdict != CommitWindowClient::Verdict::kOpen) s.link.Committing(false);
  } else {
    verdict = s.window.Enter();
  }
  switch (verdict) {
    case CommitWindowClient::Verdict::kOpen:
      return SQLITE_OK;
    case CommitWindowClient::Verdict::kExpired:
      LogWarning(SQLITE_BUSY, "commit to %s refused and rolled back: %s; retry once a primary holds it",
                 s.name.c_str(), s.window.error().c_str());
      return SQLITE_BUSY;
    case CommitWindowClient::Verdict::kClosed:
    case CommitWindowClient::Verdict::kUnavailable:
      break;
  }
  LogWarning(SQLITE_READONLY, "commit to %s refused and rolled back: %s", s.name.c_str(),
             s.window.error().c_str());
  return SQLITE_READONLY;
}

// Out of the commit window, whichever way it was entered.
void LeaveCommitWindow(DbFileState& s) {
  s.link.Committing(false);
  s.window.Leave();
}

void EndTransaction(DbFileState& s) {
  s.begun = false;
  s.synced = false;
  s.capture_checked = false;
  s.counter_before.reset();
  s.dirty.Clear();
}

void EndWrite(DbFileState& s) {
  LeaveCommitWindow(s);
  if (s.begun && s.link.has_page()) {
    s.link.Writing(false);
  } else if (s.begun) {
    wire::Message req;
    req.type = wire::MsgType::kAbort;
    req.text = s.name;
    s.link.Post(req);
  }
  EndTransaction(s);
}

// The write transaction ended with a Commit, on the sidecar too.
void CommitSent(DbFileState& s) {
  s.link.Writing(false);
  LeaveCommitWindow(s);
  EndTransaction(s);
}

void SendCommit(DbFileState& s, const wire::Message& req) {
  Result<wire::Message> reply = s.link.Call(req, kCommitTimeoutMs, /*may_reconnect=*/false);
  if (!reply.ok()) {
    LogWarning(SQLITE_WARNING, "commit to %s was not recorded by the sidecar (%s); it will "
               "recover it from the database", s.name.c_str(), reply.message().c_str());
  } else if (reply->type != wire::MsgType::kOk) {
    LogWarning(SQLITE_WARNING, "commit to %s was not recorded by the sidecar: %s",
               s.name.c_str(), reply->text.c_str());
  }
  if (!reply.ok() || reply->type != wire::MsgType::kOk) s.approved_generation.reset();
  CommitSent(s);
}

// True if the database file says WAL mode (header bytes 18/19 = 2).
bool FileIsWal(sqlite3_file* real) {
  unsigned char v[2] = {0, 0};
  if (real->pMethods->xRead(real, v, 2, 18) != SQLITE_OK) return false;
  return v[0] == 2 || v[1] == 2;
}

// The database header's file change counter, which every rollback-mode
// commit increments; false for a file too short to have one.
bool ReadChangeCounter(sqlite3_file* real, uint32_t* counter) {
  uint8_t b[4];
  if (real->pMethods->xRead(real, b, 4, 24) != SQLITE_OK) return false;
  *counter = io::LoadBE32(b);
  return true;
}

// The change counter and whether the header says WAL mode, in one read.
bool ReadCounterAndMode(sqlite3_file* real, uint32_t* counter, bool* wal) {
  uint8_t b[10];  // header bytes 18..27: write/read versions, ..., change counter
  if (real->pMethods->xRead(real, b, sizeof b, 18) != SQLITE_OK) return false;
  *wal = b[0] == 2 || b[1] == 2;
  *counter = io::LoadBE32(b + 6);
  return true;
}

// Whether the sidecar has captured the database file's last rollback-mode
// commit, which its app may have handed over without waiting
// (MayPostRollbackCommit). The sidecar publishes the change counter of the
// last commit it captured; the file shows the last commit's. Usually they
// match and this costs one read; a capture under way is waited for a
// moment. nullopt when the word cannot tell: approvals were withdrawn since
// this connection read its slot (a restarted sidecar numbers its slots
// anew), or the counters still differ — a capture taking longer, or a
// commit made without liblitefs — so the sidecar must be asked.
std::optional<bool> PollCapturedCounter(DbFileState& s, uint32_t counter) {
  if (s.capture_slot == 0) return true;  // no slot: every commit of the database waits
  for (unsigned round = 0; round < kCapturePolls; round++) {
    std::optional<uint64_t> word =
        s.approved_generation ? s.window.RollbackCaptured(s.capture_slot, *s.approved_generation)
                              : std::nullopt;
    if (!word) return std::nullopt;
    if (*word == window::kRollbackUntracked || uint32_t(*word) == counter) return true;
    if (!s.link.PeerAlive()) return false;
    usleep(kCapturePollMicros);
  }
  return std::nullopt;
}

// Waits until the database file's last rollback-mode commit is captured:
// before a write transaction first writes the file (nothing may overwrite
// the commit's pages before), and when a connection that handed commits
// over closes (`<db>-pos` then names them). False if the sidecar is away,
// never answered or could not tell.
bool AwaitCapture(sqlite3_file* real, DbFileState& s) {
  uint32_t counter = 0;
  if (!ReadChangeCounter(real, &counter)) return true;  // nothing committed yet
  s.counter_before = counter;
  std::optional<bool> captured = PollCapturedCounter(s, counter);
  if (captured) return *captured;
  // The sidecar answers once the captures of the commits handed over so far
  // are done: at once when none is (the file was changed without liblitefs).
  wire::Message req;
  req.type = wire::MsgType::kAwaitCapture;
  req.text = s.name;
  Result<wire::Message> reply = s.link.Call(req, kCommitTimeoutMs, /*may_reconnect=*/false);
  return reply.ok() && reply->type == wire::MsgType::kOk;
}

// Never refuses the write (SQLite does not retry a failed write as it
// retries a busy lock): without a sidecar to capture it, the last commit is
// recorded by the next sidecar's recovery (docs/recovery.md).
void AwaitEarlierCapture(sqlite3_file* real, DbFileState& s) {
  s.capture_checked = true;
  s.posted_rollback_commit = false;
  if (!AwaitCapture(real, s)) {
    LogWarning(SQLITE_WARNING, "writing %s before the sidecar captured its last commit (the sidecar "
               "is away); its recovery will record that commit", s.name.c_str());
  }
}

// A rollback-mode commit may be handed over without waiting when the
// sidecar tracks the database's captured commits (the next writer then
// waits in AwaitEarlierCapture instead), unless the app asked for each
// commit to be durable when COMMIT returns (synchronous=EXTRA,
// LITEFS_WAIT_FOR_CAPTURE), or the commit leaves the change counter as it
// was, switches the database to WAL or is large (its capture takes long: the
// app that made it waits for it rather than its next writer). The change
// counter the commit left in the file when it may.
std::optional<uint32_t> MayPostRollbackCommit(sqlite3_file* real, DbFileState& s) {
  if (s.wait_for_capture || s.synchronous_extra || !s.link.connected() || !s.approved_generation) {
    return std::nullopt;
  }
  uint64_t bytes = 0;
  for (const wire::ByteRange& r : s.dirty.Normalized()) bytes += r.length;
  if (bytes > kMaxPostedCommitBytes) return std::nullopt;
  // The next writer tells this commit by its change counter: one that left
  // it as it was (locking_mode=EXCLUSIVE bumps it once per lock) waits.
  uint32_t counter = 0;
  bool wal = false;
  if (!s.counter_before || !ReadCounterAndMode(real, &counter, &wal) || counter == *s.counter_before) {
    return std::nullopt;
  }
  std::optional<uint64_t> word = s.window.RollbackCaptured(s.capture_slot, *s.approved_generation);
  if (!word || *word == window::kRollbackUntracked || wal) return std::nullopt;
  return counter;
}

// Hands the committed transaction to the sidecar. The commit point has
// passed, so the transaction is durable in the database whatever happens
// here; if the sidecar cannot record it, its recovery will (the database
// checksum no longer matches its position), so the app is not told about a
// failure of something that did commit.
void CommitWrite(sqlite3_file* real, DbFileState& s) {
  if (s.dirty.empty()) {
    EndWrite(s);
    return;
  }
  wire::Message req;
  req.type = wire::MsgType::kCommit;
  req.text = s.name;
  req.flags = s.synced ? wire::kCommitSynced : 0;
  req.ranges = s.dirty.Normalized();
  if (std::optional<uint32_t> counter = MayPostRollbackCommit(real, s)) {
    req.flags |= wire::kCommitAsync | wire::kCommitCounter;
    req.change_counter = *counter;
    s.link.Post(req);
    s.posted_rollback_commit = true;
    CommitSent(s);
    return;
  }
  SendCommit(s, req);
}

// The wal-index header as this connection's SQLite last published it.
WalIndexHeader ReadWalIndexHeader(sqlite3_file* real, const DbFileState& s) {
  uint8_t bytes[WalIndexHeader::kSize];
  real->pMethods->xShmBarrier(real);
  std::memcpy(bytes, const_cast<const void*>(s.shm_region0), sizeof bytes);
  return WalIndexHeader::Decode(bytes);
}

// Hands a committed WAL transaction to the sidecar without waiting for it:
// the frames wait in the WAL — durable when the app synced it — where the
// sidecar reads them in WAL order (FlushWal guards them against being
// overwritten or deleted first, and makes the LTX files durable then). If
// the message is lost, the next one, a flush or recovery records the frames.
//
// No message at all while the sidecar shows a capture of this database
// armed: it reads the wal-index after disarming, so it will capture this
// commit (commit_window.h, connection_page.h). The mark on the connection page is cleared only
// after: a writer killed before that is checked by the sidecar.
void PostWalCommit(DbFileState& s, const wire::Message& req) {
  const bool announced_by_capture = s.link.has_page() && s.approved_generation &&
                                    s.window.CaptureArmed(s.capture_slot, *s.approved_generation);
  if (!announced_by_capture) s.link.Post(req);
  CommitSent(s);
}

// Before anything may overwrite or delete committed WAL frames — a writer
// about to restart the WAL, a checkpoint that resets it, a connection
// deleting it at close — the sidecar captures every commit up to the WAL's
// last one (async commits may not be captured yet). The caller holds the
// WAL write lock or EXCLUSIVE, so the wal-index header is stable. False if
// the sidecar could not: the caller refuses its lock and SQLite retries.
bool FlushWal(sqlite3_file* real, DbFileState& s) {
  if (!s.shm_region0) return true;
  WalIndexHeader h = ReadWalIndexHeader(real, s);
  if (h.mx_frame == 0) return true;
  wire::Message req;
  req.type = wire::MsgType::kCommit;
  req.text = s.name;
  req.flags = wire::kCommitWal | wire::kCommitFlush;
  req.wal = {h.salt1(), h.salt2(), 0, h.mx_frame, h.page_size(), h.n_page};
  Result<wire::Message> reply = s.link.Call(req, kCommitTimeoutMs, /*may_reconnect=*/true);
  if (reply.ok() && reply->type == wire::MsgType::kOk) return true;
  LogWarning(SQLITE_BUSY, "cannot let the WAL of %s be reset before the sidecar captured it: %s",
             s.name.c_str(), reply.ok() ? reply->text.c_str() : reply.message().c_str());
  return false;
}

// Hands a WAL transaction to the sidecar before the write lock is released:
// its frames cannot be overwritten (by a WAL restart) until then. Frames
// past the start mark are this transaction's; a changed salt means this
// writer restarted the WAL, so they start at frame 1.
void CommitWalWrite(sqlite3_file* real, DbFileState& s) {
  WalIndexHeader now = ReadWalIndexHeader(real, s);
  bool restarted = std::memcmp(now.salt, s.wal_start.salt, sizeof now.salt) != 0;
  uint32_t first = restarted ? 1 : s.wal_start.mx_frame + 1;
  if (now.mx_frame < first) {  // no commit frame: rolled back, or nothing written
    EndWrite(s);
    return;
  }
  wire::Message req;
  req.type = wire::MsgType::kCommit;
  req.text = s.name;
  req.flags = wire::kCommitWal | (s.synced ? wire::kCommitSynced : 0);
  req.wal = {now.salt1(), now.salt2(), first, now.mx_frame, now.page_size(), now.n_page};
  if (s.wait_for_capture) {
    SendCommit(s, req);  // `<db>-pos` names it when COMMIT returns
  } else {
    req.flags |= wire::kCommitAsync;
    PostWalCommit(s, req);
  }
}

int RefusePragma(DbFileState& s, char** args, const char* why) {
  args[0] = s.api.mprintf("litefs: %s for replicated database %s", why, s.name.c_str());
  return SQLITE_ERROR;
}

// Refuses the settings whose commits cannot be captured: journal modes
// without a journal or WAL, and WAL with exclusive locking (the wal-index
// then lives in the process's memory, where no lock marks a commit).
int CheckPragma(sqlite3_file* real, DbFileState& s, char** args) {
  const char* pragma = args[1];
  const char* value = args[2];
  if (!pragma || !value) return SQLITE_NOTFOUND;
  if (strcasecmp(pragma, "journal_mode") == 0) {
    if (strcasecmp(value, "memory") == 0) {
      return RefusePragma(s, args, "journal_mode=MEMORY is not supported (no journal to capture "
                                   "commits from; use WAL, DELETE, TRUNCATE or PERSIST)");
    }
    if (strcasecmp(value, "off") == 0) {
      return RefusePragma(s, args, "journal_mode=OFF is not supported (no journal to capture "
                                   "commits from; use WAL, DELETE, TRUNCATE or PERSIST)");
    }
    if (strcasecmp(value, "wal") == 0 && s.exclusive_locking) {
      return RefusePragma(s, args, "journal_mode=WAL with locking_mode=EXCLUSIVE is not supported");
    }
  } else if (strcasecmp(pragma, "synchronous") == 0) {
    s.synchronous_extra = strcasecmp(value, "extra") == 0 || strcmp(value, "3") == 0;
  } else if (strcasecmp(pragma, "locking_mode") == 0) {
    if (strcasecmp(value, "exclusive") == 0) {
      if (FileIsWal(real)) {
        return RefusePragma(s, args, "locking_mode=EXCLUSIVE is not supported in WAL mode");
      }
      s.exclusive_locking = true;
    } else if (strcasecmp(value, "normal") == 0) {
      s.exclusive_locking = false;
    }
  }
  return SQLITE_NOTFOUND;
}

int Close(sqlite3_file* f) {
  DbFileState* s = Cast(f)->state;
  EndWrite(*s);
  // Like the flush of a closing WAL connection: once the app closes the
  // database, `<db>-pos` names its last commit.
  if (s->posted_rollback_commit) (void)AwaitCapture(Real(f), *s);
  int rc = Real(f)->pMethods->xClose(Real(f));
  delete s;
  Cast(f)->state = nullptr;
  return rc;
}

int Read(sqlite3_file* f, void* buf, int amt, sqlite3_int64 off) {
  return Real(f)->pMethods->xRead(Real(f), buf, amt, off);
}

// A write transaction's first change to the database file (rollback mode;
// in WAL mode only checkpoints write it, outside write transactions).
bool FirstChangeInTransaction(const DbFileState& s) {
  return s.begun && s.lock >= SQLITE_LOCK_RESERVED && !s.capture_checked;
}

int Write(sqlite3_file* f, const void* buf, int amt, sqlite3_int64 off) {
  DbFileState& s = State(f);
  if (FirstChangeInTransaction(s)) AwaitEarlierCapture(Real(f), s);
  int rc = Real(f)->pMethods->xWrite(Real(f), buf, amt, off);
  if (rc == SQLITE_OK && s.lock >= SQLITE_LOCK_RESERVED) s.dirty.Add(uint64_t(off), uint64_t(amt));
  return rc;
}

int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  DbFileState& s = State(f);
  if (FirstChangeInTransaction(s)) AwaitEarlierCapture(Real(f), s);
  return Real(f)->pMethods->xTruncate(Real(f), size);
}

int Sync(sqlite3_file* f, int flags) {
  int rc = Real(f)->pMethods->xSync(Real(f), flags);
  DbFileState& s = State(f);
  if (rc == SQLITE_OK && s.lock >= SQLITE_LOCK_RESERVED) s.synced = true;
  return rc;
}

int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  return Real(f)->pMethods->xFileSize(Real(f), size);
}

int Lock(sqlite3_file* f, int level) {
  DbFileState& s = State(f);
  int rc = Real(f)->pMethods->xLock(Real(f), level);
  if (rc != SQLITE_OK) return rc;
  // A writer always passes RESERVED; SHARED->EXCLUSIVE without it is a
  // hot-journal rollback or a WAL close, which must always be allowed.
  if (level == SQLITE_LOCK_RESERVED && s.lock < SQLITE_LOCK_RESERVED && !s.begun) {
    int gate = BeginWrite(s);
    if (gate != SQLITE_OK) {
      Real(f)->pMethods->xUnlock(Real(f), SQLITE_LOCK_SHARED);
      return gate;
    }
    s.begun = true;
  }
  // EXCLUSIVE on a WAL database: a closing connection about to checkpoint
  // and delete the WAL, or a change of journal mode.
  if (level == SQLITE_LOCK_EXCLUSIVE && s.lock < SQLITE_LOCK_EXCLUSIVE && s.shm_region0 &&
      !FlushWal(Real(f), s)) {
    Real(f)->pMethods->xUnlock(Real(f), s.lock > SQLITE_LOCK_SHARED ? s.lock : SQLITE_LOCK_SHARED);
    return SQLITE_BUSY;
  }
  if (level > s.lock) s.lock = level;
  return SQLITE_OK;
}

int Unlock(sqlite3_file* f, int level) {
  DbFileState& s = State(f);
  if (level < SQLITE_LOCK_RESERVED && s.lock >= SQLITE_LOCK_RESERVED) EndWrite(s);
  int rc = Real(f)->pMethods->xUnlock(Real(f), level);
  if (rc == SQLITE_OK) s.lock = level;
  return rc;
}

int CheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}

int FileControl(sqlite3_file* f, int op, void* arg) {
  DbFileState& s = State(f);
  switch (op) {
    case SQLITE_FCNTL_PRAGMA: {
      int rc = CheckPragma(Real(f), s, static_cast<char**>(arg));
      if (rc != SQLITE_NOTFOUND) return rc;
      break;
    }
    case SQLITE_FCNTL_VFSNAME: {
      int rc = Real(f)->pMethods->xFileControl(Real(f), op, arg);
      char** name = static_cast<char**>(arg);
      if (rc == SQLITE_OK && *name) {
        char* stacked = s.api.mprintf("litefs/%s", *name);
        s.api.free(*name);
        *name = stacked;
      }
      return rc;
    }
    case SQLITE_FCNTL_SYNC:
      // Rollback journal: sent by the commit, after the pages are written
      // and before the database is synced and the journal finalized.
      if (s.begun && s.lock >= SQLITE_LOCK_RESERVED) {
        int rc = EnterCommitWindow(s);
        if (rc != SQLITE_OK) return rc;
      }
      break;
    case SQLITE_FCNTL_COMMIT_PHASETWO: {
      int rc = Real(f)->pMethods->xFileControl(Real(f), op, arg);
      CommitWrite(Real(f), s);
      return rc == SQLITE_NOTFOUND ? SQLITE_OK : rc;
    }
    default:
      break;
  }
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}

int SectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }

int DeviceCharacteristics(sqlite3_file* f) {
  // Batch-atomic writes would bypass the journal and the commit point we rely on.
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f)) & ~SQLITE_IOCAP_BATCH_ATOMIC;
}

int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  int rc = Real(f)->pMethods->xShmMap(Real(f), region, size, extend, out);
  if (rc == SQLITE_OK && region == 0 && *out) State(f).shm_region0 = *out;
  return rc;
}

int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  DbFileState& s = State(f);
  const bool write_slot = offset == kShmWriteLock && n == 1;
  // A transaction (this handle holds a read slot) taking the WAL write lock
  // is a writer: the sidecar must approve it, as at RESERVED in rollback
  // mode. Recovery and checkpoints take it without a read slot and pass.
  if (write_slot && flags == (SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE) && s.shm_read_locks != 0 &&
      s.shm_region0) {
    int rc = Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
    if (rc != SQLITE_OK) return rc;
    if (!s.begun) {
      int gate = BeginWrite(s);
      if (gate != SQLITE_OK) {
        Real(f)->pMethods->xShmLock(Real(f), offset, n, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE);
        return gate;
      }
      s.begun = true;
    }
    // Holding READ0 (its snapshot is the whole, fully checkpointed WAL), a
    // writer restarts the WAL over its frames.
    const bool may_restart = s.shm_read_locks & (1u << kShmFirstReadLock);
    if (may_restart && !FlushWal(Real(f), s)) {
      Real(f)->pMethods->xShmLock(Real(f), offset, n, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE);
      return SQLITE_BUSY;
    }
    s.wal_writing = true;
    s.synced = false;
    s.wal_start = ReadWalIndexHeader(Real(f), s);
    return SQLITE_OK;
  }
  // The write lock without a read transaction: a RESTART or TRUNCATE
  // checkpoint, which resets the WAL.
  if (write_slot && flags == (SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE) && s.shm_read_locks == 0 &&
      s.shm_region0) {
    int rc = Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
    if (rc != SQLITE_OK) return rc;
    if (!FlushWal(Real(f), s)) {
      Real(f)->pMethods->xShmLock(Real(f), offset, n, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE);
      return SQLITE_BUSY;
    }
    return SQLITE_OK;
  }
  if (write_slot && flags == (SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE) && s.wal_writing) {
    CommitWalWrite(Real(f), s);
    s.wal_writing = false;
  }
  int rc = Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
  if (rc == SQLITE_OK && (flags & SQLITE_SHM_SHARED)) {
    for (int i = offset; i < offset + n && i < kShmLockCount; i++) {
      if (i < kShmFirstReadLock) continue;
      unsigned bit = 1u << i;
      if (flags & SQLITE_SHM_LOCK) s.shm_read_locks |= bit;
      else s.shm_read_locks &= ~bit;
    }
  }
  return rc;
}

void ShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }

int ShmUnmap(sqlite3_file* f, int delete_flag) {
  State(f).shm_read_locks = 0;
  State(f).shm_region0 = nullptr;
  return Real(f)->pMethods->xShmUnmap(Real(f), delete_flag);
}

int Fetch(sqlite3_file* f, sqlite3_int64 off, int amt, void** out) {
  return Real(f)->pMethods->xFetch(Real(f), off, amt, out);
}

int Unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return Real(f)->pMethods->xUnfetch(Real(f), off, p);
}

constexpr sqlite3_io_methods MakeMethods(int version) {
  sqlite3_io_methods m{};
  m.iVersion = version;
  m.xClose = Close;
  m.xRead = Read;
  m.xWrite = Write;
  m.xTruncate = Truncate;
  m.xSync = Sync;
  m.xFileSize = FileSize;
  m.xLock = Lock;
  m.xUnlock = Unlock;
  m.xCheckReservedLock = CheckReservedLock;
  m.xFileControl = FileControl;
  m.xSectorSize = SectorSize;
  m.xDeviceCharacteristics = DeviceCharacteristics;
  if (version >= 2) {
    m.xShmMap = ShmMap;
    m.xShmLock = ShmLock;
    m.xShmBarrier = ShmBarrier;
    m.xShmUnmap = ShmUnmap;
  }
  if (version >= 3) {
    m.xFetch = Fetch;
    m.xUnfetch = Unfetch;
  }
  return m;
}

// Present the same method-table version as the underlying file: a higher one
// would call methods it lacks, a lower one would silently disable WAL/mmap.
const sqlite3_io_methods kMethods[3] = {MakeMethods(1), MakeMethods(2), MakeMethods(3)};

}  // namespace

bool IsManagedDbFile(const sqlite3_file* file) {
  return file && file->pMethods >= &kMethods[0] && file->pMethods <= &kMethods[2];
}

int EnterWalCommitWindow(sqlite3_file* db) {
  DbFileState& s = State(db);
  return s.wal_writing ? EnterCommitWindow(s) : SQLITE_OK;
}

void NoteWalSync(sqlite3_file* db) {
  DbFileState& s = State(db);
  if (s.wal_writing) s.synced = true;
}

size_t DbFileHeaderSize() { return (sizeof(DbFile) + 15) & ~size_t(15); }

void InitDbFile(sqlite3_file* file, sqlite3_file* real, std::string name, const SqliteApi& api,
                const VfsConfig& config) {
  DbFile* f = Cast(file);
  f->real = real;
  f->state = new DbFileState(std::move(name), api, config);
  int version = real->pMethods->iVersion;
  if (version < 1) version = 1;
  if (version > 3) version = 3;
  f->base.pMethods = &kMethods[version - 1];
}

}  // namespace litefs::vfs
