// See page_checksums.h.
#include "sidecar/page_checksums.h"

#include "sidecar/db_pages.h"

namespace litefs {

void PageChecksums::Reset(uint32_t page_size) {
  page_size_ = page_size;
  table_.clear();
  acc_ = 0;
}

Status PageChecksums::Load(int fd, uint32_t page_size, uint32_t page_count) {
  Reset(page_size);
  table_.assign(size_t(page_count) + 1, 0);
  return ForEachPage(fd, page_size, page_count,
                     [this](uint32_t pgno, std::span<const uint8_t> page) {
                       uint64_t c = ltx::PageChecksum(pgno, page);
                       table_[pgno] = c;
                       acc_ ^= c;
                       return Status();
                     });
}

Status PageChecksums::LoadFrom(PageSource& source) {
  const uint32_t count = source.page_count();
  Reset(count ? source.page_size() : 0);
  if (count == 0) return Status();
  table_.assign(size_t(count) + 1, 0);
  const uint32_t lock_pgno = ltx::LockPgno(page_size_);
  std::vector<uint8_t> page(page_size_);
  for (uint32_t pgno = 1; pgno <= count; pgno++) {
    if (pgno == lock_pgno) continue;
    LITEFS_RETURN_IF_ERROR(source.ReadPage(pgno, page));
    uint64_t c = ltx::PageChecksum(pgno, page);
    table_[pgno] = c;
    acc_ ^= c;
  }
  return Status();
}

void PageChecksums::Set(uint32_t pgno, uint64_t checksum) {
  if (pgno >= table_.size()) table_.resize(size_t(pgno) + 1, 0);
  acc_ ^= table_[pgno] ^ checksum;
  table_[pgno] = checksum;
}

void PageChecksums::Truncate(uint32_t page_count) {
  if (size_t(page_count) + 1 >= table_.size()) {
    if (!table_.empty() || page_count > 0) table_.resize(size_t(page_count) + 1, 0);
    return;
  }
  for (size_t p = size_t(page_count) + 1; p < table_.size(); p++) acc_ ^= table_[p];
  table_.resize(size_t(page_count) + 1);
}

}  // namespace litefs
