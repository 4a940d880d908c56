// See ltx_apply.h.
#include "sidecar/ltx_apply.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "ltx/checksum.h"
#include "ltx/decoder.h"
#include "ltx/pos.h"
#include "sidecar/db_pages.h"
#include "sidecar/fsutil.h"
#include "sidecar/hot_journal.h"
#include "sidecar/rollback_journal.h"
#include "sidecar/sqlite_locks.h"
#include "sidecar/wal_apply.h"

namespace litefs {
namespace {

constexpr const char* kUncapturedRollbackCommit = "a commit was made after the last capture";


}  // namespace

Result<std::unique_ptr<LtxContent>> OpenLtxContent(const std::string& path, const LtxBytes& bytes) {
  auto content = std::make_unique<LtxContent>();
  if (bytes) {
    content->reader = std::make_unique<io::BufferReader>(*bytes);
  } else {
    Result<fs::UniqueFd> fd = fs::Open(path, O_RDONLY);
    if (!fd.ok()) return fd.status();
    content->fd = std::move(fd).value();
    content->reader = std::make_unique<io::FdReader>(content->fd.get());
  }
  Result<std::unique_ptr<ltx::Decoder>> dec = ltx::Decoder::Open(*content->reader);
  if (!dec.ok()) return dec.status().Context(path);
  content->decoder = std::move(dec).value();
  return content;
}

namespace {

// Reads the whole file through the decoder, which checks everything.
Result<VerifiedLtx> Verify(const std::string& name, const LtxBytes& bytes) {
  Result<std::unique_ptr<LtxContent>> content = OpenLtxContent(name, bytes);
  if (!content.ok()) return content.status();
  ltx::Decoder& dec = *(*content)->decoder;
  VerifiedLtx out;
  out.header = dec.header();
  std::vector<uint8_t> page;
  for (;;) {
    Result<uint32_t> pgno = dec.NextPage(page);
    if (!pgno.ok()) return pgno.status().Context(name);
    if (*pgno == 0) break;
    out.pgnos.push_back(*pgno);
  }
  Result<ltx::Trailer> trailer = dec.Finish();
  if (!trailer.ok()) return trailer.status().Context(name);
  out.trailer = *trailer;
  out.bytes = bytes;
  return out;
}

}  // namespace

Result<VerifiedLtx> ReadAndVerifyLtx(const std::string& ltx_path) { return Verify(ltx_path, nullptr); }

Result<VerifiedLtx> VerifyReceivedLtx(const ReceivedLtx& received) {
  if (received.bytes) return Verify("the received LTX file", received.bytes);
  return Verify(received.tmp_path, nullptr);
}

namespace {

// Pages of the current database (numbered in its own page size) whose
// content the apply destroys: those overlapping a new page, and those a
// shrink cuts off.
std::vector<uint32_t> PagesToJournal(std::span<const LtxApplyItem> items, const DbShape& old) {
  std::vector<uint32_t> out;
  if (old.page_count == 0) return out;
  const uint64_t old_ps = old.page_size;
  const uint32_t old_lock = ltx::LockPgno(old.page_size);
  auto add_bytes = [&](uint64_t begin, uint64_t end) {  // [begin, end)
    for (uint64_t p = begin / old_ps + 1; p <= (end - 1) / old_ps + 1 && p <= old.page_count; p++) {
      if (p != old_lock) out.push_back(uint32_t(p));
    }
  };
  const uint64_t old_end = uint64_t(old.page_count) * old_ps;
  for (const LtxApplyItem& item : items) {
    const VerifiedLtx& ltx = *item.ltx;
    const uint64_t new_ps = ltx.header.page_size;
    if (ltx.header.IsSnapshot()) {
      add_bytes(0, old_end);
      continue;
    }
    for (uint32_t p : ltx.pgnos) add_bytes(uint64_t(p - 1) * new_ps, uint64_t(p) * new_ps);
    uint64_t new_end = uint64_t(ltx.header.commit) * new_ps;
    if (new_end < old_end) add_bytes(new_end, old_end);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Status WriteJournal(int db_fd, const std::string& db_path, const DbShape& old,
                    const std::vector<uint32_t>& pages, std::optional<sqlite::JournalWriter>& out) {
  uint32_t nonce = 0;
  if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce) nonce = uint32_t(getpid());
  uint32_t page_size = old.page_size ? old.page_size : 4096;
  Result<sqlite::JournalWriter> journal =
      sqlite::JournalWriter::Create(db_path + "-journal", page_size, old.page_count, nonce);
  if (!journal.ok()) return journal.status();
  std::vector<uint8_t> page(page_size);
  for (uint32_t pgno : pages) {
    Result<size_t> n = fs::PreadFull(db_fd, page.data(), page_size, uint64_t(pgno - 1) * page_size);
    if (!n.ok()) return n.status();
    LITEFS_RETURN_IF_ERROR(journal->AddPage(pgno, page));
  }
  LITEFS_RETURN_IF_ERROR(journal->WriteAndSync());
  out.emplace(std::move(journal).value());
  return Status();
}

// Second pass: write the pages into the database and the checksum table.
Status WritePages(int db_fd, const LtxApplyItem& item, PageChecksums& checksums) {
  Result<std::unique_ptr<LtxContent>> content = OpenLtxContent(*item.ltx_path, item.ltx->bytes);
  if (!content.ok()) return content.status();
  ltx::Decoder& dec = *(*content)->decoder;
  const ltx::Header& h = dec.header();
  std::vector<uint8_t> page;
  for (;;) {
    Result<uint32_t> pgno = dec.NextPage(page);
    if (!pgno.ok()) return pgno.status();
    if (*pgno == 0) break;
    LITEFS_RETURN_IF_ERROR(
        fs::PwriteFull(db_fd, page.data(), page.size(), uint64_t(*pgno - 1) * h.page_size));
    checksums.Set(*pgno, ltx::PageChecksum(*pgno, page));
  }
  return dec.Finish().status();
}

}  // namespace

Status ApplyVerifiedLtx(const std::string& db_path, const std::string& ltx_path,
                        const VerifiedLtx& ltx, PageChecksums& checksums,
                        const ApplyOptions& options) {
  const LtxApplyItem item{&ltx_path, &ltx};
  return ApplyVerifiedLtxRun(db_path, {&item, 1}, checksums, options);
}

Status ApplyVerifiedLtxRun(const std::string& db_path, std::span<const LtxApplyItem> items,
                           PageChecksums& checksums, const ApplyOptions& options) {
  if (items.empty()) return Status();
  if (items.size() > 1) {
    for (const LtxApplyItem& item : items) {
      if (item.ltx->header.IsSnapshot() || item.ltx->header.commit == 0) {
        return Status::Error("a snapshot or a deletion is applied alone");
      }
    }
  }
  const ltx::Header& last = items.back().ltx->header;

  Result<fs::UniqueFd> db = fs::Open(db_path, O_RDWR | O_CREAT, 0644);
  if (!db.ok()) return db.status();
  std::optional<sqlite::ExclusiveLock> lock;
  for (int attempt = 0;; attempt++) {
    {
      Result<sqlite::ExclusiveLock> got =
          sqlite::ExclusiveLock::Acquire(db->get(), options.lock_timeout, db_path);
      if (!got.ok()) return got.status();
      Result<bool> hot = sqlite::HasHotJournal(db_path, db->get());
      if (!hot.ok()) return hot.status();
      if (!*hot) {
        lock.emplace(std::move(got).value());
        break;
      }
    }  // released: SQLite must take its own locks to roll the journal back
    // A previous apply died before its commit point: undo it first.
    if (attempt > 0) return Status::Error(db_path + ": a hot journal keeps coming back");
    LITEFS_RETURN_IF_ERROR(RollBackHotJournal(db_path));
  }

  Result<DbShape> old = ReadDbShape(db->get(), db_path);
  if (!old.ok()) return old.status();
  if (options.expect_change_counter && old->change_counter != *options.expect_change_counter) {
    return Status::Error(db_path + ": " + kUncapturedRollbackCommit);
  }
  std::optional<sqlite::JournalWriter> journal;
  LITEFS_RETURN_IF_ERROR(WriteJournal(db->get(), db_path, *old, PagesToJournal(items, *old), journal));

  // Each file in turn, as if applied alone: a shrink between two of them
  // cuts the file before the next one writes.
  for (const LtxApplyItem& item : items) {
    const ltx::Header& h = item.ltx->header;
    if (h.IsSnapshot() || h.page_size != checksums.page_size()) checksums.Reset(h.page_size);
    checksums.Truncate(h.commit);
    LITEFS_RETURN_IF_ERROR(WritePages(db->get(), item, checksums));
    if (ftruncate(db->get(), off_t(uint64_t(h.commit) * h.page_size)) != 0) {
      return fs::ErrnoError("truncate", db_path);
    }
  }
  if (fdatasync(db->get()) != 0) return fs::ErrnoError("fsync", db_path);

  // Check the result before the commit point: a replica that had diverged
  // must not end up with a mix of its pages and the primary's.
  const uint64_t expected = items.back().ltx->trailer.post_apply_checksum;
  Status verified;
  if (checksums.value() != expected) {
    // The table may have missed pages the file did not carry: recount.
    verified = checksums.Load(db->get(), last.page_size, last.commit);
    if (verified.ok() && checksums.value() != expected) {
      verified = Status::Error(db_path + ": checksum after applying TXID " +
                               ltx::FormatTXID(last.max_txid) + " would be " +
                               ltx::FormatChecksum(checksums.value()) + ", expected " +
                               ltx::FormatChecksum(expected) +
                               " (the replica database was changed outside litefs)");
    }
  }
  if (!verified.ok()) {
    lock.reset();
    Status undone = RollBackHotJournal(db_path);  // back to the state before the apply
    return undone.ok() ? verified : verified.Context(undone.message());
  }
  if (options.before_commit_point) options.before_commit_point();
  LITEFS_RETURN_IF_ERROR(journal->Commit());  // the commit point
  return Status();
}

bool IsUncapturedRollbackCommit(const Status& st) {
  return !st.ok() && st.message().find(kUncapturedRollbackCommit) != std::string::npos;
}

bool IsWalDatabase(const std::string& db_path) {
  if (fs::Exists(db_path + "-wal")) return true;
  Result<fs::UniqueFd> fd = fs::Open(db_path, O_RDONLY);
  if (!fd.ok()) return false;
  Result<DbShape> shape = ReadDbShape(fd->get(), db_path);
  return shape.ok() && shape->write_version == 2;
}

Result<uint32_t> ApplyToDatabase(const std::string& db_path, const std::string& ltx_path,
                                 const VerifiedLtx& ltx, PageChecksums& checksums,
                                 const ApplyOptions& options) {
  if (ltx.header.commit == 0) {
    // A deletion marker: the primary deleted the database; so do we.
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) {
      LITEFS_RETURN_IF_ERROR(fs::RemoveFile(db_path + suffix));
    }
    checksums.Reset(0);
    return 0u;
  }
  if (IsWalDatabase(db_path)) return ApplyLtxToWal(db_path, ltx_path, ltx, checksums, options);
  LITEFS_RETURN_IF_ERROR(ApplyVerifiedLtx(db_path, ltx_path, ltx, checksums, options));
  return 0u;
}

}  // namespace litefs
