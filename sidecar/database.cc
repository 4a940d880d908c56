// See database.h. Recovery rules: docs/recovery.md.
#include "sidecar/database.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include "ltx/checksum.h"
#include "sidecar/clock.h"
#include "sidecar/db_pages.h"
#include "sidecar/fsutil.h"
#include "sidecar/hot_journal.h"
#include "sidecar/import.h"
#include "sidecar/log.h"
#include "sidecar/ltx_apply.h"
#include "sidecar/metrics.h"
#include "sidecar/sqlite_locks.h"
#include "sidecar/wal_apply.h"
#include "sidecar/wal_checkpoint.h"
#include "sidecar/wal_index.h"

namespace litefs {
namespace {

constexpr std::chrono::milliseconds kReadLockTimeout{30000};

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

Status ValidateDbName(std::string_view name) {
  auto bad = [&](const char* why) {
    return Status::Error("invalid database name \"" + std::string(name) + "\": " + why);
  };
  if (name.empty()) return bad("empty");
  if (name.size() > 255) return bad("longer than 255 bytes");
  if (name.find('/') != std::string_view::npos) return bad("contains '/'");
  if (name.find('\0') != std::string_view::npos) return bad("contains NUL");
  if (name == "." || name == "..") return bad("not a file name");
  if (name.front() == '.') return bad("hidden names are reserved for litefs");
  for (std::string_view suffix : {"-journal", "-wal", "-shm", "-pos", "-lock"}) {
    if (EndsWith(name, suffix)) return bad("ends with a reserved suffix");
  }
  return Status();
}

Database::Database(const DatabaseEnv& env, std::string name)
    : env_(env),
      name_(std::move(name)),
      db_path_(env.dir + "/" + name_),
      pos_file_(env.dir + "/" + name_ + "-pos"),
      log_(env.data_dir + "/dbs/" + name_ + "/ltx"),
      strand_(env.loop),
      snapshot_strand_(env.loop),
      durability_(env.data_dir + "/dbs/" + name_ + "/applies-unsynced", db_path_),
      capture_durability_(env.data_dir + "/dbs/" + name_ + "/ltx-unsynced",
                          env.data_dir + "/dbs/" + name_ + "/ltx-copies") {}

Database::~Database() {
  ArmCapture(false);  // no capture will come
  if (copy_flush_timer_) {
    uv_close(reinterpret_cast<uv_handle_t*>(copy_flush_timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
  MicroTimer::Destroy(linger_timer_);
}

uv_timer_t* Database::NewTimer() {
  auto* timer = new uv_timer_t;
  uv_timer_init(env_.loop, timer);
  timer->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(timer));  // never keeps the loop alive
  return timer;
}

ltx::Pos Database::pos() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pos_;
}

void Database::SetPos(ltx::Pos pos) {
  std::lock_guard<std::mutex> lock(mu_);
  pos_ = pos;
  pos_wal_tail_ = wal_tail_;
}

int64_t Database::pos_timestamp_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pos_timestamp_ms_;
}

std::vector<PosChange> Database::ChangesSince(uint64_t after) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<PosChange> out;
  for (const PosChange& c : changes_) {
    if (c.seq > after) out.push_back(c);
  }
  return out;
}

uint64_t Database::last_change_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return change_seq_;
}

void Database::NoteChange(ltx::Pos pos, uint32_t page_size, uint32_t page_count, int64_t timestamp_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  // Every position change, for /events (a recovery that confirms the
  // position is not one).
  if (changes_.empty() || changes_.back().pos != pos) {
    changes_.push_back({++change_seq_, pos, page_size, page_count, timestamp_ms});
    if (changes_.size() > kRecentChanges) changes_.pop_front();
  }
}

Status Database::WritePosFile(ltx::Pos pos, int64_t timestamp_ms) {
  NoteChange(pos, checksums_.page_size(), checksums_.page_count(), timestamp_ms);
  {
    std::lock_guard<std::mutex> lock(mu_);
    pos_timestamp_ms_ = timestamp_ms;
  }
  // LiteFS shows the LTX timestamp as the file's mtime.
  struct timespec mtime;
  mtime.tv_sec = timestamp_ms / 1000;
  mtime.tv_nsec = (timestamp_ms % 1000) * 1000000;
  return pos_file_.Write(ltx::FormatPos(pos) + "\n", &mtime);
}

void Database::Finished(const Status& st, bool changed) {
  if (st.ok()) {
    state_ = State::kReady;
    problem_.clear();
  } else {
    state_ = State::kBroken;
    problem_ = st.message();
  }
  if (changed && on_change_) on_change_(*this);
  ReleaseRollbackWaiters();
  if (state_ != State::kRecovering) {
    std::vector<std::function<void()>> waiters;
    waiters.swap(settled_waiters_);
    for (auto& fn : waiters) fn();
  }
}

void Database::WhenSettled(std::function<void()> fn) {
  if (state_ == State::kRecovering) {
    settled_waiters_.push_back(std::move(fn));
  } else {
    fn();
  }
}

// ---- recovery ---------------------------------------------------------------

void Database::Recover(std::function<void(Status)> done) {
  state_ = State::kRecovering;
  problem_ = "recovering";
  WithdrawWriteApprovals();  // new writers wait for the recovery (Begin)
  auto result = std::make_shared<Status>();
  strand_.Post(
      [this, result] {
        *result = RecoverJob();
        // What recovery kept and wrote is on disk before writers go on.
        if (result->ok()) *result = capture_durability_.MakeDurable(log_.dir());
      },
               [this, result, done = std::move(done)] {
                 if (!result->ok()) log::Error("recovery failed", {{"db", name_}, {"error", result->message()}});
                 Finished(*result, true);
                 if (done) done(*result);
               });
}

Status Database::RecoverJob() {
  LITEFS_RETURN_IF_ERROR(log_.Init());
  LITEFS_RETURN_IF_ERROR(DropTornNewestLtx());
  const std::optional<uint64_t> unsynced_from = capture_durability_.UnsyncedFrom();
  if (unsynced_from) LITEFS_RETURN_IF_ERROR(DropBrokenUnsyncedLtx(*unsynced_from));
  ltx::Pos logged;
  std::optional<std::pair<ltx::Header, ltx::Trailer>> latest;
  auto read_latest = [&]() -> Status {
    if (std::optional<ltx::TXIDRange> r = log_.Latest()) {
      Result<std::pair<ltx::Header, ltx::Trailer>> ends = log_.ReadEnds(*r);
      if (!ends.ok()) return ends.status();
      latest = *ends;
      logged = {ends->first.max_txid, ends->second.post_apply_checksum};
    }
    return Status();
  };
  LITEFS_RETURN_IF_ERROR(read_latest());

  // A crashed writer's hot journal is undone first, by SQLite itself; a
  // WAL transaction written but never published becomes visible, as SQLite's
  // recovery would make it, so readers see what the position will say.
  if (fs::Exists(db_path_ + "-journal")) LITEFS_RETURN_IF_ERROR(RollBackHotJournal(db_path_));
  LITEFS_RETURN_IF_ERROR(PublishPendingWal(db_path_));

  // Hold the database still while reading it: SHARED stops rollback-mode
  // writers and a closing connection's checkpoint; the WAL freeze stops
  // checkpoints and WAL restarts. New writers wait for this recovery anyway.
  Result<fs::UniqueFd> lock_fd = fs::Open(db_path_, O_RDONLY);
  std::optional<sqlite::SharedLock> shared;  // released before lock_fd closes
  if (lock_fd.ok()) {
    Result<sqlite::SharedLock> got =
        sqlite::SharedLock::Acquire(lock_fd->get(), kReadLockTimeout, db_path_);
    if (!got.ok()) return got.status();
    shared.emplace(std::move(got).value());
  }
  std::optional<sqlite::WalFreeze> freeze;
  {
    Result<sqlite::WalFreeze> got = sqlite::WalFreeze::Acquire(db_path_, kReadLockTimeout);
    if (!got.ok()) return got.status();
    freeze.emplace(std::move(got).value());
  }

  Result<DbView> view = DbView::Open(db_path_);
  if (!view.ok()) return view.status();
  LITEFS_RETURN_IF_ERROR(checksums_.LoadFrom(*view));
  const uint64_t actual = checksums_.value();
  const wal::Committed& w = view->wal();
  wal_tail_ = {true, w.header.salt1, w.header.salt2, w.last_frame};
  last_change_counter_ = w.last_frame == 0 ? view->file_shape().change_counter : 0;
  PublishRollbackCaptured();

  if (unsynced_from) {
    Result<bool> restored = RestoreCopiedLtx(actual);
    if (!restored.ok()) return restored.status();
    if (*restored) LITEFS_RETURN_IF_ERROR(read_latest());
  }
  if (!latest) {
    // No history: LiteFS's rule is position zero whatever the file holds;
    // the first commit will be a snapshot of it.
    SetPos({});
    return Status();
  }
  const ltx::Header& h = latest->first;
  if (actual == logged.checksum) {
    SetPos(logged);
    return WritePosFile(logged, h.timestamp_ms);
  }
  LtxWriteOptions opts{env_.compress, env_.node_id, WallClockMs(), /*sync=*/true};

  // WAL frames committed after the last captured transaction (not read by
  // the sidecar before it stopped, or their LTX files lost with a power
  // failure): record exactly those. The last file's frames are in this WAL,
  // or, when the WAL restarted since (other salts), all in the database file.
  if (w.last_frame > 0) {
    const bool same_wal = h.wal_size > 0 && h.wal_salt1 == w.header.salt1 && h.wal_salt2 == w.header.salt2;
    const uint64_t frame_size = wal::kFrameHeaderSize + w.header.page_size;
    const uint32_t captured =
        same_wal ? uint32_t((uint64_t(h.wal_offset) - wal::kHeaderSize + uint64_t(h.wal_size)) / frame_size) : 0;
    if (w.last_frame > captured) {
      Result<DbView> before = DbView::OpenAtWalTail(db_path_, w.header.salt1, w.header.salt2, captured);
      PageChecksums at_captured;
      if (before.ok() && at_captured.LoadFrom(*before).ok() && at_captured.value() == logged.checksum) {
        log::Warn("WAL frames were committed without an LTX; recording them",
                  {{"db", name_}, {"frames", std::to_string(captured + 1) + ".." +
                                                 std::to_string(w.last_frame)}});
        // One file, one TXID per commit frame, in WAL order.
        wire::WalFrames frames{w.header.salt1, w.header.salt2, captured + 1, w.last_frame,
                               w.header.page_size, w.db_pages};
        checksums_ = at_captured;
        SetPos(logged);
        wal_tail_ = {true, w.header.salt1, w.header.salt2, captured};
        return CaptureWalUpTo(frames, opts).status();
      }
    }
  }
  if (h.IsSnapshot() || h.pre_apply_checksum == actual) {
    // The last file was recorded but the database does not show it (an
    // apply interrupted, or a journal that came back after a power loss):
    // apply it again; pages are absolute, so this is idempotent.
    log::Warn("re-applying the last LTX file", {{"db", name_}, {"txid", ltx::FormatTXID(h.max_txid)}});
    freeze.reset();
    shared.reset();
    std::string path = log_.PathFor({h.min_txid, h.max_txid});
    Result<VerifiedLtx> ltx = ReadAndVerifyLtx(path);
    if (!ltx.ok()) return ltx.status();
    Result<uint32_t> applied = ApplyToDatabase(db_path_, path, *ltx, checksums_, ApplyOptions{});
    if (!applied.ok()) return applied.status();
    ResetCaptureTail();  // the re-applied frames are recorded
    SetPos(logged);
    return WritePosFile(logged, h.timestamp_ms);
  }
  // Unsynced applies or captures may have been lost with the database's own
  // unsynced writes: the database may be behind the log.
  if (durability_.Marked() || unsynced_from) {
    Result<bool> rewound = RewindToDatabase(actual);
    if (!rewound.ok()) return rewound.status();
    if (*rewound) return Status();
  }
  // The database changed without a capture: record its current state as
  // the next transaction so nothing committed is lost and replicas follow.
  if (!view->exists()) {
    log::Warn("database file is missing; recording it as deleted", {{"db", name_}});
  } else {
    log::Warn("database changed without an LTX; recording its pages as the next transaction",
              {{"db", name_}, {"txid", ltx::FormatTXID(logged.txid + 1)}});
  }
  Result<ltx::Pos> pos = WriteCommitLtx(*view, nullptr, logged, checksums_, log_, opts);
  if (!pos.ok()) return pos.status();
  SetPos(*pos);
  return WritePosFile(*pos, opts.timestamp_ms);
}

Result<bool> Database::RewindToDatabase(uint64_t actual) {
  std::vector<ltx::TXIDRange> ranges = log_.Ranges();
  for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
    Result<std::pair<ltx::Header, ltx::Trailer>> ends = log_.ReadEnds(*it);
    if (!ends.ok() || ends->second.post_apply_checksum != actual) continue;
    // Served to replicas from now on: it must be whole.
    if (!ReadAndVerifyLtx(log_.PathFor(*it)).ok()) return false;
    log::Warn("the database is behind its LTX log (replica applies lost with the power?); "
              "going back to where it is and dropping the rest of the history",
              {{"db", name_}, {"txid", ltx::FormatTXID(it->max_txid)},
               {"logged_txid", ltx::FormatTXID(ranges.back().max_txid)}});
    LITEFS_RETURN_IF_ERROR(log_.RemoveAllExcept(*it));
    ltx::Pos pos{it->max_txid, actual};
    SetPos(pos);
    LITEFS_RETURN_IF_ERROR(WritePosFile(pos, ends->first.timestamp_ms));
    return true;
  }
  return false;
}

Result<bool> Database::RestoreCopiedLtx(uint64_t actual) {
  Result<std::vector<std::string>> copies = capture_durability_.Copies();
  if (!copies.ok()) return copies.status();
  std::optional<ltx::Pos> at;
  if (std::optional<ltx::TXIDRange> r = log_.Latest()) {
    Result<std::pair<ltx::Header, ltx::Trailer>> ends = log_.ReadEnds(*r);
    if (!ends.ok()) return ends.status();
    at = ltx::Pos{r->max_txid, ends->second.post_apply_checksum};
  }
  // The copies that continue the log one after another (the others are
  // files that survived, or copies older than a rewind of the history)...
  struct Candidate {
    std::string tmp;
    ltx::TXIDRange range;
    uint64_t post;
  };
  std::vector<Candidate> chain;
  auto discard = [&chain](size_t from) {
    for (size_t k = from; k < chain.size(); k++) unlink(chain[k].tmp.c_str());
  };
  for (const std::string& copy : *copies) {
    const std::string tmp = log_.NewTempPath();
    Status written = fs::WriteFileAtomic(tmp, copy, /*sync=*/false);
    if (!written.ok()) {
      discard(0);
      return written;
    }
    Result<VerifiedLtx> v = ReadAndVerifyLtx(tmp);
    const bool continues = v.ok() && (at ? v->header.min_txid == at->txid + 1 &&
                                               v->header.pre_apply_checksum == at->checksum
                                         : v->header.min_txid == 1);
    if (!continues) {
      unlink(tmp.c_str());
      continue;
    }
    chain.push_back({tmp, {v->header.min_txid, v->header.max_txid}, v->trailer.post_apply_checksum});
    at = ltx::Pos{v->header.max_txid, v->trailer.post_apply_checksum};
  }
  // ...come back up to the one the database shows: a copy is only ever of
  // a committed transaction, but what the database does not hold is never
  // brought back (it would be re-applied to it).
  size_t keep = 0;
  for (size_t k = chain.size(); k > 0; k--) {
    if (chain[k - 1].post == actual) {
      keep = k;
      break;
    }
  }
  for (size_t k = 0; k < keep; k++) {
    log::Warn("bringing back an LTX file a power failure lost, from its copy in the capture log",
              {{"db", name_}, {"txid", ltx::FormatTXID(chain[k].range.max_txid)}});
    Status installed = log_.Install(chain[k].tmp, chain[k].range, /*sync=*/false);
    if (!installed.ok()) {
      discard(k);
      return installed;
    }
  }
  discard(keep);
  return keep > 0;
}

Status Database::DropTornNewestLtx() {
  while (std::optional<ltx::TXIDRange> r = log_.Latest()) {
    const std::string path = log_.PathFor(*r);
    // A file that cannot be opened is an I/O problem, not a torn write.
    Result<fs::UniqueFd> readable = fs::Open(path, O_RDONLY);
    if (!readable.ok()) return readable.status();
    Result<VerifiedLtx> verified = ReadAndVerifyLtx(path);
    if (verified.ok()) return Status();
    // Commits write their file in place. A torn one was never acknowledged
    // if it was to be synced; if not, its transaction is still in the
    // database (or was lost with it) and the comparison below records it.
    log::Warn("dropping an incomplete LTX file left by a crash",
              {{"db", name_}, {"file", path}, {"error", verified.message()}});
    LITEFS_RETURN_IF_ERROR(log_.Remove(*r));
  }
  return Status();
}

Status Database::DropBrokenUnsyncedLtx(uint64_t first) {
  const std::vector<ltx::TXIDRange> ranges = log_.Ranges();
  std::optional<ltx::Pos> before;  // where the file being checked must start
  for (size_t i = 0; i < ranges.size(); i++) {
    const ltx::TXIDRange r = ranges[i];
    if (r.max_txid < first) {
      if (i + 1 < ranges.size() && ranges[i + 1].max_txid >= first) {
        Result<std::pair<ltx::Header, ltx::Trailer>> ends = log_.ReadEnds(r);
        if (ends.ok()) before = ltx::Pos{r.max_txid, ends->second.post_apply_checksum};
      }
      continue;
    }
    Result<VerifiedLtx> v = ReadAndVerifyLtx(log_.PathFor(r));
    std::string problem = v.ok() ? "" : v.message();
    if (v.ok() && before && !v->header.IsSnapshot() &&
        (v->header.min_txid != before->txid + 1 || v->header.pre_apply_checksum != before->checksum)) {
      problem = "does not continue " + ltx::FormatPos(*before);
    }
    if (problem.empty()) {
      before = ltx::Pos{r.max_txid, v->trailer.post_apply_checksum};
      continue;
    }
    log::Warn("dropping LTX files a power failure left incomplete; recovery records their "
              "transactions again from the database",
              {{"db", name_}, {"file", log_.PathFor(r)}, {"error", problem},
               {"dropped", std::to_string(ranges.size() - i)}});
    for (size_t k = ranges.size(); k-- > i;) LITEFS_RETURN_IF_ERROR(log_.Remove(ranges[k]));
    break;
  }
  return Status();
}

// ---- primary: capture -------------------------------------------------------

void Database::Commit(wire::Message commit, std::function<void(Result<ltx::Pos>)> done) {
  if ((commit.flags & wire::kCommitAsync) && (commit.flags & wire::kCommitWal)) {
    // Nobody waits: a lingering capture takes every commit the WAL holds
    // when it looks (a commit announced while it lingers is one made just
    // before it armed: its next look finds it).
    if (!lingering_) StartLingering();
    return done(pos());
  }
  // A commit the app waits for, or an async rollback-mode one (its next
  // writer waits for this job instead, vfs/db_file.cc).
  const bool app_waits = !(commit.flags & wire::kCommitAsync);
  if (!app_waits) rollback_captures_running_++;
  auto result = std::make_shared<Result<ltx::Pos>>(Status::Error("not run"));
  auto captured = std::make_shared<uint64_t>(0);
  auto unflushed = std::make_shared<bool>(false);
  const uint64_t start_ns = uv_hrtime();
  strand_.Post([this, result, captured, unflushed, commit = std::move(commit)] {
                 *result = CommitJob(commit);
                 *captured = captured_in_job_;
                 *unflushed = copies_unflushed_in_job_;
               },
               [this, result, captured, unflushed, start_ns, app_waits, done = std::move(done)] {
                 if (*unflushed) FlushCopiesWhenIdle();
                 if (!app_waits) rollback_captures_running_--;
                 CaptureFinished(*result, *captured, start_ns);
                 ReleaseRollbackWaiters();  // also when the capture recorded nothing
                 done(*result);
               });
}

void Database::FlushCopiesWhenIdle() {
  if (!copy_flush_timer_) copy_flush_timer_ = NewTimer();
  // Restarted by every such commit: under a steady stream of commits the
  // apps' own flushes make the copies durable (capture_durability.h).
  uv_timer_start(
      copy_flush_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Database*>(t->data);
        self->strand_.Post([self] {
          Status st = self->capture_durability_.FlushCopies();
          if (!st.ok()) log::Error("cannot flush the capture log", {{"db", self->name_}, {"error", st.message()}});
        });
      },
      kIdleCopyFlush.count(), 0);
}

void Database::PublishRollbackCaptured() {
  std::lock_guard<std::mutex> lock(mu_);
  if (capture_window_) {
    capture_window_->PublishRollbackCaptured(
        capture_slot_, last_change_counter_ != 0 ? std::optional<uint32_t>(last_change_counter_) : std::nullopt);
  }
}

bool Database::RollbackCommitsCaptured() const { return rollback_captures_running_ == 0; }

void Database::WhenRollbackCommitsCaptured(std::function<void()> fn) {
  if (RollbackCommitsCaptured()) return fn();
  rollback_capture_waiters_.push_back(std::move(fn));
}

void Database::ReleaseRollbackWaiters() {
  if (rollback_capture_waiters_.empty() || rollback_captures_running_ != 0) return;
  std::vector<std::function<void()>> waiters;
  waiters.swap(rollback_capture_waiters_);
  for (auto& fn : waiters) fn();
}

void Database::SetCaptureSlot(CommitWindow* window, uint32_t slot) {
  ArmCapture(false);
  std::lock_guard<std::mutex> lock(mu_);
  capture_window_ = slot ? window : nullptr;
  capture_slot_ = slot;
}

void Database::ArmCapture(bool armed) {
  // Also called by capture jobs: the lock keeps the window from being
  // swapped (and freed) under them.
  std::lock_guard<std::mutex> lock(mu_);
  if (capture_window_) capture_window_->ArmCapture(capture_slot_, armed);
}

void Database::StartLingering() {
  lingering_ = true;
  linger_idle_ticks_ = 0;
  linger_rate_.Reset();
  ArmCapture(true);
  // Reopened for each run: the file may have been replaced since the last.
  Result<fs::UniqueFd> shm = fs::Open(db_path_ + "-shm", O_RDONLY);
  linger_shm_ = shm.ok() ? std::move(shm).value() : fs::UniqueFd();
  PostAsyncCapture(/*disarm_first=*/false);
}

void Database::StopLingering() {
  if (!lingering_) return;
  lingering_ = false;
  if (linger_timer_) linger_timer_->Stop();
  linger_shm_.Reset();
  ArmCapture(false);
}

void Database::ScheduleLingerTick(std::chrono::microseconds delay) {
  if (!linger_timer_) linger_timer_ = MicroTimer::Create(env_.loop);
  if (!linger_timer_) {
    // No timerfd: no lingering either (apps announce every commit).
    lingering_ = false;
    PostAsyncCapture(/*disarm_first=*/true);
    return;
  }
  linger_timer_->Start(delay, [this] { LingerTick(); });
}

void Database::LingerTick() {
  if (!lingering_) return;
  // A look at the wal-index header from the loop, without a job: has a
  // commit been published since the last capture read the WAL? (A torn or
  // unreadable header counts as one: the job will tell.)
  bool moved = true;
  if (linger_shm_.valid()) {
    Result<wal::Index::HeaderState> h = wal::ReadIndexHeader(linger_shm_.get());
    if (h.ok() && h->valid) {
      const WalIndexHeader& w = h->header;
      moved = w.mx_frame != linger_captured_end_.last_frame || w.salt1() != linger_captured_end_.salt1 ||
              w.salt2() != linger_captured_end_.salt2;
    }
  }
  if (moved) return PostAsyncCapture(/*disarm_first=*/false);
  if (++linger_idle_ticks_ < kLingerIdleTicks) return ScheduleLingerTick(kLingerTick);
  lingering_ = false;
  PostAsyncCapture(/*disarm_first=*/true);
}

void Database::PostAsyncCapture(bool disarm_first) {
  auto result = std::make_shared<Result<ltx::Pos>>(pos());
  auto found = std::make_shared<uint64_t>(0);
  auto end = std::make_shared<wire::WalFrames>();
  const uint64_t start_ns = uv_hrtime();
  strand_.Post(
      [this, result, found, end, disarm_first] {
        // Apps that saw the word armed published their commit before
        // looking (commit_window.h): cleared first, the read below finds
        // every commit that sent no message.
        if (disarm_first) ArmCapture(false);
        captured_in_job_ = 0;
        *result = CaptureCommittedJob(/*sync=*/false, end.get());
        *found = captured_in_job_;
        if (!result->ok()) wal_tail_.known = false;
      },
      [this, result, found, end, disarm_first, start_ns] {
        AfterAsyncCapture(disarm_first, result->ok(), *found, *end);
        CaptureFinished(*result, *found, start_ns);
      });
}

void Database::AfterAsyncCapture(bool disarm_first, bool ok, uint64_t found,
                                 const wire::WalFrames& end) {
  if (!ok) {
    // Recovery records what the failed capture did not.
    if (lingering_) ArmCapture(false);
    lingering_ = false;
    return;
  }
  // The last job of a run was not lingering; one that found commits started
  // no new run: a commit after its read sent its message.
  if (disarm_first || !lingering_) return;
  linger_captured_end_ = end;
  linger_rate_.Add(found, uv_hrtime());
  if (found > 0) {
    linger_idle_ticks_ = 0;
    return ScheduleLingerTick(linger_rate_.fast() ? kCapturePacing : kLingerTick);
  }
  if (++linger_idle_ticks_ < kLingerIdleTicks) return ScheduleLingerTick(kLingerTick);
  lingering_ = false;
  PostAsyncCapture(/*disarm_first=*/true);
}

void Database::CaptureFinished(const Result<ltx::Pos>& result, uint64_t captured, uint64_t start_ns) {
  if (!result.ok()) {
    log::Error("capture failed; recovering", {{"db", name_}, {"error", result.message()}});
    Recover();  // rebuilds the table and records the commit from the files
    return;
  }
  if (captured == 0) return;
  commit_count_ += captured;
  last_apply_lag_ms_ = 0;
  if (env_.metrics) env_.metrics->commit.Observe(double(uv_hrtime() - start_ns) / 1e9);
  Finished(Status(), true);
}

Result<ltx::Pos> Database::CommitJob(const wire::Message& commit) {
  // A WAL commit's file is synced only when the app waits for it; otherwise
  // the WAL is its durable record until a flush (capture_durability.h).
  const bool sync = (commit.flags & wire::kCommitSynced) && !(commit.flags & wire::kCommitFlush);
  LtxWriteOptions opts{env_.compress, env_.node_id, WallClockMs(), sync};
  captured_in_job_ = 0;
  copies_unflushed_in_job_ = false;
  Result<ltx::Pos> next = Status::Error("not captured");
  if (commit.flags & wire::kCommitWal) {
    next = CaptureWalUpTo(commit.wal, opts);
  } else {
    if (RecordedAlready(commit)) return pos();
    // Written unsynced either way; a synced commit's file is then kept
    // durable by a copy in the capture log (capture_durability.h).
    const bool keep_durable = opts.sync;
    opts.sync = false;
    LITEFS_RETURN_IF_ERROR(capture_durability_.BeforeUnsynced(pos().txid + 1));
    next = CaptureRollback(commit.ranges, pos(), opts);
    if (next.ok() && keep_durable) {
      // The app did not wait: the copy's flush may wait for the app's next
      // (capture_durability.h).
      const bool defer_flush = (commit.flags & wire::kCommitAsync) && CopiesShareDevice();
      Status kept =
          capture_durability_.KeepDurable(log_.PathFor({next->txid, next->txid}), log_.dir(), defer_flush);
      if (!kept.ok()) next = kept;
      copies_unflushed_in_job_ = defer_flush;
    }
    if (next.ok()) {
      SetPos(*next);
      Status st = WritePosFile(*next, opts.timestamp_ms);
      if (!st.ok()) next = st;
      captured_in_job_ = 1;
    }
    // Now the next writer may overwrite the pages, and a connection that
    // closes finds `<db>-pos` naming its commit (vfs/db_file.cc).
    if (next.ok()) PublishRollbackCaptured();
  }
  if (!next.ok()) {
    last_change_counter_ = 0;
    PublishRollbackCaptured();
    wal_tail_.known = false;
    return next;
  }
  // A flush comes before the WAL's frames may go; a synced commit promises
  // the files before it too.
  if ((commit.flags & wire::kCommitFlush) || opts.sync) {
    LITEFS_RETURN_IF_ERROR(capture_durability_.MakeDurable(log_.dir()));
  }
  return next;
}

// An async rollback-mode commit that a recovery took from the file before
// its message was read (the app had handed it over without waiting): the
// file, the same one, still carries the change counter the commit names.
// Capturing its ranges again would record nothing new — or, with the next
// writer already let through, pages of a transaction not yet committed.
bool Database::RecordedAlready(const wire::Message& commit) const {
  if (!(commit.flags & wire::kCommitCounter) || last_change_counter_ == 0 ||
      commit.change_counter != last_change_counter_) {
    return false;
  }
  struct stat st;
  return stat(db_path_.c_str(), &st) == 0 && st.st_ino == last_inode_;
}

bool Database::CopiesShareDevice() {
  if (!copies_share_device_) {
    struct stat db_dir, data_dir;
    copies_share_device_ = stat(env_.dir.c_str(), &db_dir) == 0 && stat(log_.dir().c_str(), &data_dir) == 0 &&
                           db_dir.st_dev == data_dir.st_dev;
  }
  return *copies_share_device_;
}

Result<ltx::Pos> Database::CaptureWalUpTo(wire::WalFrames f, LtxWriteOptions opts) {
  ltx::Pos at = pos();
  const bool same_wal = wal_tail_.known && f.salt1 == wal_tail_.salt1 && f.salt2 == wal_tail_.salt2;
  if (same_wal && f.last_frame <= wal_tail_.frame) return at;  // captured with an earlier message
  if (f.first_frame == 0) f.first_frame = 1;  // a flush names only the end
  // Everything after the last captured frame, whatever message announced
  // it; without history or a known tail CaptureWal records what it must.
  if (wal_tail_.known && at.txid != 0) f.first_frame = same_wal ? wal_tail_.frame + 1 : 1;
  if (!opts.sync) LITEFS_RETURN_IF_ERROR(capture_durability_.BeforeUnsynced(at.txid + 1));
  Result<ltx::Pos> next = CaptureWal(f, at, opts);
  if (!next.ok()) return next;
  SetPos(*next);
  LITEFS_RETURN_IF_ERROR(WritePosFile(*next, opts.timestamp_ms));
  return next;
}

// The WAL's last committed frame and salts, as SQLite published them in the
// wal-index header (frames up to it are whole), or, when no consistent
// header can be read, by scanning the WAL's checksums. Nothing (last_frame
// 0) when the database is not in WAL mode or its WAL is empty.
Result<wire::WalFrames> Database::CommittedWalEnd() const {
  Result<fs::UniqueFd> shm = fs::Open(db_path_ + "-shm", O_RDONLY);
  if (shm.ok()) {
    // The header is two copies written one after the other; a read between
    // the two writes sees them differ. A few tries, then the scan.
    for (int attempt = 0; attempt < 3; attempt++) {
      Result<wal::Index::HeaderState> h = wal::ReadIndexHeader(shm->get());
      if (!h.ok()) break;
      if (!h->valid) continue;
      const WalIndexHeader& w = h->header;
      return wire::WalFrames{w.salt1(), w.salt2(), 0, w.mx_frame, w.page_size(), w.n_page};
    }
  }
  Result<fs::UniqueFd> wal = fs::Open(db_path_ + "-wal", O_RDONLY);
  if (!wal.ok()) return wire::WalFrames{};  // not in WAL mode
  Result<wal::Committed> committed = wal::ScanCommitted(wal->get());
  if (!committed.ok()) return committed.status();
  const wal::Header& h = committed->header;
  return wire::WalFrames{h.salt1, h.salt2, 0, committed->last_frame, h.page_size, committed->db_pages};
}

Result<ltx::Pos> Database::CaptureCommittedJob(bool sync, wire::WalFrames* end_out) {
  Result<wire::WalFrames> end = CommittedWalEnd();
  if (!end.ok()) return end.status();
  if (end_out) *end_out = *end;
  if (end->last_frame == 0) return pos();
  LtxWriteOptions opts{env_.compress, env_.node_id, WallClockMs(), sync};
  Result<ltx::Pos> at = CaptureWalUpTo(*end, opts);
  if (at.ok() && sync) LITEFS_RETURN_IF_ERROR(capture_durability_.MakeDurable(log_.dir()));
  return at;
}

void Database::CaptureCommitted(bool sync, std::function<void()> done) {
  auto result = std::make_shared<Result<ltx::Pos>>(pos());
  auto captured = std::make_shared<uint64_t>(0);
  const uint64_t start_ns = uv_hrtime();
  strand_.Post(
      [this, result, captured, sync] {
        captured_in_job_ = 0;
        // Up to the WAL's last commit frame as SQLite published it, whatever
        // order the messages of several connections arrive in.
        *result = CaptureCommittedJob(sync);
        *captured = captured_in_job_;
        if (!result->ok()) wal_tail_.known = false;
      },
      [this, result, captured, start_ns, done = std::move(done)] {
        CaptureFinished(*result, *captured, start_ns);
        if (done) done();
      });
}

bool Database::ReplacedFile(ino_t ino) {
  bool replaced = last_inode_ != 0 && ino != last_inode_;
  if (replaced) log::Warn("the database file was replaced; recording every page", {{"db", name_}});
  last_inode_ = ino;
  return replaced;
}

void Database::RecordDeletion() {
  auto result = std::make_shared<Result<ltx::Pos>>(Status::Error("not run"));
  strand_.Post(
      [this, result] {
        ltx::Pos prev = pos();
        if (fs::Exists(db_path_) || prev.txid == 0 || checksums_.page_count() == 0) {
          *result = prev;  // recreated meanwhile, never recorded, or already empty
          return;
        }
        Result<DbView> none = DbView::Open(db_path_);  // missing: an empty database
        if (!none.ok()) {
          *result = none.status();
          return;
        }
        LtxWriteOptions opts{env_.compress, env_.node_id, WallClockMs(), /*sync=*/true};
        Result<ltx::Pos> next = WriteCommitLtx(*none, nullptr, prev, checksums_, log_, opts);
        if (next.ok()) {
          SetPos(*next);
          last_inode_ = 0;
          last_change_counter_ = 0;
          PublishRollbackCaptured();
          wal_tail_ = {true, 0, 0, 0};
          Status st = WritePosFile(*next, opts.timestamp_ms);
          if (!st.ok()) next = st;
        }
        *result = next;
      },
      [this, result] {
        if (!result->ok()) {
          log::Error("cannot record the deletion", {{"db", name_}, {"error", result->message()}});
          Recover();
          return;
        }
        if (result->value().checksum == ltx::kChecksumFlag && result->value().txid > 0) {
          log::Info("database deleted", {{"db", name_}, {"txid", ltx::FormatTXID(result->value().txid)}});
        }
        Finished(Status(), true);
      });
}

Result<ltx::Pos> Database::CaptureRollback(const std::vector<wire::ByteRange>& ranges,
                                           ltx::Pos prev, const LtxWriteOptions& opts) {
  Result<fs::UniqueFd> fd = fs::Open(db_path_, O_RDONLY);
  if (!fd.ok()) return fd.status();
  Result<DbShape> shape = ReadDbShape(fd->get(), db_path_);
  if (!shape.ok()) return shape.status();
  struct stat st;
  if (fstat(fd->get(), &st) != 0) return fs::ErrnoError("stat", db_path_);
  bool all_pages = ReplacedFile(st.st_ino);
  // Each commit bumps the counter by one, except under locking_mode=
  // EXCLUSIVE, which bumps it once per lock (and no one else can commit
  // while the lock is held).
  if (!all_pages && last_change_counter_ != 0 && shape->change_counter != last_change_counter_ &&
      shape->change_counter != last_change_counter_ + 1) {
    // Someone committed without the capture (a process without liblitefs,
    // a statically linked SQLite): record every page so nothing is missed.
    log::Warn("the database changed outside litefs; recording every page",
              {{"db", name_}, {"change_counter", std::to_string(shape->change_counter)},
               {"expected", std::to_string(last_change_counter_ + 1)}});
    all_pages = true;
  }
  DbFileSource source(fd->get(), *shape);
  std::vector<uint32_t> pages = PagesTouched(ranges, shape->page_size, shape->page_count);
  Result<ltx::Pos> next =
      WriteCommitLtx(source, all_pages ? nullptr : &pages, prev, checksums_, log_, opts);
  if (next.ok()) {
    last_change_counter_ = shape->change_counter;
    wal_tail_ = {true, 0, 0, 0};  // a rollback-mode commit leaves no WAL frames behind
  }
  return next;
}

Result<ltx::Pos> Database::CaptureWal(const wire::WalFrames& f, ltx::Pos prev,
                                      LtxWriteOptions opts) {
  const uint64_t frame_size = wal::kFrameHeaderSize + f.page_size;
  opts.wal_offset = int64_t(wal::FrameOffset(f.first_frame, f.page_size));
  opts.wal_size = int64_t(uint64_t(f.last_frame - f.first_frame + 1) * frame_size);
  opts.wal_salt1 = f.salt1;
  opts.wal_salt2 = f.salt2;
  struct stat st;
  if (stat(db_path_.c_str(), &st) != 0) return fs::ErrnoError("stat", db_path_);
  const bool replaced = ReplacedFile(st.st_ino);
  const bool same_wal = f.salt1 == wal_tail_.salt1 && f.salt2 == wal_tail_.salt2;
  const bool continuous = !replaced && wal_tail_.known &&
                          ((same_wal && f.first_frame == wal_tail_.frame + 1) ||
                           (f.first_frame == 1 && (!same_wal || wal_tail_.frame == 0)));
  Result<ltx::Pos> next = Status::Error("not written");
  if (continuous || prev.txid == 0) {
    Result<WalTransaction> tx = WalTransaction::Read(db_path_ + "-wal", f);
    if (!tx.ok()) return tx.status();
    opts.transactions = tx->commits();
    next = WriteCommitLtx(*tx, &tx->pages(), prev, checksums_, log_, opts);
    if (next.ok()) captured_in_job_ += opts.transactions;
    if (!next.ok() && prev.txid == 0) return next;
  }
  if (!continuous && prev.txid != 0) {
    // Frames before this transaction were committed without the capture:
    // record the whole database as of this transaction's commit frame.
    log::Warn("WAL frames were committed outside litefs; recording every page",
              {{"db", name_}, {"first_frame", std::to_string(f.first_frame)}});
    Result<DbView> view = DbView::Open(db_path_, f.last_frame);
    if (!view.ok()) return view.status();
    if (view->wal().last_frame != f.last_frame || view->wal().header.salt1 != f.salt1) {
      return Status::Error(db_path_ + "-wal does not hold the announced transaction");
    }
    next = WriteCommitLtx(*view, nullptr, prev, checksums_, log_, opts);
    if (next.ok()) captured_in_job_++;
  }
  if (next.ok()) {
    wal_tail_ = {true, f.salt1, f.salt2, f.last_frame};
    last_change_counter_ = 0;  // WAL commits do not move it
    PublishRollbackCaptured();
  }
  return next;
}

// ---- replica: apply ---------------------------------------------------------

void Database::ApplyReceived(std::vector<ReceivedLtx> files, std::function<void(Status)> done) {
  struct Outcome {
    Status status;
    size_t applied = 0;
    bool rollback_mode = false;
  };
  auto result = std::make_shared<Outcome>();
  const uint64_t start_ns = uv_hrtime();
  strand_.Post(
      [this, result, files = std::move(files)] {
        result->status = ApplyBatchJob(files, result->applied, result->rollback_mode);
        NoteAppliedWalEnd();
        if (!result->status.ok()) {
          for (const ReceivedLtx& f : files) {
            if (!f.tmp_path.empty()) unlink(f.tmp_path.c_str());  // those not installed
          }
        }
      },
      [this, result, start_ns, done = std::move(done)] {
        last_apply_in_rollback_mode_ = result->rollback_mode;
        if (result->applied > 0) {
          apply_count_ += result->applied;
          last_apply_lag_ms_ = WallClockMs() - pos_timestamp_ms();
          if (env_.metrics) env_.metrics->apply.Observe(double(uv_hrtime() - start_ns) / 1e9);
        }
        const Status& st = result->status;
        if (st.ok()) {
          Finished(Status(), true);
          MaybeCheckpoint();
        } else if (sqlite::IsLockTimeout(st)) {
          // Readers (or a writer) kept the lock: nothing more was changed,
          // so no recovery, which would only wait for the same lock again.
          log::Warn("apply postponed: the database stayed locked", {{"db", name_}, {"error", st.message()}});
          if (result->applied > 0) Finished(Status(), true);
        } else {
          // Whatever failed, realign the position and table with the files.
          log::Error("apply failed; recovering", {{"db", name_}, {"error", st.message()}});
          Recover();
        }
        done(st);
      });
}

Status Database::ApplyBatchJob(const std::vector<ReceivedLtx>& files, size_t& applied,
                               bool& rollback_mode) {
  applied = 0;
  size_t next = 0;
  while (next < files.size()) {
    // The longest run of plain transactions from here (no snapshot, no
    // deletion, the page size of the database), verified and checked to
    // continue one another.
    std::vector<VerifiedLtx> run;
    Status stop;
    const bool wal = IsWalDatabase(db_path_);
    rollback_mode = !wal;
    ltx::Pos at = pos();
    for (size_t k = next; k < files.size(); k++) {
      Result<VerifiedLtx> ltx = VerifyReceivedLtx(files[k]);
      if (!ltx.ok()) {
        stop = ltx.status();
        break;
      }
      const ltx::Header& h = ltx->header;
      if (h.IsSnapshot() || h.commit == 0) break;  // applies alone, below
      if (!wal && h.page_size != checksums_.page_size()) break;
      if (h.min_txid != at.txid + 1 || h.pre_apply_checksum != at.checksum) break;  // ApplyJob says why
      at = {h.max_txid, ltx->trailer.post_apply_checksum};
      run.push_back(std::move(ltx).value());
    }
    // A rollback-mode run pays one journal and its syncs: worth it from two
    // files on. A WAL run of one still saves reading the file twice.
    if (run.size() >= (wal ? 1u : 2u)) {
      size_t n = 0;
      Status st = ApplyRun(std::span(files).subspan(next, run.size()), run, wal, n);
      applied += n;
      next += n;
      if (!st.ok()) return st;
      continue;
    }
    if (run.empty() && !stop.ok()) return stop;
    LITEFS_RETURN_IF_ERROR(ApplyJob(files[next]));
    applied++;
    next++;
  }
  return Status();
}

Status Database::InstallReceived(const ReceivedLtx& file, ltx::TXIDRange range) {
  // Not synced (replica_durability.h).
  if (file.bytes) return log_.Put(range, file.bytes, /*sync=*/false);
  return log_.Install(file.tmp_path, range, /*sync=*/false);
}

Status Database::ApplyRun(std::span<const ReceivedLtx> files, std::vector<VerifiedLtx>& run, bool wal,
                          size_t& applied) {
  applied = 0;
  // As in ApplyJob: installed before they are applied, nothing synced.
  LITEFS_RETURN_IF_ERROR(durability_.BeforeUnsyncedApply());
  // Installed but not applied: out of the log again (recovery, which the
  // error triggers, would also find the database behind them).
  auto forget = [this](const VerifiedLtx& l) {
    Status st = log_.Remove({l.header.min_txid, l.header.max_txid});
    if (!st.ok()) log::Warn("cannot remove an LTX file that was not applied", {{"db", name_}, {"error", st.message()}});
  };
  std::vector<std::string> paths;
  for (size_t k = 0; k < run.size(); k++) {
    ltx::TXIDRange range{run[k].header.min_txid, run[k].header.max_txid};
    Status st = InstallReceived(files[k], range);
    if (!st.ok()) {
      for (size_t u = 0; u < k; u++) forget(run[u]);
      return st;
    }
    paths.push_back(log_.PathFor(range));
  }
  std::vector<LtxApplyItem> items;
  for (size_t k = 0; k < run.size(); k++) items.push_back({&paths[k], &run[k]});
  ApplyOptions options;
  options.sync_wal = false;
  Result<uint32_t> frames = 0u;
  if (wal) {
    frames = ApplyLtxBatchToWal(db_path_, items, checksums_, options, applied);
  } else {
    durability_.ReleaseWal();  // the apply needs EXCLUSIVE
    Status st = ApplyVerifiedLtxRun(db_path_, items, checksums_, options);
    applied = st.ok() ? run.size() : 0;
    if (!st.ok()) frames = st;
  }
  for (size_t k = applied; k < run.size(); k++) forget(run[k]);
  if (applied == 0) return frames.status();
  if (wal) durability_.HoldWal();
  for (size_t k = 0; k < applied; k++) {
    const ltx::Pos at{run[k].header.max_txid, run[k].trailer.post_apply_checksum};
    SetPos(at);
    // One event per file, as if each had been applied alone; the last is
    // noted with the position file below.
    if (k + 1 < applied) NoteChange(at, run[k].header.page_size, run[k].header.commit, run[k].header.timestamp_ms);
  }
  const ltx::Header& last = run[applied - 1].header;
  Status written = WritePosFile(pos(), last.timestamp_ms);
  if (!frames.ok()) return frames.status();
  wal_frames_ = *frames;
  return written;
}

void Database::MaybeCheckpoint() {
  if (wal_frames_ < kReplicaCheckpointFrames) checkpoint_at_frames_ = kReplicaCheckpointFrames;  // started over
  if (wal_frames_ < checkpoint_at_frames_ || checkpointing_) return;
  checkpointing_ = true;
  // The checkpoint syncs the WAL before copying it, and the applies wait
  // behind it on the strand. Most of the WAL was written unsynced by the
  // applies: flushing it first, on the second strand while the applies go
  // on, leaves the checkpoint's own sync only the frames appended since.
  snapshot_strand_.Post([wal = db_path_ + "-wal"] {
    // An optimisation only: the checkpoint syncs the WAL anyway.
    if (Result<fs::UniqueFd> fd = fs::Open(wal, O_RDONLY); fd.ok()) fdatasync(fd->get());
  }, [this] { CheckpointOnStrand(); });
}

void Database::NoteAppliedWalEnd() {
  Result<wire::WalFrames> end = CommittedWalEnd();
  if (end.ok()) {
    wal_tail_ = {true, end->salt1, end->salt2, end->last_frame};
  } else {
    wal_tail_.known = false;
  }
}

void Database::CheckpointOnStrand() {
  // On the strand: the applies received meanwhile run after it, and the
  // next one starts the WAL over if every frame was copied.
  auto copied_all = std::make_shared<Result<bool>>(false);
  strand_.Post(
      [this, copied_all] {
        std::unique_lock<std::mutex> files(sqlite_files_mu_, std::try_to_lock);
        if (files.owns_lock()) *copied_all = CheckpointReplicaWal(db_path_);
      },
      [this, copied_all] {
        checkpointing_ = false;
        if (!copied_all->ok()) log::Warn("replica checkpoint failed", {{"db", name_}, {"error", copied_all->message()}});
        if (!copied_all->ok() || !**copied_all) checkpoint_at_frames_ = wal_frames_ + kReplicaCheckpointFrames;
      });
}

Status Database::ApplyJob(const ReceivedLtx& file) {
  // Nothing reaches the database before the whole file has been verified.
  Result<VerifiedLtx> ltx = VerifyReceivedLtx(file);
  if (!ltx.ok()) return ltx.status();
  const ltx::Header& header = ltx->header;
  ltx::Pos current = pos();
  if (!header.IsSnapshot()) {
    if (header.min_txid != current.txid + 1 || header.pre_apply_checksum != current.checksum) {
      return Status::Error("position mismatch for " + name_ + ": at " + ltx::FormatPos(current) +
                           ", file " + ltx::FormatFileName(header.min_txid, header.max_txid) +
                           " expects " + ltx::FormatTXID(header.min_txid - 1) + "/" +
                           ltx::FormatChecksum(header.pre_apply_checksum));
    }
  }
  ltx::TXIDRange range{header.min_txid, header.max_txid};
  // Nothing here is synced (replica_durability.h). A file kept in memory is
  // written under its name here: a crash may leave it torn, and recovery
  // drops it (DropTornNewestLtx) before going back to the database's
  // position; a power failure is what the marker is for.
  LITEFS_RETURN_IF_ERROR(durability_.BeforeUnsyncedApply());
  LITEFS_RETURN_IF_ERROR(InstallReceived(file, range));
  if (header.IsSnapshot()) LITEFS_RETURN_IF_ERROR(log_.RemoveAllExcept(range));
  const bool wal = header.commit != 0 && IsWalDatabase(db_path_);
  if (!wal) durability_.ReleaseWal();  // the apply needs EXCLUSIVE, or deletes the files
  ApplyOptions options;
  options.sync_wal = false;
  Result<uint32_t> wal_frames = ApplyToDatabase(db_path_, log_.PathFor(range), *ltx, checksums_, options);
  if (!wal_frames.ok()) return wal_frames.status();
  wal_frames_ = *wal_frames;
  if (wal) durability_.HoldWal();
  ltx::Pos next{header.max_txid, ltx->trailer.post_apply_checksum};
  SetPos(next);
  return WritePosFile(next, header.timestamp_ms);
}

void Database::MakeAppliesDurable() {
  strand_.Post([this] {
    Status st = durability_.MakeDurable(log_.dir());
    if (!st.ok()) log::Error("cannot make the replica's applies durable", {{"db", name_}, {"error", st.message()}});
  });
}

void Database::EnforceRetention(std::chrono::milliseconds retention) {
  auto doomed = std::make_shared<std::vector<std::string>>();
  strand_.Post(
      [this, retention, doomed] { *doomed = log_.ForgetOlderThan((WallClockMs() - retention.count()) / 1000); },
      [this, doomed] {
        if (doomed->empty()) return;
        // Out of the index already: no apply, commit or stream looks them up
        // again (a stream sending one keeps reading its open descriptor).
        snapshot_strand_.Post([this, doomed] {
          for (const std::string& path : *doomed) {
            Status st = fs::RemoveFile(path);
            if (!st.ok()) return log::Warn("retention sweep failed", {{"db", name_}, {"error", st.message()}});
          }
          log::Debug("retention removed LTX files", {{"db", name_}, {"count", std::to_string(doomed->size())}});
        });
      });
}

// ---- primary: import --------------------------------------------------------

struct Database::ImportState {
  std::string import_path;
  ImportFile file;
  std::chrono::steady_clock::time_point deadline;
  std::function<void(Result<ltx::Pos>)> done;
  // The LTX written for position `written_for`, kept across attempts that
  // could not take the locks (rewritten if a commit moved the position).
  std::string ltx_path;
  ltx::Pos written_for;
  bool busy = false;  // the last attempt could not take SQLite's locks
  ~ImportState() {
    if (!ltx_path.empty()) unlink(ltx_path.c_str());
  }
};

// How long one attempt waits for SQLite's locks, and all attempts together.
// An attempt runs on the strand, so the commit of an app holding the write
// lock waits behind it: attempts stay short and the strand is released in
// between.
constexpr std::chrono::milliseconds kImportLockWait{500};
constexpr std::chrono::seconds kImportDeadline{30};

void Database::Import(std::string path, std::function<void(Result<ltx::Pos>)> done) {
  auto state = std::make_shared<ImportState>();
  state->import_path = std::move(path);
  state->deadline = std::chrono::steady_clock::now() + kImportDeadline;
  state->done = std::move(done);
  Result<ImportFile> file = ValidateImportFile(state->import_path);
  if (!file.ok()) return state->done(file.status());
  state->file = *file;
  RunImport(std::move(state));
}

void Database::RunImport(std::shared_ptr<ImportState> state) {
  auto result = std::make_shared<Result<ltx::Pos>>(Status::Error("not run"));
  strand_.Post([this, state, result] { *result = ImportJob(*state); },
               [this, state, result] {
                 const bool was_waiting = import_waiting_;
                 import_waiting_ = !result->ok() && state->busy &&
                                   std::chrono::steady_clock::now() < state->deadline;
                 if (import_waiting_ && !was_waiting) WithdrawWriteApprovals();  // new writers are turned away
                 if (result->ok()) {
                   commit_count_++;
                   last_apply_lag_ms_ = 0;
                   log::Info("database imported", {{"db", name_}, {"pos", ltx::FormatPos(**result)}});
                   Finished(Status(), true);
                   return state->done(*result);
                 }
                 if (import_waiting_) return RunImport(state);  // behind commits queued meanwhile
                 log::Error("import failed", {{"db", name_}, {"error", result->message()}});
                 if (!state->busy) Recover();  // realign the checksum table with the files
                 state->done(state->busy ? Status::Error("database busy: " + result->message())
                                         : result->status());
               });
}

Result<ltx::Pos> Database::ImportJob(ImportState& state) {
  state.busy = false;
  // WAL commits waiting in the WAL come first: the import follows them.
  LITEFS_RETURN_IF_ERROR(CaptureCommittedJob(/*sync=*/true).status());
  const ltx::Pos prev = pos();
  if (state.ltx_path.empty() || state.written_for != prev) {
    if (!state.ltx_path.empty()) unlink(state.ltx_path.c_str());
    state.ltx_path.clear();
    LITEFS_RETURN_IF_ERROR(log_.Init());
    Result<ReplacedDb> old = ReadReplacedDb(db_path_);
    if (!old.ok()) return old.status();
    std::string tmp = log_.NewTempPath();
    LtxWriteOptions opts{env_.compress, env_.node_id, WallClockMs(), /*sync=*/true};
    Result<SnapshotFile> written = WriteImportLtx(state.import_path, state.file, *old, prev, tmp, opts);
    if (!written.ok()) return written.status();
    state.ltx_path = tmp;
    state.written_for = prev;
  }
  Result<VerifiedLtx> ltx = ReadAndVerifyLtx(state.ltx_path);
  if (!ltx.ok()) return ltx.status();
  // The same path as a replica's apply: SQLite's locks, a hot journal or
  // WAL frames, so open connections see all of the import or none of it.
  ApplyOptions apply;
  apply.lock_timeout = kImportLockWait;
  // An app may commit between the capture above and the apply's lock: then
  // the apply stops, and the next try captures that commit first.
  // In a rollback journal mode such a commit may also have been handed
  // over without waiting: its message is then still to come.
  if (wal_tail_.known) apply.expect_wal_end = ApplyOptions::WalEnd{wal_tail_.salt1, wal_tail_.salt2, wal_tail_.frame};
  if (last_change_counter_ != 0) apply.expect_change_counter = last_change_counter_;
  Result<uint32_t> applied = ApplyToDatabase(db_path_, state.ltx_path, *ltx, checksums_, apply);
  if (!applied.ok()) {
    state.busy = sqlite::IsLockTimeout(applied.status()) || IsUncapturedWal(applied.status()) ||
                 IsUncapturedRollbackCommit(applied.status());
    return applied.status();
  }
  const ltx::Header& h = ltx->header;
  LITEFS_RETURN_IF_ERROR(log_.Install(state.ltx_path, {h.max_txid, h.max_txid}, /*sync=*/true));
  state.ltx_path.clear();
  ResetCaptureTail();
  ltx::Pos next{h.max_txid, ltx->trailer.post_apply_checksum};
  SetPos(next);
  LITEFS_RETURN_IF_ERROR(WritePosFile(next, h.timestamp_ms));
  return next;
}

void Database::ResetCaptureTail() {
  Result<DbView> view = DbView::Open(db_path_);
  struct stat st;
  last_inode_ = stat(db_path_.c_str(), &st) == 0 ? st.st_ino : 0;
  if (!view.ok()) {
    wal_tail_.known = false;
    last_change_counter_ = 0;
    PublishRollbackCaptured();
    return;
  }
  const wal::Committed& w = view->wal();
  wal_tail_ = {true, w.header.salt1, w.header.salt2, w.last_frame};
  last_change_counter_ = w.last_frame == 0 ? view->file_shape().change_counter : 0;
  PublishRollbackCaptured();
}

// ---- primary: snapshots -----------------------------------------------------

void Database::MakeSnapshot(std::string path, std::function<void(Result<SnapshotFile>)> done) {
  auto result = std::make_shared<Result<SnapshotFile>>(Status::Error("not run"));
  snapshot_strand_.Post(
      [this, result, path = std::move(path)] { *result = SnapshotJob(path); },
      [result, done = std::move(done)] { done(std::move(*result)); });
}

void Database::Export(std::string path, std::function<void(Result<uint64_t>)> done) {
  auto result = std::make_shared<Result<uint64_t>>(Status::Error("not run"));
  snapshot_strand_.Post([this, result, path = std::move(path)] { *result = ExportJob(path); },
                        [result, done = std::move(done)] { done(std::move(*result)); });
}

Result<uint64_t> Database::ExportJob(const std::string& path) {
  std::lock_guard<std::mutex> files(sqlite_files_mu_);
  Result<fs::UniqueFd> fd = fs::Open(db_path_, O_RDONLY);
  if (!fd.ok()) return fd.status();
  Result<sqlite::SharedLock> lock = sqlite::SharedLock::Acquire(fd->get(), kReadLockTimeout, db_path_);
  if (!lock.ok()) return lock.status();
  Result<sqlite::WalFreeze> freeze = sqlite::WalFreeze::Acquire(db_path_, kReadLockTimeout);
  if (!freeze.ok()) return freeze.status();
  Result<DbView> view = DbView::Open(db_path_);
  if (!view.ok()) return view.status();
  Result<fs::UniqueFd> out = fs::Open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (!out.ok()) return out.status();
  const uint32_t ps = view->page_size();
  std::vector<uint8_t> page(ps);
  const uint32_t lock_pgno = ltx::LockPgno(ps);
  io::FdWriter direct(out->get());
  io::BufferedWriter w(direct, 1 << 20);
  for (uint32_t pgno = 1; pgno <= view->page_count(); pgno++) {
    if (pgno == lock_pgno) {
      std::fill(page.begin(), page.end(), 0);  // never holds data
    } else {
      LITEFS_RETURN_IF_ERROR(view->ReadPage(pgno, page));
    }
    LITEFS_RETURN_IF_ERROR(w.Write(page));
  }
  LITEFS_RETURN_IF_ERROR(w.Flush());
  return uint64_t(view->page_count()) * ps;
}

Result<SnapshotFile> Database::SnapshotJob(const std::string& path) {
  std::lock_guard<std::mutex> files(sqlite_files_mu_);
  Result<fs::UniqueFd> fd = fs::Open(db_path_, O_RDONLY);
  if (!fd.ok()) return fd.status();
  // SHARED keeps rollback-mode writers out, so the position read under it
  // describes exactly the file; in WAL mode the freeze keeps the frames in
  // place and the checksum check below proves the view is at the position.
  Result<sqlite::SharedLock> lock = sqlite::SharedLock::Acquire(fd->get(), kReadLockTimeout, db_path_);
  if (!lock.ok()) return lock.status();
  Result<bool> hot = sqlite::HasHotJournal(db_path_, fd->get());
  if (!hot.ok()) return hot.status();
  if (*hot) return Status::Error(db_path_ + " has a hot journal; snapshot postponed");
  Result<sqlite::WalFreeze> freeze = sqlite::WalFreeze::Acquire(db_path_, kReadLockTimeout);
  if (!freeze.ok()) return freeze.status();
  // The view must stop where the position does. WAL commits may wait in the
  // WAL uncaptured (an app does not wait for the capture of a commit it did
  // not sync), and a commit may be between its frames and its capture: the
  // view keeps to the frames the position's capture ended at. With the WAL
  // write lock held for the moment, no frame is being written; the freeze
  // then keeps the frames in place while writers go on. Without this, a
  // busy primary's snapshots ran ahead of their position and failed.
  Result<fs::UniqueFd> shm = fs::Open(db_path_ + "-shm", O_RDWR);
  if (shm.ok()) {
    LITEFS_RETURN_IF_ERROR(sqlite::LockWithin(shm->get(), F_WRLCK, sqlite::kShmWriteByte, 1, kReadLockTimeout,
                                              "the WAL write lock of " + db_path_));
  }
  ltx::Pos at;
  WalTail tail;
  {
    std::lock_guard<std::mutex> lock(mu_);
    at = pos_;
    tail = pos_wal_tail_;
  }
  Result<DbView> view = tail.known ? DbView::OpenAtWalTail(db_path_, tail.salt1, tail.salt2, tail.frame)
                                   : DbView::Open(db_path_);
  if (shm.ok()) sqlite::Unlock(shm->get(), sqlite::kShmWriteByte, 1);
  if (!view.ok()) return view.status();
  LtxWriteOptions opts{env_.compress, env_.node_id, WallClockMs(), /*sync=*/false};
  return WriteSnapshotLtx(*view, at, path, opts);
}

}  // namespace litefs
