// See database.h. Recovery rules: docs/recovery.md.
#include "sidecar/database.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <memory>

#include "sidecar/db_pages.h"
#include "sidecar/fsutil.h"
#include "sidecar/hot_journal.h"
#include "sidecar/log.h"
#include "sidecar/ltx_apply.h"
#include "sidecar/sqlite_locks.h"

namespace litefs {
namespace {

constexpr std::chrono::milliseconds kReadLockTimeout{30000};

int64_t NowMs() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return int64_t(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

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
      pos_path_(env.dir + "/" + name_ + "-pos"),
      log_(env.data_dir + "/dbs/" + name_ + "/ltx"),
      strand_(env.loop),
      snapshot_strand_(env.loop) {}

ltx::Pos Database::pos() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pos_;
}

void Database::SetPos(ltx::Pos pos) {
  std::lock_guard<std::mutex> lock(mu_);
  pos_ = pos;
}

Status Database::WritePosFile(ltx::Pos pos, int64_t timestamp_ms) {
  LITEFS_RETURN_IF_ERROR(fs::WriteFileAtomic(pos_path_, ltx::FormatPos(pos) + "\n",
                                             /*sync=*/false, 0644));
  // LiteFS shows the LTX timestamp as the file's mtime.
  struct timespec times[2];
  times[0].tv_sec = timestamp_ms / 1000;
  times[0].tv_nsec = (timestamp_ms % 1000) * 1000000;
  times[1] = times[0];
  utimensat(AT_FDCWD, pos_path_.c_str(), times, 0);
  return Status();
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
  auto result = std::make_shared<Status>();
  strand_.Post([this, result] { *result = RecoverJob(); },
               [this, result, done = std::move(done)] {
                 if (!result->ok()) log::Error("recovery failed", {{"db", name_}, {"error", result->message()}});
                 Finished(*result, true);
                 if (done) done(*result);
               });
}

Status Database::RecoverJob() {
  LITEFS_RETURN_IF_ERROR(log_.Init());
  ltx::Pos logged;
  std::optional<std::pair<ltx::Header, ltx::Trailer>> latest;
  if (std::optional<ltx::TXIDRange> r = log_.Latest()) {
    Result<std::pair<ltx::Header, ltx::Trailer>> ends = log_.ReadEnds(*r);
    if (!ends.ok()) return ends.status();
    latest = *ends;
    logged = {ends->first.max_txid, ends->second.post_apply_checksum};
  }

  // A crashed writer's hot journal is undone first, by SQLite itself.
  if (fs::Exists(db_path_ + "-journal")) LITEFS_RETURN_IF_ERROR(RollBackHotJournal(db_path_));

  Result<fs::UniqueFd> fd = fs::Open(db_path_, O_RDONLY);
  std::optional<sqlite::SharedLock> lock;
  if (fd.ok()) {
    Result<sqlite::SharedLock> got = sqlite::SharedLock::Acquire(fd->get(), kReadLockTimeout, db_path_);
    if (!got.ok()) return got.status();
    lock.emplace(std::move(got).value());
    Result<DbShape> shape = ReadDbShape(fd->get(), db_path_);
    if (!shape.ok()) return shape.status();
    LITEFS_RETURN_IF_ERROR(checksums_.Load(fd->get(), shape->page_size, shape->page_count));
    last_change_counter_ = shape->change_counter;
  } else {
    checksums_.Reset(0);  // no file: an empty database
    last_change_counter_ = 0;
  }
  const uint64_t actual = checksums_.value();

  if (!latest) {
    // No history: LiteFS's rule is position zero whatever the file holds;
    // the first commit will be a snapshot of it.
    SetPos({});
    return Status();
  }
  if (actual == logged.checksum) {
    SetPos(logged);
    return WritePosFile(logged, latest->first.timestamp_ms);
  }
  const ltx::Header& h = latest->first;
  if (h.IsSnapshot() || h.pre_apply_checksum == actual) {
    // The last file was recorded but the database does not show it (an
    // apply interrupted, or a journal that came back after a power loss):
    // apply it again; pages are absolute, so this is idempotent.
    log::Warn("re-applying the last LTX file", {{"db", name_}, {"txid", ltx::FormatTXID(h.max_txid)}});
    lock.reset();
    fd->Reset();
    std::string path = log_.PathFor({h.min_txid, h.max_txid});
    Result<VerifiedLtx> ltx = ReadAndVerifyLtx(path);
    if (!ltx.ok()) return ltx.status();
    LITEFS_RETURN_IF_ERROR(ApplyVerifiedLtx(db_path_, path, *ltx, checksums_, ApplyOptions{}));
    SetPos(logged);
    return WritePosFile(logged, h.timestamp_ms);
  }
  // The database changed without a capture (the writer died between its
  // commit point and the hand-over): record its current state as the next
  // transaction so nothing committed is lost and replicas follow.
  if (!fd.ok()) {
    log::Warn("database file is missing; recording it as deleted", {{"db", name_}});
  } else {
    log::Warn("database changed without an LTX; recording its pages as the next transaction",
              {{"db", name_}, {"txid", ltx::FormatTXID(logged.txid + 1)}});
  }
  LtxWriteOptions opts{env_.compress, env_.node_id, NowMs(), /*sync=*/true};
  Result<ltx::Pos> pos = WriteCommitLtx(fd.ok() ? fd->get() : -1, db_path_, {},
                                        /*all_pages=*/true, logged, checksums_, log_, opts);
  if (!pos.ok()) return pos.status();
  SetPos(*pos);
  return WritePosFile(*pos, opts.timestamp_ms);
}

// ---- primary: capture -------------------------------------------------------

void Database::Commit(std::vector<wire::ByteRange> ranges, bool synced,
                      std::function<void(Result<ltx::Pos>)> done) {
  auto result = std::make_shared<Result<ltx::Pos>>(Status::Error("not run"));
  strand_.Post(
      [this, result, ranges = std::move(ranges), synced] { *result = CommitJob(ranges, synced); },
      [this, result, done = std::move(done)] {
        if (result->ok()) {
          Finished(Status(), true);
        } else {
          log::Error("capture failed; recovering", {{"db", name_}, {"error", result->message()}});
          Recover();  // rebuilds the table and records the commit from the file
        }
        done(*result);
      });
}

Result<ltx::Pos> Database::CommitJob(const std::vector<wire::ByteRange>& ranges, bool synced) {
  Result<fs::UniqueFd> fd = fs::Open(db_path_, O_RDONLY);
  if (!fd.ok()) return fd.status();
  Result<DbShape> shape = ReadDbShape(fd->get(), db_path_);
  if (!shape.ok()) return shape.status();
  bool all_pages = false;
  if (last_change_counter_ != 0 && shape->change_counter != last_change_counter_ + 1) {
    // Someone committed without the capture (a process without liblitefs,
    // a statically linked SQLite): record every page so nothing is missed.
    log::Warn("the database changed outside litefs; recording every page",
              {{"db", name_}, {"change_counter", std::to_string(shape->change_counter)},
               {"expected", std::to_string(last_change_counter_ + 1)}});
    all_pages = true;
  }
  ltx::Pos prev = pos();
  LtxWriteOptions opts{env_.compress, env_.node_id, NowMs(), synced};
  Result<ltx::Pos> next =
      WriteCommitLtx(fd->get(), db_path_, ranges, all_pages, prev, checksums_, log_, opts);
  if (!next.ok()) {
    last_change_counter_ = 0;
    return next;
  }
  last_change_counter_ = shape->change_counter;
  SetPos(*next);
  LITEFS_RETURN_IF_ERROR(WritePosFile(*next, opts.timestamp_ms));
  return next;
}

// ---- replica: apply ---------------------------------------------------------

void Database::ApplyReceived(std::string tmp_path, std::function<void(Status)> done) {
  auto result = std::make_shared<Status>();
  strand_.Post(
      [this, result, tmp_path = std::move(tmp_path)] {
        *result = ApplyJob(tmp_path);
        if (!result->ok()) unlink(tmp_path.c_str());
      },
      [this, result, done = std::move(done)] {
        if (result->ok()) {
          Finished(Status(), true);
        } else {
          // Whatever failed, realign the position and table with the files.
          log::Error("apply failed; recovering", {{"db", name_}, {"error", result->message()}});
          Recover();
        }
        done(*result);
      });
}

Status Database::ApplyJob(const std::string& tmp_path) {
  // Nothing reaches the database before the whole file has been verified.
  Result<VerifiedLtx> ltx = ReadAndVerifyLtx(tmp_path);
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
  LITEFS_RETURN_IF_ERROR(log_.Install(tmp_path, range, /*sync=*/true));
  if (header.IsSnapshot()) LITEFS_RETURN_IF_ERROR(log_.RemoveAllExcept(range));
  LITEFS_RETURN_IF_ERROR(
      ApplyVerifiedLtx(db_path_, log_.PathFor(range), *ltx, checksums_, ApplyOptions{}));
  ltx::Pos next{header.max_txid, ltx->trailer.post_apply_checksum};
  SetPos(next);
  return WritePosFile(next, header.timestamp_ms);
}

// ---- primary: snapshots -----------------------------------------------------

void Database::MakeSnapshot(std::string path, std::function<void(Result<SnapshotFile>)> done) {
  auto result = std::make_shared<Result<SnapshotFile>>(Status::Error("not run"));
  snapshot_strand_.Post(
      [this, result, path = std::move(path)] {
        Result<fs::UniqueFd> fd = fs::Open(db_path_, O_RDONLY);
        if (!fd.ok()) {
          *result = fd.status();
          return;
        }
        // While we hold SHARED no commit can happen, so the position read
        // under it describes exactly the file we read.
        Result<sqlite::SharedLock> lock =
            sqlite::SharedLock::Acquire(fd->get(), kReadLockTimeout, db_path_);
        if (!lock.ok()) {
          *result = lock.status();
          return;
        }
        Result<bool> hot = sqlite::HasHotJournal(db_path_, fd->get());
        if (!hot.ok() || *hot) {
          *result = Status::Error(db_path_ + " has a hot journal; snapshot postponed");
          return;
        }
        LtxWriteOptions opts{env_.compress, env_.node_id, NowMs(), /*sync=*/false};
        *result = WriteSnapshotLtx(fd->get(), db_path_, pos(), path, opts);
      },
      [result, done = std::move(done)] { done(std::move(*result)); });
}

}  // namespace litefs
