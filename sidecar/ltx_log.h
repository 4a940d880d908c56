// The LTX files of one database: `<data-dir>/dbs/<db>/ltx/<min>-<max>.ltx`,
// named as LiteFS names them. A commit's file is written in place under its
// final name and added to the index once complete (no rename per commit),
// and so is a small received file, verified in memory (Put); larger received
// files and imported ones are written to a temporary name and installed by
// rename. The index, not the directory, says which files are complete:
// after a crash the newest file may be torn, and recovery verifies it
// (Database::RecoverJob, docs/recovery.md).
// The bytes of the newest small files are also kept in memory, as they were
// written (LtxBytes): a stream sends a file just captured or received
// without reading the disk or leaving the loop thread.
// Thread-safe: installed by the database's strand, read by stream senders.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ltx/header.h"
#include "ltx/pos.h"
#include "ltx/status.h"

namespace litefs {

// A whole LTX file in memory.
using LtxBytes = std::shared_ptr<const std::vector<uint8_t>>;

class LtxLog {
 public:
  // Files up to this size are remembered, the newest kRememberedFiles of
  // them within kRememberedBytes (memory per database stays small).
  static constexpr size_t kRememberedFileSize = 64 * 1024;
  static constexpr size_t kRememberedFiles = 16;
  static constexpr size_t kRememberedBytes = 256 * 1024;

  explicit LtxLog(std::string dir) : dir_(std::move(dir)) {}

  // Creates the directory, indexes the files, deletes temp files left by
  // earlier processes.
  Status Init();

  const std::string& dir() const { return dir_; }
  std::string PathFor(ltx::TXIDRange r) const;
  std::string NewTempPath() const;

  // The file with the highest max TXID.
  std::optional<ltx::TXIDRange> Latest() const;
  // The file whose first TXID is `min_txid` (one TXID, or several WAL
  // commits captured together), if the log has it.
  std::optional<ltx::TXIDRange> StartingAt(uint64_t min_txid) const;
  bool Has(ltx::TXIDRange r) const;
  // Every file, oldest first.
  std::vector<ltx::TXIDRange> Ranges() const;
  size_t size() const;

  // Renames `tmp` to its proper name; with `sync`, also fsyncs the directory.
  Status Install(const std::string& tmp, ltx::TXIDRange r, bool sync);
  // Writes `bytes` (a verified file) under its proper name and adds it; with
  // `sync`, also fsyncs the file and the directory. Not atomic: until the
  // index lists it, a crash may leave it torn, as a commit's file.
  Status Put(ltx::TXIDRange r, LtxBytes bytes, bool sync);
  // Adds the file written in place at PathFor(r), complete; with `sync`,
  // also fsyncs the directory so that its entry is durable. `bytes`, when
  // given, are the file's content, remembered if it is small.
  Status Add(ltx::TXIDRange r, bool sync, LtxBytes bytes = nullptr);
  // The content of file `r` if it is remembered, else null.
  LtxBytes Remembered(ltx::TXIDRange r) const;
  // Forgets and deletes one file.
  Status Remove(ltx::TXIDRange r);
  // Deletes every file but `keep` (after a snapshot replaced history).
  Status RemoveAllExcept(ltx::TXIDRange keep);

  // Drops from the index the files whose modification time is older than
  // `cutoff` (seconds since the epoch), never the newest file, and returns
  // their paths for the caller to delete (away from the database's strand:
  // unlinking thousands of files takes tens of milliseconds).
  std::vector<std::string> ForgetOlderThan(int64_t cutoff_seconds);

  // Header and trailer of an installed file, without reading its pages
  // (nor the disk, when the file is remembered).
  Result<std::pair<ltx::Header, ltx::Trailer>> ReadEnds(ltx::TXIDRange r) const;

 private:
  std::string dir_;
  mutable std::mutex mu_;
  std::map<uint64_t, uint64_t> files_;  // max TXID -> min TXID
  struct RememberedFile {
    uint64_t min_txid;
    LtxBytes bytes;
  };
  std::map<uint64_t, RememberedFile> remembered_;  // max TXID -> file; all in files_
  size_t remembered_bytes_ = 0;
  void Forget(uint64_t max_txid);  // with mu_ held
};

}  // namespace litefs
