// Writes a SQLite rollback journal (`<db>-journal`, sqlite-internals §2.1)
// before the sidecar overwrites pages of a rollback-mode database, so that a
// crash of the sidecar mid-apply leaves a hot journal that the next SQLite
// reader rolls back: readers never see a torn database.
//
// Records are the pages' content *before* the apply. The header (valid magic
// and exact record count) is written together with the records and synced
// once before any database page changes: if a crash tears the journal
// itself, the database has not been touched yet, so replaying whatever
// records verify restores nothing but original content.
//
// The file is kept between applies, as SQLite's journal_mode=PERSIST does:
// the commit point zeroes the header (SQLite sees a journal whose first
// byte is 0 as not hot) instead of deleting the file. A replica then
// creates and deletes no file per apply — no inode to allocate, no
// directory entry to sync — and SQLite readers in any journal mode accept
// the leftover file. Records past the header's count are stale and never
// read; a file grown past kKeptJournalLimit is truncated at the commit.

#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ltx/status.h"
#include "ltx/io.h"
#include "sidecar/fsutil.h"

namespace litefs::sqlite {

inline constexpr uint32_t kJournalSectorSize = 512;
inline constexpr uint64_t kKeptJournalLimit = 4 << 20;

class JournalWriter {
 public:
  // Opens the journal, creating it if needed. `page_size` and
  // `original_page_count` describe the database as it is now. Records
  // stream to the file, so memory stays bounded whatever the size of the
  // apply.
  static Result<JournalWriter> Create(std::string path, uint32_t page_size,
                                      uint32_t original_page_count, uint32_t nonce);
  JournalWriter(JournalWriter&&) = default;

  Status AddPage(uint32_t pgno, std::span<const uint8_t> page);

  // Writes the header and fdatasyncs the journal, and its directory the
  // first time this process uses that file. After this the journal is hot
  // until Commit().
  Status WriteAndSync();
  // Zeroes the header: the apply's commit point. Not synced: a power
  // failure may bring the journal back, which rolls the apply back to the
  // state before it (replica_durability.h).
  Status Commit();

  const std::string& path() const { return path_; }
  uint32_t record_count() const { return records_; }

  // SQLite's record checksum: the nonce plus the bytes at page offsets
  // page_size-200, page_size-400, ... (while positive).
  static uint32_t RecordChecksum(uint32_t nonce, std::span<const uint8_t> page);

 private:
  JournalWriter(std::string path, fs::UniqueFd fd, uint32_t page_size,
                uint32_t original_page_count, uint32_t nonce);

  std::string path_;
  fs::UniqueFd fd_;
  std::unique_ptr<io::FdWriter> fd_out_;
  std::unique_ptr<io::BufferedWriter> out_;
  uint32_t page_size_;
  uint32_t original_page_count_;
  uint32_t nonce_;
  uint32_t records_ = 0;
  bool entry_durable_ = false;  // the file's directory entry was synced before
};

}  // namespace litefs::sqlite
