// The per-page checksum table of one database and its rolling checksum
// (reference §0.1): updating a page XORs its old checksum out and the new one
// in, so a commit costs O(pages changed), and truncation XORs out every page
// past the new end. Pages are numbered from 1; the lock page never counts.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ltx/checksum.h"
#include "ltx/status.h"
#include "sidecar/db_view.h"

namespace litefs {

class PageChecksums {
 public:
  // Forgets everything: an empty database (checksum = flag only).
  void Reset(uint32_t page_size);

  // Reads pages 1..page_count of `fd` and rebuilds the table.
  Status Load(int fd, uint32_t page_size, uint32_t page_count);
  // Rebuilds the table from every page of `source` (a database and its WAL).
  Status LoadFrom(PageSource& source);

  // Sets page `pgno` (<= its new commit size) to `checksum`.
  void Set(uint32_t pgno, uint64_t checksum);
  // The database now has `page_count` pages: pages past it stop counting.
  void Truncate(uint32_t page_count);

  uint64_t Get(uint32_t pgno) const { return pgno < table_.size() ? table_[pgno] : 0; }
  uint64_t value() const { return acc_ | ltx::kChecksumFlag; }
  uint32_t page_size() const { return page_size_; }
  uint32_t page_count() const { return table_.empty() ? 0 : uint32_t(table_.size() - 1); }

 private:
  uint32_t page_size_ = 0;
  std::vector<uint64_t> table_;  // index = pgno; [0] unused; 0 = lock page / unknown
  uint64_t acc_ = 0;
};

}  // namespace litefs
