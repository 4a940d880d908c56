// The LTX files of one database: `<data-dir>/dbs/<db>/ltx/<min>-<max>.ltx`,
// named as LiteFS names them. A commit's file is written in place under its
// final name and added to the index once complete (no rename per commit);
// received and imported files are written to a temporary name and installed
// by rename. The index, not the directory, says which files are complete:
// after a crash the newest file may be torn, and recovery verifies it
// (Database::RecoverJob, docs/recovery.md).
// Thread-safe: installed by the database's strand, read by stream senders.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ltx/header.h"
#include "ltx/pos.h"
#include "ltx/status.h"

namespace litefs {

class LtxLog {
 public:
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
  // Adds the file written in place at PathFor(r), complete; with `sync`,
  // also fsyncs the directory so that its entry is durable.
  Status Add(ltx::TXIDRange r, bool sync);
  // Forgets and deletes one file.
  Status Remove(ltx::TXIDRange r);
  // Deletes every file but `keep` (after a snapshot replaced history).
  Status RemoveAllExcept(ltx::TXIDRange keep);

  // Drops from the index the files whose modification time is older than
  // `cutoff` (seconds since the epoch), never the newest file, and returns
  // their paths for the caller to delete (away from the database's strand:
  // unlinking thousands of files takes tens of milliseconds).
  std::vector<std::string> ForgetOlderThan(int64_t cutoff_seconds);

  // Header and trailer of an installed file, without reading its pages.
  Result<std::pair<ltx::Header, ltx::Trailer>> ReadEnds(ltx::TXIDRange r) const;

 private:
  std::string dir_;
  mutable std::mutex mu_;
  std::map<uint64_t, uint64_t> files_;  // max TXID -> min TXID
};

}  // namespace litefs
