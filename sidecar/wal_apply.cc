// See wal_apply.h.
#include "sidecar/wal_apply.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "ltx/checksum.h"
#include "ltx/decoder.h"
#include "ltx/io.h"
#include "ltx/pos.h"
#include "sidecar/db_pages.h"
#include "sidecar/sqlite_locks.h"
#include "sidecar/wal_format.h"
#include "sidecar/wal_index.h"

namespace litefs {
namespace {

constexpr const char* kUncapturedWalFrames = "WAL frames were committed after the last capture";

uint32_t Random32() {
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, 0) != sizeof r) r = uint32_t(getpid()) * 2654435761u;
  return r;
}

// An OFD lock on one byte of the -shm file, released on destruction.
class ShmByteLock {
 public:
  ShmByteLock(int fd, off_t byte) : fd_(fd), byte_(byte) {}
  ShmByteLock(const ShmByteLock&) = delete;
  ~ShmByteLock() {
    if (held_) sqlite::Unlock(fd_, byte_, 1);
  }
  Status Take(short type, std::chrono::milliseconds timeout, const std::string& what) {
    Status st = sqlite::LockWithin(fd_, type, byte_, 1, timeout, what);
    held_ = st.ok();
    return st;
  }
  void Adopt() { held_ = true; }

 private:
  int fd_;
  off_t byte_;
  bool held_ = false;
};

uint16_t PageSizeField(uint32_t page_size) { return page_size == 65536 ? 1 : uint16_t(page_size); }

// Rebuilds the wal-index from the WAL file, as SQLite's walIndexRecover does,
// for a -shm nobody has open. The caller holds DMS exclusively.
Status RebuildIndex(const wal::Index& index, int wal_fd, uint32_t db_pages) {
  Result<wal::Committed> c = wal::ScanCommitted(wal_fd);
  if (!c.ok()) return c.status();
  LITEFS_RETURN_IF_ERROR(index.Clear());
  WalIndexHeader h;
  h.version = wal::kIndexVersion;
  h.change = Random32();  // any value differing from what readers may have cached
  h.is_init = 1;
  h.n_page = db_pages;
  if (c->last_frame > 0) {
    // Frame order matters for the hash tables: walk the frames again in order.
    std::vector<uint32_t> pgno_of(c->last_frame + 1, 0);
    const uint32_t ps = c->header.page_size;
    for (uint32_t i = 1; i <= c->last_frame; i++) {
      uint8_t fh[wal::kFrameHeaderSize];
      Result<size_t> n = fs::PreadFull(wal_fd, fh, sizeof fh, wal::FrameOffset(i, ps));
      if (!n.ok()) return n.status();
      pgno_of[i] = wal::FrameHeader::Decode(fh).pgno;
    }
    LITEFS_RETURN_IF_ERROR(index.Append(1, std::span(pgno_of).subspan(1), 0));
    h.big_end_cksum = c->header.big_endian();
    h.page_size_field = PageSizeField(ps);
    h.mx_frame = c->last_frame;
    h.n_page = c->db_pages;
    h.frame_cksum[0] = c->checksum.s0;
    h.frame_cksum[1] = c->checksum.s1;
    uint8_t raw[wal::kHeaderSize];
    c->header.Encode(raw);
    std::memcpy(h.salt, raw + 16, 8);
  }
  LITEFS_RETURN_IF_ERROR(index.WriteHeader(h));
  wal::CheckpointInfo info;
  info.backfill = 0;
  info.backfill_attempted = h.mx_frame;
  info.read_mark[0] = 0;
  info.read_mark[1] = h.mx_frame ? h.mx_frame : wal::kReadMarkUnused;
  for (int i = 2; i < 5; i++) info.read_mark[i] = wal::kReadMarkUnused;
  return index.WriteCheckpointInfo(info);
}

// With nobody using the wal-index (no process has the -shm open, so nobody
// reads the WAL), fold every committed frame into the database file and
// start an empty index: the WAL then never grows across applies made while
// no reader is around. Idempotent if interrupted: the frames stay valid in
// the WAL until the next apply writes a new WAL header.
Status CheckpointAlone(const wal::Index& index, int db_fd, const std::string& db_path, int wal_fd) {
  Result<wal::Committed> c = wal::ScanCommitted(wal_fd);
  if (!c.ok()) return c.status();
  Result<DbShape> shape = ReadDbShape(db_fd, db_path);
  if (!shape.ok()) return shape.status();
  uint32_t db_pages = shape->page_count;
  WalIndexHeader h;
  if (c->last_frame > 0) {
    const uint32_t ps = c->header.page_size;
    std::vector<uint8_t> page(ps);
    for (const auto& [pgno, frame] : c->frames) {
      if (pgno > c->db_pages) continue;
      Result<size_t> n = fs::PreadFull(wal_fd, page.data(), ps,
                                       wal::FrameOffset(frame, ps) + wal::kFrameHeaderSize);
      if (!n.ok()) return n.status();
      LITEFS_RETURN_IF_ERROR(fs::PwriteFull(db_fd, page.data(), ps, uint64_t(pgno - 1) * ps));
    }
    if (ftruncate(db_fd, off_t(uint64_t(c->db_pages) * ps)) != 0) return fs::ErrnoError("truncate", db_path);
    if (fdatasync(db_fd) != 0) return fs::ErrnoError("fsync", db_path);
    db_pages = c->db_pages;
    uint8_t raw[wal::kHeaderSize];
    c->header.Encode(raw);
    std::memcpy(h.salt, raw + 16, 8);  // the next WAL header follows on from these
    h.page_size_field = PageSizeField(ps);
  }
  LITEFS_RETURN_IF_ERROR(index.Clear());
  h.version = wal::kIndexVersion;
  h.change = Random32();
  h.is_init = 1;
  h.n_page = db_pages;
  LITEFS_RETURN_IF_ERROR(index.WriteHeader(h));
  wal::CheckpointInfo info;
  for (int i = 1; i < 5; i++) info.read_mark[i] = wal::kReadMarkUnused;
  return index.WriteCheckpointInfo(info);
}

// Makes visible a transaction an earlier apply wrote completely (commit
// frame included, synced) but died before publishing: its LTX is already in
// the log and the position may say so, and the next append would otherwise
// overwrite its frames — losing it while later transactions, whose page
// images build on it, are applied. Holds: WRITE. Updates `h`.
Status PublishUnpublished(const wal::Index& index, int wal_fd, WalIndexHeader& h) {
  uint32_t after = h.mx_frame;
  wal::Checksum chain{h.frame_cksum[0], h.frame_cksum[1]};
  uint32_t salt1 = io::LoadBE32(h.salt), salt2 = io::LoadBE32(h.salt + 4);
  uint32_t page_size = h.page_size();
  bool big_endian = h.big_end_cksum;
  if (after == 0) {
    // The dead apply may have started a new WAL generation: follow the file.
    uint8_t raw[wal::kHeaderSize];
    Result<size_t> n = fs::PreadFull(wal_fd, raw, sizeof raw, 0);
    if (!n.ok()) return n.status();
    Result<wal::Header> wh = wal::Header::Decode(raw);
    if (!wh.ok()) return Status();  // no valid WAL: nothing was written
    // Same salts: the generation the index already knows, whose frames are
    // all in the database; only a new generation can hold unpublished ones.
    if (wh->salt1 == salt1 && wh->salt2 == salt2) return Status();
    chain = wh->checksum;
    salt1 = wh->salt1;
    salt2 = wh->salt2;
    page_size = wh->page_size;
    big_endian = wh->big_endian();
  }
  if (page_size == 0) return Status();
  Result<wal::Tail> tail = wal::ScanTail(wal_fd, page_size, after, chain, salt1, salt2, big_endian);
  if (!tail.ok()) return tail.status();
  if (tail->last_frame == after) return Status();
  LITEFS_RETURN_IF_ERROR(index.Append(after + 1, tail->pgnos, after));
  if (after == 0) {
    io::StoreBE32(h.salt, salt1);
    io::StoreBE32(h.salt + 4, salt2);
    h.page_size_field = PageSizeField(page_size);
    h.big_end_cksum = big_endian;
  }
  h.version = wal::kIndexVersion;
  h.change++;
  h.is_init = 1;
  h.mx_frame = tail->last_frame;
  h.n_page = tail->db_pages;
  h.frame_cksum[0] = tail->checksum.s0;
  h.frame_cksum[1] = tail->checksum.s1;
  return index.WriteHeader(h);
}

// Starts the WAL over (SQLite's walRestartHdr) when every frame is in the
// database and no reader uses the WAL: keeps the file from growing. Like
// walRestartHdr, publishes the empty WAL (mxFrame 0) before READ1..4 are
// released: a reader starting meanwhile then reads the database file alone
// (READ0), never old frames that the apply is about to overwrite.
Result<bool> TryRestart(const wal::Index& index, WalIndexHeader& h) {
  Result<wal::CheckpointInfo> info = index.ReadCheckpointInfo();
  if (!info.ok()) return info.status();
  if (h.mx_frame == 0 || info->backfill != h.mx_frame) return false;
  Result<bool> readers_gone =
      sqlite::TryLock(index.fd(), F_WRLCK, sqlite::kShmReadByte0 + 1, 4);
  if (!readers_gone.ok()) return readers_gone.status();
  if (!*readers_gone) return false;
  wal::CheckpointInfo fresh;
  fresh.read_mark[1] = 0;
  for (int i = 2; i < 5; i++) fresh.read_mark[i] = wal::kReadMarkUnused;
  h.mx_frame = 0;
  h.change++;
  Status st = index.WriteHeader(h);
  if (st.ok()) st = index.WriteCheckpointInfo(fresh);
  sqlite::Unlock(index.fd(), sqlite::kShmReadByte0 + 1, 4);
  if (!st.ok()) return st;
  return true;
}

}  // namespace

Status PublishPendingWal(const std::string& db_path) {
  if (!fs::Exists(db_path + "-shm") || !fs::Exists(db_path + "-wal")) return Status();
  Result<fs::UniqueFd> shm = fs::Open(db_path + "-shm", O_RDWR);
  if (!shm.ok()) return shm.status();
  Result<bool> in_use = sqlite::IsLocked(shm->get(), F_WRLCK, sqlite::kShmDmsByte, 1);
  if (!in_use.ok()) return in_use.status();
  if (!*in_use) return Status();  // nobody uses the index: the next opener recovers from the file
  shm->Reset();
  Result<wal::Index> index = wal::Index::Open(db_path + "-shm", 0644);
  if (!index.ok()) return index.status();
  ShmByteLock dms(index->fd(), sqlite::kShmDmsByte);
  Result<bool> shared = sqlite::TryLock(index->fd(), F_RDLCK, sqlite::kShmDmsByte, 1);
  if (!shared.ok()) return shared.status();
  if (!*shared) return Status();  // being initialised by an opener
  dms.Adopt();
  Result<bool> writer = sqlite::TryLock(index->fd(), F_WRLCK, sqlite::kShmWriteByte, 1);
  if (!writer.ok()) return writer.status();
  if (!*writer) return Status();
  ShmByteLock write(index->fd(), sqlite::kShmWriteByte);
  write.Adopt();
  Result<wal::Index::HeaderState> hs = index->ReadHeader();
  if (!hs.ok()) return hs.status();
  if (!hs->valid) return Status();  // the next reader runs SQLite's recovery
  Result<fs::UniqueFd> walf = fs::Open(db_path + "-wal", O_RDONLY);
  if (!walf.ok()) return walf.status();
  WalIndexHeader h = hs->header;
  return PublishUnpublished(*index, walf->get(), h);
}

Result<uint32_t> ApplyLtxToWal(const std::string& db_path, const std::string& ltx_path,
                               const VerifiedLtx& ltx, PageChecksums& checksums,
                               const ApplyOptions& options) {
  size_t applied = 0;
  LtxApplyItem item{&ltx_path, &ltx};
  return ApplyLtxBatchToWal(db_path, {&item, 1}, checksums, options, applied);
}

namespace {

// Appends one verified file to the WAL after frame h.mx_frame as one
// transaction, and to the wal-index hash tables; `h` then describes the WAL
// with it (the caller publishes it). Nothing of it is visible until then,
// and its commit frame is written only once its checksum is verified.
Status AppendLtx(const std::string& db_path, const LtxApplyItem& item, const wal::Index& index, int wal_fd,
                 WalIndexHeader& h, wal::Checksum& chain, bool big_endian, PageChecksums& checksums) {
  const VerifiedLtx& ltx = *item.ltx;
  const ltx::Header& lh = ltx.header;
  if (ltx.pgnos.empty()) {
    return Status::Error(db_path + ": TXID " + ltx::FormatTXID(lh.max_txid) +
                         " carries no page; a WAL-mode replica needs at least one");
  }
  if (h.page_size() != lh.page_size) {
    return Status::Error(db_path + ": page size changes from " + std::to_string(h.page_size()) +
                         " to " + std::to_string(lh.page_size) +
                         " are not supported on a WAL-mode replica");
  }
  const uint32_t ps = lh.page_size;
  // The frames, in page order, the last one committing.
  Result<std::unique_ptr<LtxContent>> content = OpenLtxContent(*item.ltx_path, ltx.bytes);
  if (!content.ok()) return content.status();
  ltx::Decoder& dec = *(*content)->decoder;
  if (lh.IsSnapshot()) checksums.Reset(ps);
  checksums.Truncate(lh.commit);
  const uint32_t first_frame = h.mx_frame + 1;
  std::vector<uint8_t> page;
  std::vector<uint8_t> frame(wal::kFrameHeaderSize + ps);
  uint32_t frame_no = first_frame;
  wal::Checksum running = chain;
  for (size_t i = 0; i < ltx.pgnos.size(); i++, frame_no++) {
    Result<uint32_t> pgno = dec.NextPage(page);
    if (!pgno.ok()) return pgno.status();
    checksums.Set(*pgno, ltx::PageChecksum(*pgno, page));
    const bool last = i + 1 == ltx.pgnos.size();
    // Checked before the commit frame is written: frames without one are
    // invisible to readers and to SQLite's WAL recovery alike, and the next
    // apply overwrites them. (A commit frame on disk, even unpublished,
    // would be replayed by recovery once no process has the -shm open.)
    if (last && checksums.value() != ltx.trailer.post_apply_checksum) {
      return Status::Error(db_path + ": checksum after applying TXID " + ltx::FormatTXID(lh.max_txid) +
                           " would be " + ltx::FormatChecksum(checksums.value()) + ", expected " +
                           ltx::FormatChecksum(ltx.trailer.post_apply_checksum) +
                           " (the replica database was changed outside litefs)");
    }
    wal::FrameHeader fh;
    fh.pgno = *pgno;
    fh.commit = last ? lh.commit : 0;
    fh.salt1 = io::LoadBE32(h.salt);
    fh.salt2 = io::LoadBE32(h.salt + 4);
    fh.Encode(frame.data());
    std::copy(page.begin(), page.end(), frame.begin() + wal::kFrameHeaderSize);
    running = wal::Update(running, {frame.data(), 8}, big_endian);
    running = wal::Update(running, page, big_endian);
    fh.checksum = running;
    fh.Encode(frame.data());
    LITEFS_RETURN_IF_ERROR(fs::PwriteFull(wal_fd, frame.data(), frame.size(), wal::FrameOffset(frame_no, ps)));
  }
  LITEFS_RETURN_IF_ERROR(index.Append(first_frame, ltx.pgnos, h.mx_frame));
  chain = running;
  h.mx_frame = frame_no - 1;
  h.n_page = lh.commit;
  return Status();
}

}  // namespace

Result<uint32_t> ApplyLtxBatchToWal(const std::string& db_path, std::span<const LtxApplyItem> items,
                                    PageChecksums& checksums, const ApplyOptions& options, size_t& applied) {
  applied = 0;
  if (items.empty()) return Status::Error(db_path + ": nothing to apply");
  const ltx::Header& lh = items.front().ltx->header;
  Result<fs::UniqueFd> db = fs::Open(db_path, O_RDWR);
  if (!db.ok()) return db.status();
  const int db_fd = db->get();
  struct stat st;
  if (fstat(db->get(), &st) != 0) return fs::ErrnoError("stat", db_path);
  const int mode = int(st.st_mode & 0777);
  Result<sqlite::SharedLock> shared =
      sqlite::SharedLock::Acquire(db->get(), options.lock_timeout, db_path);
  if (!shared.ok()) return shared.status();
  Result<DbShape> shape = ReadDbShape(db->get(), db_path);
  if (!shape.ok()) return shape.status();
  const uint32_t db_pages = shape->page_count;  // when the WAL holds nothing

  Result<wal::Index> index = wal::Index::Open(db_path + "-shm", mode);
  if (!index.ok()) return index.status();
  Result<fs::UniqueFd> walf = fs::Open(db_path + "-wal", O_RDWR | O_CREAT, mode);
  if (!walf.ok()) return walf.status();
  const int wal_fd = walf->get();

  // DMS: if nobody has the wal-index open, it is ours to rebuild.
  ShmByteLock dms(index->fd(), sqlite::kShmDmsByte);
  Result<bool> alone = sqlite::TryLock(index->fd(), F_WRLCK, sqlite::kShmDmsByte, 1);
  if (!alone.ok()) return alone.status();
  if (*alone) {
    dms.Adopt();
    LITEFS_RETURN_IF_ERROR(CheckpointAlone(*index, db_fd, db_path, wal_fd));
    // Downgrade to shared: SQLite openers may now use the index as it is.
    Result<bool> down = sqlite::TryLock(index->fd(), F_RDLCK, sqlite::kShmDmsByte, 1);
    if (!down.ok() || !*down) return Status::Error(db_path + "-shm: cannot share the wal-index");
  } else {
    LITEFS_RETURN_IF_ERROR(dms.Take(F_RDLCK, options.lock_timeout, "the wal-index of " + db_path));
  }

  ShmByteLock write(index->fd(), sqlite::kShmWriteByte);
  LITEFS_RETURN_IF_ERROR(write.Take(F_WRLCK, options.lock_timeout, "the WAL write lock of " + db_path));
  Result<wal::Index::HeaderState> hs = index->ReadHeader();
  if (!hs.ok()) return hs.status();
  if (!hs->valid) {
    // A reader would run recovery now; we hold the write lock, so we do.
    LITEFS_RETURN_IF_ERROR(RebuildIndex(*index, wal_fd, db_pages));
    hs = index->ReadHeader();
    if (!hs.ok()) return hs.status();
    if (!hs->valid) return Status::Error(db_path + "-shm: wal-index header stays invalid");
  }
  WalIndexHeader h = hs->header;
  LITEFS_RETURN_IF_ERROR(PublishUnpublished(*index, wal_fd, h));
  if (const std::optional<ApplyOptions::WalEnd>& e = options.expect_wal_end;
      e && h.mx_frame > 0 && (h.salt1() != e->salt1 || h.salt2() != e->salt2 || h.mx_frame > e->frame)) {
    return Status::Error(db_path + ": " + kUncapturedWalFrames);
  }
  if (h.mx_frame > 0 && h.page_size() != lh.page_size) {
    return Status::Error(db_path + ": page size changes from " + std::to_string(h.page_size()) +
                         " to " + std::to_string(lh.page_size) +
                         " are not supported on a WAL-mode replica");
  }
  Result<bool> restarted = TryRestart(*index, h);
  if (!restarted.ok()) return restarted.status();

  const uint32_t ps = lh.page_size;
  wal::Checksum chain{h.frame_cksum[0], h.frame_cksum[1]};
  bool big_endian = h.big_end_cksum;
  if (h.mx_frame == 0) {
    // A new WAL generation: fresh header, new salts (salt-1 + 1, random salt-2).
    wal::Header wh;
    uint8_t old[wal::kHeaderSize];
    Result<size_t> n = fs::PreadFull(wal_fd, old, sizeof old, 0);
    if (!n.ok()) return n.status();
    Result<wal::Header> prev = wal::Header::Decode(old);
    wh.page_size = ps;
    wh.checkpoint_seq = prev.ok() ? prev->checkpoint_seq + 1 : 0;
    wh.salt1 = (prev.ok() ? prev->salt1 : Random32()) + 1;
    wh.salt2 = Random32();
    uint8_t raw[wal::kHeaderSize];
    wh.Encode(raw);
    LITEFS_RETURN_IF_ERROR(fs::PwriteFull(wal_fd, raw, sizeof raw, 0));
    Result<wal::Header> fresh = wal::Header::Decode(raw);
    chain = fresh->checksum;
    big_endian = false;
    std::memcpy(h.salt, raw + 16, 8);
    h.page_size_field = PageSizeField(ps);
    h.big_end_cksum = 0;
  }

  // One transaction after the other; readers see them all at once, with
  // the header published last. A file that fails leaves the ones before it
  // applied and published.
  Status failed;
  for (const LtxApplyItem& item : items) {
    failed = AppendLtx(db_path, item, *index, wal_fd, h, chain, big_endian, checksums);
    if (!failed.ok()) break;
    applied++;
  }
  if (applied == 0) return failed;
  if (options.sync_wal && fdatasync(wal_fd) != 0) return fs::ErrnoError("fsync", db_path + "-wal");
  h.version = wal::kIndexVersion;
  h.change++;
  h.is_init = 1;
  h.frame_cksum[0] = chain.s0;
  h.frame_cksum[1] = chain.s1;
  LITEFS_RETURN_IF_ERROR(index->WriteHeader(h));
  if (!failed.ok()) return failed;
  return h.mx_frame;
}

bool IsUncapturedWal(const Status& st) {
  return !st.ok() && st.message().find(kUncapturedWalFrames) != std::string::npos;
}

}  // namespace litefs
