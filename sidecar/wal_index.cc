// See wal_index.h. Layout and algorithms follow SQLite's wal.c (3.40).
#include "sidecar/wal_index.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "sidecar/wal_format.h"

namespace litefs::wal {
namespace {

constexpr size_t kHashOffset = kHashPages * 4;  // aHash follows aPgno in every block
constexpr uint32_t kHashMultiplier = 383;
constexpr size_t kCheckpointInfoOffset = 2 * WalIndexHeader::kSize;  // 96

uint32_t BlockOf(uint32_t frame) { return (frame + kHashPages - kFirstBlockPages - 1) / kHashPages; }
uint32_t FirstFrameBefore(uint32_t block) {  // iZero
  return block == 0 ? 0 : kFirstBlockPages + (block - 1) * kHashPages;
}
size_t PgnoOffset(uint32_t block) { return block == 0 ? kIndexHeaderBytes : 0; }

void PutU32(std::vector<uint8_t>& b, size_t off, uint32_t v) { std::memcpy(&b[off], &v, 4); }
uint16_t GetU16(const std::vector<uint8_t>& b, size_t off) {
  uint16_t v;
  std::memcpy(&v, &b[off], 2);
  return v;
}
void PutU16(std::vector<uint8_t>& b, size_t off, uint16_t v) { std::memcpy(&b[off], &v, 2); }

}  // namespace

Result<Index> Index::Open(const std::string& path, int mode) {
  Result<fs::UniqueFd> fd = fs::Open(path, O_RDWR | O_CREAT, mode);
  if (!fd.ok()) return fd.status();
  return Index(path, std::move(fd).value());
}

void Index::SetChecksum(WalIndexHeader& h) {
  uint8_t bytes[WalIndexHeader::kSize];
  h.Encode(bytes);
  Checksum c = Update({}, {bytes, 40}, /*big_endian=*/false);  // native order on x86
  h.cksum[0] = c.s0;
  h.cksum[1] = c.s1;
}

Result<Index::HeaderState> Index::ReadHeader() const { return ReadIndexHeader(fd_.get()); }

Result<Index::HeaderState> ReadIndexHeader(int shm_fd) {
  uint8_t both[2 * WalIndexHeader::kSize];
  Result<size_t> n = fs::PreadFull(shm_fd, both, sizeof both, 0);
  if (!n.ok()) return n.status();
  Index::HeaderState st;
  st.header = WalIndexHeader::Decode(both);
  WalIndexHeader copy = st.header;
  Index::SetChecksum(copy);
  st.valid = *n == sizeof both &&
             std::memcmp(both, both + WalIndexHeader::kSize, WalIndexHeader::kSize) == 0 &&
             st.header.is_init && st.header.version == kIndexVersion &&
             copy.cksum[0] == st.header.cksum[0] && copy.cksum[1] == st.header.cksum[1];
  return st;
}

Status Index::WriteHeader(WalIndexHeader h) const {
  SetChecksum(h);
  uint8_t bytes[WalIndexHeader::kSize];
  h.Encode(bytes);
  LITEFS_RETURN_IF_ERROR(fs::PwriteFull(fd_.get(), bytes, sizeof bytes, WalIndexHeader::kSize));
  return fs::PwriteFull(fd_.get(), bytes, sizeof bytes, 0);
}

Result<CheckpointInfo> Index::ReadCheckpointInfo() const {
  uint8_t b[40];
  Result<size_t> n = fs::PreadFull(fd_.get(), b, sizeof b, kCheckpointInfoOffset);
  if (!n.ok()) return n.status();
  CheckpointInfo info;
  std::memcpy(&info.backfill, b, 4);
  std::memcpy(info.read_mark, b + 4, 20);
  std::memcpy(&info.backfill_attempted, b + 32, 4);
  return info;
}

Status Index::WriteCheckpointInfo(const CheckpointInfo& info) const {
  // nBackfill and the read marks (96..119), then nBackfillAttempted (128);
  // the lock bytes 120..127 in between are never touched.
  uint8_t b[24];
  std::memcpy(b, &info.backfill, 4);
  std::memcpy(b + 4, info.read_mark, 20);
  LITEFS_RETURN_IF_ERROR(fs::PwriteFull(fd_.get(), b, sizeof b, kCheckpointInfoOffset));
  return fs::PwriteFull(fd_.get(), &info.backfill_attempted, 4, kCheckpointInfoOffset + 32);
}

Status Index::EnsureBlock(uint32_t block, uint64_t& size) const {
  const uint64_t need = uint64_t(block + 1) * kIndexBlockSize;
  if (size >= need) return Status();
  // Like SQLite: touch the last byte of every 4 KiB page, so the file has no
  // holes a mapping could fault on.
  const uint8_t zero = 0;
  for (uint64_t page_end = (size / 4096 + 1) * 4096; page_end <= need; page_end += 4096) {
    LITEFS_RETURN_IF_ERROR(fs::PwriteFull(fd_.get(), &zero, 1, page_end - 1));
  }
  size = need;
  return Status();
}

Result<uint64_t> Index::Size() const {
  struct stat st;
  if (fstat(fd_.get(), &st) != 0) return fs::ErrnoError("stat", path_);
  return uint64_t(st.st_size);
}

Status Index::Clear() const {
  std::vector<uint8_t> zeros(kIndexBlockSize, 0);
  Result<uint64_t> size = Size();
  if (!size.ok()) return size.status();
  LITEFS_RETURN_IF_ERROR(EnsureBlock(0, *size));
  // Keep the lock bytes (120..127) of the checkpoint info as they are.
  LITEFS_RETURN_IF_ERROR(fs::PwriteFull(fd_.get(), zeros.data(), 120, 0));
  return fs::PwriteFull(fd_.get(), zeros.data(), kIndexBlockSize - 128, 128);
}

// One block of the index in memory, read once and written back once
// whatever number of changes a transaction makes to it.
class Index::BlockBuffer {
 public:
  BlockBuffer(const Index& index, uint64_t size) : index_(index), size_(size), b_(kIndexBlockSize) {}

  Result<std::vector<uint8_t>*> Load(uint32_t block) {
    if (loaded_ && block_ == block) return &b_;
    LITEFS_RETURN_IF_ERROR(Flush());
    LITEFS_RETURN_IF_ERROR(index_.EnsureBlock(block, size_));
    Result<size_t> n = fs::PreadFull(index_.fd_.get(), b_.data(), b_.size(), Base(block));
    if (!n.ok()) return n.status();
    loaded_ = true;
    block_ = block;
    return &b_;
  }
  void MarkChanged() { changed_ = true; }
  // Writes the block's page numbers and hash table back if they changed.
  Status Flush() {
    if (!loaded_ || !changed_) return Status();
    changed_ = false;
    const size_t from = PgnoOffset(block_);
    return fs::PwriteFull(index_.fd_.get(), &b_[from], kIndexBlockSize - from, Base(block_) + from);
  }

 private:
  static uint64_t Base(uint32_t block) { return uint64_t(block) * kIndexBlockSize; }
  const Index& index_;
  uint64_t size_;
  std::vector<uint8_t> b_;
  bool loaded_ = false, changed_ = false;
  uint32_t block_ = 0;
};

Status Index::CleanupAfter(uint32_t mx_frame, BlockBuffer& buf) const {
  if (mx_frame == 0) return Status();
  const uint32_t block = BlockOf(mx_frame);
  Result<std::vector<uint8_t>*> loaded = buf.Load(block);
  if (!loaded.ok()) return loaded.status();
  std::vector<uint8_t>& b = **loaded;
  const uint32_t limit = mx_frame - FirstFrameBefore(block);
  for (uint32_t i = 0; i < kHashSlots; i++) {
    if (GetU16(b, kHashOffset + 2 * i) > limit) {
      PutU16(b, kHashOffset + 2 * i, 0);
      buf.MarkChanged();
    }
  }
  const auto stale = b.begin() + ptrdiff_t(PgnoOffset(block) + 4 * size_t(limit));
  const auto stale_end = b.begin() + ptrdiff_t(kHashOffset);
  if (std::any_of(stale, stale_end, [](uint8_t c) { return c != 0; })) {
    std::fill(stale, stale_end, uint8_t(0));
    buf.MarkChanged();
  }
  return Status();
}

Status Index::Append(uint32_t first_frame, std::span<const uint32_t> pgnos,
                     uint32_t mx_frame) const {
  Result<uint64_t> size = Size();
  if (!size.ok()) return size.status();
  BlockBuffer buf(*this, *size);
  // Leftovers of a writer that died mid-transaction go first (nothing to do
  // when there are none).
  LITEFS_RETURN_IF_ERROR(CleanupAfter(mx_frame, buf));
  for (size_t i = 0; i < pgnos.size(); i++) {
    const uint32_t frame = first_frame + uint32_t(i);
    const uint32_t block = BlockOf(frame);
    Result<std::vector<uint8_t>*> loaded = buf.Load(block);
    if (!loaded.ok()) return loaded.status();
    std::vector<uint8_t>& b = **loaded;
    const size_t pgno_off = PgnoOffset(block);
    const uint32_t idx = frame - FirstFrameBefore(block);
    if (idx == 1) std::memset(&b[pgno_off], 0, kIndexBlockSize - pgno_off);  // a fresh block
    uint32_t key = (pgnos[i] * kHashMultiplier) & (kHashSlots - 1);
    for (uint32_t collisions = 0; GetU16(b, kHashOffset + 2 * key) != 0;
         key = (key + 1) & (kHashSlots - 1)) {
      if (++collisions > idx) return Status::Error(path_ + ": wal-index hash table is corrupt");
    }
    PutU32(b, pgno_off + 4 * size_t(idx - 1), pgnos[i]);
    PutU16(b, kHashOffset + 2 * key, uint16_t(idx));
    buf.MarkChanged();
  }
  return buf.Flush();
}

}  // namespace litefs::wal
