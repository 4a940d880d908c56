// One replicated database: its files (`<dir>/<name>`, `<dir>/<name>-pos` and
// its spare `.<name>-pos.next`,
// `<data-dir>/dbs/<name>/ltx/`), its position, its page checksum table, and
// the operations that change them — recovery, capturing a commit on the
// primary, applying a received LTX on a replica — run in order on the
// database's strand (thread pool), with completions on the loop thread.
// Snapshots for replicas are written, and files past retention deleted, on a
// second strand so that neither delays a commit or an apply.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ltx/header.h"
#include "ltx/pos.h"
#include "ltx/status.h"
#include "sidecar/ltx_apply.h"
#include "sidecar/ltx_log.h"
#include "sidecar/ltx_writer.h"
#include "sidecar/page_checksums.h"
#include "sidecar/capture_durability.h"
#include "sidecar/commit_rate.h"
#include "sidecar/commit_window.h"
#include "sidecar/micro_timer.h"
#include "sidecar/replica_durability.h"
#include "sidecar/pos_file.h"
#include "sidecar/strand.h"
#include "sidecar/wal_checkpoint.h"
#include "vfs/commit_protocol.h"

namespace litefs {

// What every database of a node shares.
class WalCheckpointer;
struct NodeMetrics;

struct DatabaseEnv {
  uv_loop_t* loop = nullptr;
  std::string dir;       // the managed directory
  std::string data_dir;  // the sidecar's own state
  bool compress = true;
  uint64_t node_id = 0;
  NodeMetrics* metrics = nullptr;  // loop thread; optional
  // Loop thread; optional: makes every app connection ask the sidecar
  // before its next write transaction (vfs/commit_window.h), because an
  // approval given earlier may no longer hold.
  std::function<void()> withdraw_write_approvals;
};

// One change of a database's position, as GET /events reports it.
struct PosChange {
  uint64_t seq = 0;  // per database, +1 per change
  ltx::Pos pos;
  uint32_t page_size = 0;
  uint32_t commit = 0;  // database size in pages
  int64_t timestamp_ms = 0;  // of the LTX file behind the position
};

// "the database name is valid": a plain file name inside the managed
// directory — no '/', no NUL, not "." or "..", not hidden, not one of
// SQLite's or LiteFS's side-file suffixes, at most 255 bytes.
Status ValidateDbName(std::string_view name);

class Database {
 public:
  Database(const DatabaseEnv& env, std::string name);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  const std::string& name() const { return name_; }
  const std::string& db_path() const { return db_path_; }
  LtxLog& log() { return log_; }
  ltx::Pos pos() const;  // thread-safe
  // Timestamp (ms since the epoch) of the LTX file behind the position.
  int64_t pos_timestamp_ms() const;
  // The latest position changes with seq > `after`, oldest first (the last
  // kRecentChanges are kept). Thread-safe.
  std::vector<PosChange> ChangesSince(uint64_t after) const;
  uint64_t last_change_seq() const;
  static constexpr size_t kRecentChanges = 16;

  // Loop thread: counters for /metrics.
  uint64_t commit_count() const { return commit_count_; }
  // Commit messages apps sent (async WAL commits made while a capture was
  // armed send none: vfs/connection_page.h).
  uint64_t commit_message_count() const { return commit_message_count_; }
  void NoteCommitMessage() { commit_message_count_++; }
  uint64_t apply_count() const { return apply_count_; }
  // Apply time minus the applied file's timestamp, at the last apply (ms).
  int64_t last_apply_lag_ms() const { return last_apply_lag_ms_; }
  // Loop thread, once ApplyReceived's `done` runs: whether that apply went
  // into a rollback-mode database (a journal and the database synced).
  bool last_apply_in_rollback_mode() const { return last_apply_in_rollback_mode_; }

  // Loop thread: true once recovery succeeded and until a failure that
  // needs another recovery; `problem()` says why not.
  bool writable() const { return state_ == State::kReady; }
  bool recovering() const { return state_ == State::kRecovering; }
  const std::string& problem() const { return problem_; }

  // Runs `fn` (loop thread) once no recovery is in progress: at once, or
  // when the current recovery finishes.
  void WhenSettled(std::function<void()> fn);

  // Runs `fn` on the loop thread after every position change.
  void SetOnChange(std::function<void(Database&)> fn) { on_change_ = std::move(fn); }

  // Brings the position and the checksum table in line with the files
  // (startup, and after a writer vanished or a capture failed).
  void Recover(std::function<void(Status)> done = nullptr);

  // Primary: the database file was deleted (or renamed away). If it is
  // still missing when this runs, records a deletion marker (commit 0) so
  // replicas remove their copy.
  void RecordDeletion();

  // Primary: records the transaction the app just committed (a Commit
  // message: byte ranges of the database file, or WAL frames). The app
  // holds its write lock until `done` runs, except for an async commit: a
  // WAL commit's frames wait in the WAL; a rollback-mode commit's pages wait
  // in the database file, where the next writer does not overwrite them
  // before this capture publishes the commit's change counter
  // (vfs/commit_window.h).
  void Commit(wire::Message commit, std::function<void(Result<ltx::Pos>)> done);

  // Loop thread. True unless a rollback-mode commit whose app did not wait
  // is still being captured. Callers first read the messages the apps sent
  // so far (CommitServer::ReadPendingMessages): such a commit's message was
  // sent before its app let go of the database, so before anyone else could
  // write it or an HTTP response reach the proxy. `WhenRollbackCommitsCaptured`
  // runs `fn` then: at once, or when those captures finished.
  bool RollbackCommitsCaptured() const;
  void WhenRollbackCommitsCaptured(std::function<void()> fn);

  // Replica: verifies each received LTX file, checks that it continues this
  // database's history (or is a snapshot), installs it in the log and
  // applies it; files received in a row for this database (at most
  // kMaxApplyBatch), in order: consecutive WAL transactions go in under one
  // set of locks and become visible together. Temp files are consumed
  // either way.
  void ApplyReceived(std::vector<ReceivedLtx> files, std::function<void(Status)> done);
  static constexpr size_t kMaxApplyBatch = kRecentChanges;  // /events sees every TXID

  // Primary: records every WAL transaction committed so far and not
  // captured yet (async commits whose message has not been read, or whose
  // capture is still queued), up to the wal-index's last commit frame.
  // Before stepping down, and before the proxy names this node's position
  // to a client that just wrote. `sync`: the LTX file too (stepping down).
  // `done` runs on the loop.
  void CaptureCommitted(bool sync, std::function<void()> done);
  // This node stops being the primary: a lingering capture of async WAL
  // commits stops looking (the step-down captured them all), so that no
  // capture reads what the replica applies. Loop thread.
  void StopLingering();
  // An app was allowed to write this database through the VFS (so WAL
  // commits may wait in the WAL uncaptured); loop thread.
  void NoteAppWriter() { app_writers_seen_ = true; }
  // Where this database shows the apps that a capture is armed
  // (vfs/commit_window.h); Store::CaptureSlot assigns it.
  uint32_t capture_slot() const { return capture_slot_; }
  void SetCaptureSlot(CommitWindow* window, uint32_t slot);
  bool app_writers_seen() const { return app_writers_seen_; }

  // This node becomes the primary: what it applied as a replica (not
  // synced one by one, replica_durability.h) is made durable first.
  void MakeAppliesDurable();

  // Deletes LTX files older than `retention` (the newest always stays).
  void EnforceRetention(std::chrono::milliseconds retention);

  // Writes the database as a plain SQLite file (what SQLite sees: the file
  // overlaid with its committed WAL frames) to `path`, under the same locks
  // as a snapshot. Works on replicas too (/export, backups).
  void Export(std::string path, std::function<void(Result<uint64_t>)> done);

  // Primary: replaces the database's content with the plain SQLite file at
  // `path` (already validated by the caller, kept by it) as the next
  // transaction, which replicates like any other (reference §1.7). Waits
  // for writers of the app to finish (bounded); the database is untouched
  // unless the import succeeds.
  void Import(std::string path, std::function<void(Result<ltx::Pos>)> done);
  // Loop thread: an import could not take SQLite's locks and tries again;
  // new app writers are turned away meanwhile (the commit server answers
  // their Begin with busy, and their busy handler retries) so that a
  // steady stream of transactions cannot starve the import.
  bool import_waiting() const { return import_waiting_; }

  // Primary: writes a snapshot of the current database to `path`.
  void MakeSnapshot(std::string path, std::function<void(Result<SnapshotFile>)> done);

 private:
  enum class State { kRecovering, kReady, kBroken };

  // Strand jobs.
  Status RecoverJob();
  // Deletes the newest LTX files while they fail verification (torn by a
  // crash while written in place).
  Status DropTornNewestLtx();
  // Files from TXID `first` on were written unsynced (capture_durability.h):
  // each must verify and continue the one before; the first that does not
  // and every later one are removed.
  Status DropBrokenUnsyncedLtx(uint64_t first);
  // Writes back the capture log's copies of files a power failure lost, up
  // to the one whose post-apply checksum is `actual` (the database's); true
  // if any came back.
  Result<bool> RestoreCopiedLtx(uint64_t actual);
  // Replica after a power failure: the database is behind its log. Goes
  // back to the newest file whose post-apply checksum is `actual` and drops
  // the rest of the history; false if no file matches.
  Result<bool> RewindToDatabase(uint64_t actual);
  Result<ltx::Pos> CommitJob(const wire::Message& commit);
  // WAL commits are captured in WAL order, whatever order their messages
  // arrive in: every committed frame after the last one captured, up to
  // `f.last_frame`, in one LTX with a TXID per commit frame (a later message for a commit
  // captured this way finds nothing left to do). Sets the position.
  Result<ltx::Pos> CaptureWalUpTo(wire::WalFrames f, LtxWriteOptions opts);
  Result<wire::WalFrames> CommittedWalEnd() const;
  // Replica, after applies: every committed frame of the WAL is an apply,
  // recorded; were this node promoted, its first capture continues after
  // them (apps cannot write a replica, so the frames are all ours).
  void NoteAppliedWalEnd();
  // Captures up to the wal-index's last commit frame; `end` (if given) is
  // set to the WAL end it read.
  Result<ltx::Pos> CaptureCommittedJob(bool sync, wire::WalFrames* end = nullptr);
  // A capture's completion: metrics and subscribers, or recovery on failure.
  void CaptureFinished(const Result<ltx::Pos>& result, uint64_t captured, uint64_t start_ns);

  Result<ltx::Pos> CaptureWal(const wire::WalFrames& frames, ltx::Pos prev, LtxWriteOptions opts);
  Result<ltx::Pos> CaptureRollback(const std::vector<wire::ByteRange>& ranges, ltx::Pos prev,
                                   const LtxWriteOptions& opts);
  Status ApplyJob(const ReceivedLtx& file);
  // Applies `files` in order; `applied` counts those that went in;
  // `rollback_mode`: the database was in a rollback journal mode.
  Status ApplyBatchJob(const std::vector<ReceivedLtx>& files, size_t& applied, bool& rollback_mode);
  // Part of a batch: installs and applies `run` (verified, consecutive) under
  // one set of locks — to the WAL (`wal`), or as one rollback-mode transaction.
  Status ApplyRun(std::span<const ReceivedLtx> files, std::vector<VerifiedLtx>& run, bool wal,
                  size_t& applied);
  // Puts a verified received file in the log under its name.
  Status InstallReceived(const ReceivedLtx& file, ltx::TXIDRange range);
  Result<SnapshotFile> SnapshotJob(const std::string& path);
  Result<uint64_t> ExportJob(const std::string& path);
  struct ImportState;
  Result<ltx::Pos> ImportJob(ImportState& state);
  void RunImport(std::shared_ptr<ImportState> state);
  // After the database changed under the capture's feet (an import): the
  // capture's view of the files starts afresh from what is on disk.
  void ResetCaptureTail();
  // True (and logged) if inode `ino` is not the file the last capture saw.
  bool ReplacedFile(ino_t ino);
  bool RecordedAlready(const wire::Message& commit) const;
  Status WritePosFile(ltx::Pos pos, int64_t timestamp_ms);
  // Records a position change for /events (WritePosFile records its own).
  void NoteChange(ltx::Pos pos, uint32_t page_size, uint32_t page_count, int64_t timestamp_ms);
  void SetPos(ltx::Pos pos);
  void Finished(const Status& st, bool changed);
  void WithdrawWriteApprovals() {
    if (env_.withdraw_write_approvals) env_.withdraw_write_approvals();
  }

  DatabaseEnv env_;
  std::string name_;
  std::string db_path_;
  PosFile pos_file_;  // strand-owned
  LtxLog log_;
  Strand strand_;
  Strand snapshot_strand_;
  PageChecksums checksums_;  // strand-owned
  ReplicaDurability durability_;  // strand-owned
  CaptureDurability capture_durability_;  // strand-owned
  // Change counter (page 1, offset 24) at the last capture, 0 if unknown;
  // strand-owned. A rollback-mode commit bumps it by exactly one, so any
  // other value at the next capture means some commit bypassed the capture.
  uint32_t last_change_counter_ = 0;
  // Shows last_change_counter_ to the apps (strand): the database's
  // rollback-captured word in the commit window.
  void PublishRollbackCaptured();
  // Whether the capture log is on the database's device (strand-owned, known
  // after the first rollback capture): a commit's copy may then wait for the
  // app's next flush (capture_durability.h).
  std::optional<bool> copies_share_device_;
  bool CopiesShareDevice();
  // The last commit job left a copy to be flushed (strand-owned; read by its
  // completion, which schedules FlushIdleCopies).
  bool copies_unflushed_in_job_ = false;
  // Frames in a replica's WAL after the last apply (strand-owned; read by
  // the apply's completion to decide on a checkpoint).
  uint32_t wal_frames_ = 0;
  // Transactions the last commit job recorded (strand-owned; read by its
  // completion for the metrics).
  uint64_t captured_in_job_ = 0;

  // Inode of the database file at the last capture (strand-owned): a new
  // file under the same name (deleted and recreated) is captured whole.
  ino_t last_inode_ = 0;
  // The WAL frame the last capture ended at (strand-owned). The next WAL
  // transaction must start right after it, or at frame 1 of a restarted WAL;
  // anything else means frames were committed without the capture.
  struct WalTail {
    bool known = false;
    uint32_t salt1 = 0, salt2 = 0, frame = 0;
  } wal_tail_;

  mutable std::mutex mu_;
  // Held by snapshot and export jobs while they have the database's files
  // open; a checkpoint (SQLite's POSIX locks) runs only when it is free.
  std::mutex sqlite_files_mu_;
  ltx::Pos pos_;  // guarded by mu_
  // wal_tail_ as of pos_: what a snapshot's view of the WAL may include
  // (guarded by mu_; set with pos_ on the strand).
  WalTail pos_wal_tail_;
  int64_t pos_timestamp_ms_ = 0;  // guarded by mu_
  std::deque<PosChange> changes_;  // guarded by mu_
  uint64_t change_seq_ = 0;       // guarded by mu_

  // Loop thread.
  State state_ = State::kRecovering;
  bool app_writers_seen_ = false;
  // Async WAL commits (loop thread). The first one announced arms the
  // database's word in the commit window and starts a capture; the capture
  // then lingers, armed, looking at the wal-index header every kLingerTick
  // and capturing what it finds, for as long as commits keep coming. Apps
  // that see the word armed send nothing, so under load a commit costs its
  // app no message — a cross-CPU wake-up, which on a small VM costs the app
  // more than the capture does. After kLingerIdleTicks looks without a
  // commit the word is cleared and the WAL read once more (a commit made
  // before the clear is in it; one made after sends its message).
  // While commits come faster than kPacedRate (judged over kRateWindow), a
  // capture that found some waits kCapturePacing before the next look, so
  // that several commits share a file — each file costs both sidecars a few
  // hundred microseconds of CPU, which on a small machine is taken from the
  // app. At 1,000 commits a second nothing is paced and the lag stays under
  // a tick. A commit that waits (rollback mode, LITEFS_WAIT_FOR_CAPTURE), a
  // flush and the proxy's capture are not paced.
  static constexpr std::chrono::microseconds kLingerTick{300};
  static constexpr int kLingerIdleTicks = 4;
  static constexpr uint64_t kPacedRate = 1500;  // commits per second
  static constexpr std::chrono::nanoseconds kRateWindow{std::chrono::milliseconds(4)};
  static constexpr std::chrono::microseconds kCapturePacing{2000};
  CommitRate linger_rate_{kPacedRate, uint64_t(kRateWindow.count())};
  bool lingering_ = false;
  int linger_idle_ticks_ = 0;
  wire::WalFrames linger_captured_end_;  // the WAL end the last capture read
  fs::UniqueFd linger_shm_;               // the -shm, for the header looks
  MicroTimer* linger_timer_ = nullptr;    // created on first use
  void StartLingering();
  void LingerTick();
  void ScheduleLingerTick(std::chrono::microseconds delay);
  // A capture job: `disarm_first` for the last one of a lingering run.
  void PostAsyncCapture(bool disarm_first);
  void AfterAsyncCapture(bool disarm_first, bool ok, uint64_t found, const wire::WalFrames& end);
  // Copies whose flush waits for the app's next one are flushed by the
  // sidecar once no commit came for kIdleCopyFlush.
  static constexpr std::chrono::milliseconds kIdleCopyFlush{5};
  uv_timer_t* copy_flush_timer_ = nullptr;  // created on first use
  void FlushCopiesWhenIdle();
  // Captures of rollback-mode commits whose apps did not wait, queued or
  // running, and who waits for them to finish.
  uint32_t rollback_captures_running_ = 0;
  std::vector<std::function<void()>> rollback_capture_waiters_;
  void ReleaseRollbackWaiters();
  uv_timer_t* NewTimer();
  // While a capture lingers, its slot in the commit window says so and the
  // apps' async commits need no message of their own.
  CommitWindow* capture_window_ = nullptr;
  uint32_t capture_slot_ = 0;
  void ArmCapture(bool armed);
  std::string problem_ = "recovering";
  std::function<void(Database&)> on_change_;
  std::vector<std::function<void()>> settled_waiters_;
  uint64_t commit_count_ = 0;
  uint64_t commit_message_count_ = 0;
  uint64_t apply_count_ = 0;
  int64_t last_apply_lag_ms_ = 0;
  bool last_apply_in_rollback_mode_ = false;
  bool import_waiting_ = false;
  // Replica checkpoints (wal_checkpoint.h): after one that could not copy
  // every frame (a reader holds an old snapshot), the next waits for
  // another kReplicaCheckpointFrames frames.
  bool checkpointing_ = false;
  uint32_t checkpoint_at_frames_ = kReplicaCheckpointFrames;
  void MaybeCheckpoint();
  void CheckpointOnStrand();
};

}  // namespace litefs
