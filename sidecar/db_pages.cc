// See db_pages.h.
#include "sidecar/db_pages.h"

#include <sys/stat.h>

#include <algorithm>
#include <vector>

#include "ltx/checksum.h"
#include "sidecar/fsutil.h"

namespace litefs {

Result<DbShape> ReadDbShape(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0) return fs::ErrnoError("stat", path);
  DbShape shape;
  if (st.st_size == 0) return shape;
  uint8_t head[ltx::kDbHeaderSize];
  Result<size_t> n = fs::PreadFull(fd, head, sizeof head, 0);
  if (!n.ok()) return n.status();
  if (*n < sizeof head) return Status::Error(path + ": not a database (shorter than its header)");
  Result<ltx::DbHeader> h = ltx::ParseDbHeader(head);
  if (!h.ok()) return h.status().Context(path);
  shape.page_size = h->page_size;
  shape.write_version = h->write_version;
  shape.change_counter = h->change_counter;
  shape.page_count = h->page_count_valid ? h->page_count
                                         : uint32_t(uint64_t(st.st_size) / h->page_size);
  return shape;
}

Status ForEachPage(int fd, uint32_t page_size, uint32_t page_count,
                   const std::function<Status(uint32_t, std::span<const uint8_t>)>& visit) {
  if (page_count == 0) return Status();
  if (page_size == 0) return Status::Error("database pages of size 0");
  const uint32_t lock_pgno = ltx::LockPgno(page_size);
  const uint32_t per_batch = std::max<uint32_t>(1, (1u << 20) / page_size);
  std::vector<uint8_t> buf(size_t(per_batch) * page_size);
  for (uint32_t first = 1; first <= page_count; first += per_batch) {
    uint32_t n = std::min(per_batch, page_count - first + 1);
    Result<size_t> got = fs::PreadFull(fd, buf.data(), size_t(n) * page_size,
                                       uint64_t(first - 1) * page_size);
    if (!got.ok()) return got.status();
    for (uint32_t i = 0; i < n; i++) {
      uint32_t pgno = first + i;
      if (pgno == lock_pgno) continue;
      LITEFS_RETURN_IF_ERROR(visit(pgno, {buf.data() + size_t(i) * page_size, page_size}));
    }
  }
  return Status();
}

}  // namespace litefs
