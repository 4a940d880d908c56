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

class JournalWriter {
 public:
  // Creates (truncates) the journal. `page_size` and `original_page_count`
  // describe the database as it is now. Records stream to the file, so
  // memory stays bounded whatever the size of the apply.
  static Result<JournalWriter> Create(std::string path, uint32_t page_size,
                                      uint32_t original_page_count, uint32_t nonce);
  JournalWriter(JournalWriter&&) = default;

  Status AddPage(uint32_t pgno, std::span<const uint8_t> page);

  // Writes the header, fdatasyncs the journal and its directory. After this
  // the journal is hot until Remove().
  Status WriteAndSync();
  // Deletes the journal: the apply's commit point.
  Status Remove();

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
};

}  // namespace litefs::sqlite
