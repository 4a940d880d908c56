// See ltx_writer.h.
#include "sidecar/ltx_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "ltx/checksum.h"
#include "ltx/encoder.h"
#include "sidecar/fsutil.h"

namespace litefs {
namespace {

// Writes to a file and keeps a copy of what it wrote, as long as that stays
// small enough for the log to remember (LtxLog::kRememberedFileSize).
class FileAndCopyWriter final : public io::Writer {
 public:
  explicit FileAndCopyWriter(int fd) : file_(fd), copy_(std::make_shared<std::vector<uint8_t>>()) {}
  Status Write(std::span<const uint8_t> data) override {
    LITEFS_RETURN_IF_ERROR(file_.Write(data));
    if (copy_ && copy_->size() + data.size() <= LtxLog::kRememberedFileSize) {
      copy_->insert(copy_->end(), data.begin(), data.end());
    } else {
      copy_.reset();
    }
    return Status();
  }
  // The file's content, or null if it grew too large to copy.
  LtxBytes TakeCopy() { return std::move(copy_); }

 private:
  io::FdWriter file_;
  std::shared_ptr<std::vector<uint8_t>> copy_;
};

// A new file with an encoder on top; removes the file unless kept.
class LtxFile {
 public:
  static Result<std::unique_ptr<LtxFile>> Create(const std::string& path,
                                                 const ltx::Header& header) {
    Result<fs::UniqueFd> fd = fs::Open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (!fd.ok()) return fd.status();
    auto f = std::unique_ptr<LtxFile>(new LtxFile(path, std::move(fd).value()));
    Result<std::unique_ptr<ltx::Encoder>> enc = ltx::Encoder::Begin(f->out_, header);
    if (!enc.ok()) return enc.status();
    f->encoder_ = std::move(enc).value();
    return f;
  }
  ~LtxFile() {
    if (!kept_) {
      fd_.Reset();
      unlink(path_.c_str());
    }
  }

  ltx::Encoder& encoder() { return *encoder_; }

  Result<ltx::Trailer> Finish(uint64_t post_apply_checksum, bool sync) {
    Result<ltx::Trailer> trailer = encoder_->Finish(post_apply_checksum);
    if (!trailer.ok()) return trailer;
    if (sync && fdatasync(fd_.get()) != 0) return fs::ErrnoError("fsync", path_);
    fd_.Reset();
    return trailer;
  }
  void Keep() { kept_ = true; }
  LtxBytes TakeContent() { return out_.TakeCopy(); }

 private:
  LtxFile(std::string path, fs::UniqueFd fd)
      : path_(std::move(path)), fd_(std::move(fd)), out_(fd_.get()) {}
  std::string path_;
  fs::UniqueFd fd_;
  FileAndCopyWriter out_;  // the encoder buffers
  std::unique_ptr<ltx::Encoder> encoder_;
  bool kept_ = false;
};

ltx::Header MakeHeader(const LtxWriteOptions& o, uint32_t page_size, uint32_t commit,
                       uint64_t min_txid, uint64_t max_txid, uint64_t pre_apply) {
  ltx::Header h;
  h.flags = o.compress ? ltx::kFlagCompressLZ4 : 0;
  h.page_size = page_size;
  h.commit = commit;
  h.min_txid = min_txid;
  h.max_txid = max_txid;
  h.timestamp_ms = o.timestamp_ms;
  h.pre_apply_checksum = pre_apply;
  h.wal_offset = o.wal_offset;
  h.wal_size = o.wal_size;
  h.wal_salt1 = o.wal_salt1;
  h.wal_salt2 = o.wal_salt2;
  h.node_id = o.node_id;
  return h;
}

// Every page of the source but the lock page.
std::vector<uint32_t> AllPages(uint32_t page_size, uint32_t count) {
  std::vector<uint32_t> out;
  out.reserve(count);
  const uint32_t lock_pgno = ltx::LockPgno(page_size);
  for (uint32_t p = 1; p <= count; p++) {
    if (p != lock_pgno) out.push_back(p);
  }
  return out;
}

// Encodes pages 1..count of `source` (the lock page left out) and returns
// their rolling checksum: the database's checksum at that position.
Result<ltx::RollingChecksum> EncodeEveryPage(PageSource& source, uint32_t page_size, uint32_t count,
                                             ltx::Encoder& enc) {
  ltx::RollingChecksum sum;
  std::vector<uint8_t> page(page_size);
  for (uint32_t pgno : AllPages(page_size, count)) {
    LITEFS_RETURN_IF_ERROR(source.ReadPage(pgno, page));
    sum.Toggle(ltx::PageChecksum(pgno, page));
    LITEFS_RETURN_IF_ERROR(enc.EncodePage(pgno, page));
  }
  return sum;
}

}  // namespace

std::vector<uint32_t> PagesTouched(const std::vector<wire::ByteRange>& ranges, uint32_t page_size,
                                   uint32_t commit) {
  const uint32_t lock_pgno = ltx::LockPgno(page_size);
  std::vector<uint32_t> pages;
  for (const wire::ByteRange& r : ranges) {
    if (r.length == 0) continue;
    uint64_t first = r.offset / page_size + 1;
    uint64_t last = (r.offset + r.length - 1) / page_size + 1;
    for (uint64_t p = first; p <= last && p <= commit; p++) {
      if (p != lock_pgno) pages.push_back(uint32_t(p));
    }
  }
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  return pages;
}

Result<ltx::Pos> WriteCommitLtx(PageSource& source, const std::vector<uint32_t>* pages,
                                ltx::Pos prev, PageChecksums& checksums, LtxLog& log,
                                const LtxWriteOptions& options) {
  const uint32_t commit = source.page_count();
  const uint32_t page_size = commit > 0 ? source.page_size()
                             : checksums.page_size() ? checksums.page_size() : 4096;
  const ltx::TXIDRange txids{prev.txid + 1, prev.txid + std::max<uint64_t>(options.transactions, 1)};
  const bool snapshot = txids.min_txid == 1;
  std::vector<uint32_t> chosen;
  if (!pages || snapshot || page_size != checksums.page_size()) {
    // Without history (or after a page-size change) only every page will do.
    checksums.Reset(page_size);
    chosen = AllPages(page_size, commit);
  } else {
    // Pages of a grown database the table has never seen count too.
    chosen = *pages;
    const uint32_t lock_pgno = ltx::LockPgno(page_size);
    for (uint32_t p = checksums.page_count() + 1; p <= commit; p++) {
      if (p != lock_pgno) chosen.push_back(p);
    }
    std::sort(chosen.begin(), chosen.end());
    chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
  }

  ltx::Header header = MakeHeader(options, page_size, commit, txids.min_txid, txids.max_txid,
                                  snapshot ? 0 : prev.checksum);
  // Written in place (O_EXCL): until log.Add the index does not list it,
  // and recovery drops it if a crash leaves it torn.
  Result<std::unique_ptr<LtxFile>> file = LtxFile::Create(log.PathFor(txids), header);
  if (!file.ok()) return file.status();
  ltx::Encoder& enc = (*file)->encoder();
  checksums.Truncate(commit);
  std::vector<uint8_t> page(page_size);
  for (uint32_t pgno : chosen) {
    LITEFS_RETURN_IF_ERROR(source.ReadPage(pgno, page));
    checksums.Set(pgno, ltx::PageChecksum(pgno, page));
    LITEFS_RETURN_IF_ERROR(enc.EncodePage(pgno, page));
  }
  uint64_t post = checksums.value();
  Result<ltx::Trailer> trailer = (*file)->Finish(post, options.sync);
  if (!trailer.ok()) return trailer.status();
  LITEFS_RETURN_IF_ERROR(log.Add(txids, options.sync, (*file)->TakeContent()));
  (*file)->Keep();
  return ltx::Pos{txids.max_txid, post};
}

Result<SnapshotFile> WriteSnapshotLtx(PageSource& source, ltx::Pos pos, const std::string& path,
                                      const LtxWriteOptions& options) {
  const uint32_t count = source.page_count();
  const uint32_t page_size = count > 0 ? source.page_size() : 4096;
  ltx::Header header = MakeHeader(options, page_size, count, 1, pos.txid, 0);
  Result<std::unique_ptr<LtxFile>> file = LtxFile::Create(path, header);
  if (!file.ok()) return file.status();
  Result<ltx::RollingChecksum> summed = EncodeEveryPage(source, page_size, count, (*file)->encoder());
  if (!summed.ok()) return summed.status();
  const ltx::RollingChecksum sum = *summed;
  if (sum.value() != pos.checksum) {
    return Status::Error("snapshot: database checksum " + ltx::FormatChecksum(sum.value()) +
                         " does not match position " + ltx::FormatPos(pos) +
                         " (was it changed outside litefs?)");
  }
  Result<ltx::Trailer> trailer = (*file)->Finish(pos.checksum, options.sync);
  if (!trailer.ok()) return trailer.status();
  (*file)->Keep();
  return SnapshotFile{path, header, *trailer};
}

Result<SnapshotFile> WriteReplacementLtx(PageSource& source, ltx::Pos prev, const std::string& path,
                                         const LtxWriteOptions& options) {
  const uint32_t count = source.page_count();
  const uint32_t page_size = source.page_size();
  const uint64_t txid = prev.txid + 1;
  ltx::Header header =
      MakeHeader(options, page_size, count, txid, txid, txid == 1 ? 0 : prev.checksum);
  Result<std::unique_ptr<LtxFile>> file = LtxFile::Create(path, header);
  if (!file.ok()) return file.status();
  Result<ltx::RollingChecksum> summed = EncodeEveryPage(source, page_size, count, (*file)->encoder());
  if (!summed.ok()) return summed.status();
  const ltx::RollingChecksum sum = *summed;
  Result<ltx::Trailer> trailer = (*file)->Finish(sum.value(), options.sync);
  if (!trailer.ok()) return trailer.status();
  (*file)->Keep();
  return SnapshotFile{path, header, *trailer};
}

}  // namespace litefs
