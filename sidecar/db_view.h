// Reading a database's pages the way SQLite sees them, for the LTX writers:
//  - DbView: the database file overlaid with the committed frames of its
//    WAL (all of them, or up to a given frame): the whole logical database,
//    for snapshots, recovery and full captures;
//  - WalTransaction: exactly the frames of one WAL transaction, verified
//    (salts, checksum chain, commit frame), for an incremental capture.
// Both are PageSources: page size, page count, and read page N.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ltx/status.h"
#include "sidecar/db_pages.h"
#include "sidecar/fsutil.h"
#include "sidecar/wal_format.h"
#include "vfs/commit_protocol.h"

namespace litefs {

class PageSource {
 public:
  virtual ~PageSource() = default;
  virtual uint32_t page_size() const = 0;
  virtual uint32_t page_count() const = 0;
  virtual Status ReadPage(uint32_t pgno, std::span<uint8_t> out) = 0;
};

class DbView final : public PageSource {
 public:
  // Opens `db_path` and `<db_path>-wal`. A missing database file is an
  // empty database. `wal_stop_after` (non-zero) ignores later frames.
  static Result<DbView> Open(const std::string& db_path, uint32_t wal_stop_after = 0);
  // The database as a capture that ended at WAL frame `frame` (of the WAL
  // with these salts) left it: later frames are ignored; a WAL with other
  // salts (restarted since, so the database file holds all before it), or
  // any WAL when `frame` is 0, is ignored whole.
  static Result<DbView> OpenAtWalTail(const std::string& db_path, uint32_t salt1, uint32_t salt2,
                                      uint32_t frame);

  uint32_t page_size() const override { return page_size_; }
  uint32_t page_count() const override { return page_count_; }
  Status ReadPage(uint32_t pgno, std::span<uint8_t> out) override;

  bool exists() const { return db_fd_.valid(); }
  const DbShape& file_shape() const { return shape_; }
  const wal::Committed& wal() const { return wal_; }
  int db_fd() const { return db_fd_.get(); }

 private:
  static Result<DbView> OpenFile(const std::string& db_path);
  void UseWal(fs::UniqueFd wal_fd, wal::Committed committed);
  std::string db_path_;
  fs::UniqueFd db_fd_, wal_fd_;
  DbShape shape_;
  wal::Committed wal_;
  uint32_t page_size_ = 0, page_count_ = 0;
};

class WalTransaction final : public PageSource {
 public:
  // Reads and verifies frames `f.first_frame..f.last_frame` of `wal_path`:
  // the WAL header has f's salts, every frame carries them, the checksum
  // chain (from the frame before) holds, and the last frame commits with
  // f.db_pages. The range may hold several transactions: the pages are then
  // their newest versions, the database as of the last commit frame.
  // Frames of up to kBufferedBytes in all are read with one pread and kept
  // in memory (a commit's few frames: a system call, not two per frame).
  static Result<WalTransaction> Read(const std::string& wal_path, const wire::WalFrames& f);
  static constexpr uint64_t kBufferedBytes = 1 << 20;

  uint32_t page_size() const override { return frames_.page_size; }
  uint32_t page_count() const override { return frames_.db_pages; }
  Status ReadPage(uint32_t pgno, std::span<uint8_t> out) override;

  // The pages the transaction wrote that are within the database, sorted.
  const std::vector<uint32_t>& pages() const { return pages_; }
  const wire::WalFrames& frames() const { return frames_; }
  // Commit frames in the range: the transactions it holds.
  uint32_t commits() const { return commits_; }

 private:
  // Frame `i` (header and page): from buffered_ when it holds the range,
  // else read into `scratch`.
  Result<std::span<const uint8_t>> Frame(uint32_t i, std::vector<uint8_t>& scratch) const;

  fs::UniqueFd fd_;
  wire::WalFrames frames_;
  std::vector<uint8_t> buffered_;  // frames first..last, when small enough
  std::unordered_map<uint32_t, uint32_t> latest_;  // pgno -> frame
  std::vector<uint32_t> pages_;
  uint32_t commits_ = 0;
};

// A rollback-mode database file read directly (its WAL, if any, ignored).
class DbFileSource final : public PageSource {
 public:
  DbFileSource(int fd, const DbShape& shape) : fd_(fd), shape_(shape) {}
  uint32_t page_size() const override { return shape_.page_size; }
  uint32_t page_count() const override { return shape_.page_count; }
  Status ReadPage(uint32_t pgno, std::span<uint8_t> out) override;

 private:
  int fd_;
  DbShape shape_;
};

}  // namespace litefs
