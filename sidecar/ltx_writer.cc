// See ltx_writer.h.
#include "sidecar/ltx_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "ltx/checksum.h"
#include "ltx/encoder.h"
#include "sidecar/db_pages.h"
#include "sidecar/fsutil.h"

namespace litefs {
namespace {

// A temp file with an encoder on top; removes the file unless committed.
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

 private:
  LtxFile(std::string path, fs::UniqueFd fd)
      : path_(std::move(path)), fd_(std::move(fd)), out_(fd_.get()) {}
  std::string path_;
  fs::UniqueFd fd_;
  io::FdWriter out_;  // the encoder buffers
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
  h.node_id = o.node_id;
  return h;
}

// Page numbers (in `page_size` pages, <= commit, not the lock page) touched
// by the byte ranges, plus any page of the grown database the table has
// never seen, sorted and unique.
std::vector<uint32_t> PagesToCapture(const std::vector<wire::ByteRange>& ranges,
                                     uint32_t page_size, uint32_t commit,
                                     uint32_t known_pages) {
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
  for (uint32_t p = known_pages + 1; p <= commit; p++) {
    if (p != lock_pgno) pages.push_back(p);
  }
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  return pages;
}

}  // namespace

Result<ltx::Pos> WriteCommitLtx(int db_fd, const std::string& db_path,
                                const std::vector<wire::ByteRange>& ranges, bool all_pages,
                                ltx::Pos prev, PageChecksums& checksums, LtxLog& log,
                                const LtxWriteOptions& options) {
  Result<DbShape> shape = db_fd >= 0 ? ReadDbShape(db_fd, db_path) : Result<DbShape>(DbShape{});
  if (!shape.ok()) return shape.status();
  const uint32_t page_size = shape->page_size ? shape->page_size : checksums.page_size();
  const uint32_t commit = shape->page_count;
  const uint64_t txid = prev.txid + 1;
  const bool snapshot = txid == 1;
  // Without history (or after a page-size change) only every page will do.
  const bool full = all_pages || snapshot || page_size != checksums.page_size();
  if (full) checksums.Reset(page_size);
  if (commit > 0 && page_size == 0) return Status::Error(db_path + ": no page size");

  ltx::Header header =
      MakeHeader(options, page_size ? page_size : 4096, commit, txid, txid,
                 snapshot ? 0 : prev.checksum);
  std::string tmp = log.NewTempPath();
  Result<std::unique_ptr<LtxFile>> file = LtxFile::Create(tmp, header);
  if (!file.ok()) return file.status().Context("write LTX for " + db_path);
  ltx::Encoder& enc = (*file)->encoder();

  uint32_t known = checksums.page_count();
  checksums.Truncate(commit);
  auto add_page = [&](uint32_t pgno, std::span<const uint8_t> page) -> Status {
    checksums.Set(pgno, ltx::PageChecksum(pgno, page));
    return enc.EncodePage(pgno, page);
  };
  if (full) {
    if (commit > 0) LITEFS_RETURN_IF_ERROR(ForEachPage(db_fd, page_size, commit, add_page));
  } else {
    std::vector<uint8_t> page(page_size);
    for (uint32_t pgno : PagesToCapture(ranges, page_size, commit, known)) {
      Result<size_t> n = fs::PreadFull(db_fd, page.data(), page_size,
                                       uint64_t(pgno - 1) * page_size);
      if (!n.ok()) return n.status();
      if (*n != page_size) {
        return Status::Error(db_path + ": page " + std::to_string(pgno) +
                             " is past the end of the file");
      }
      LITEFS_RETURN_IF_ERROR(add_page(pgno, page));
    }
  }
  uint64_t post = checksums.value();
  Result<ltx::Trailer> trailer = (*file)->Finish(post, options.sync);
  if (!trailer.ok()) return trailer.status().Context("write LTX for " + db_path);
  LITEFS_RETURN_IF_ERROR(log.Install(tmp, {txid, txid}, options.sync));
  (*file)->Keep();
  return ltx::Pos{txid, post};
}

Result<SnapshotFile> WriteSnapshotLtx(int db_fd, const std::string& db_path, ltx::Pos pos,
                                      const std::string& path, const LtxWriteOptions& options) {
  Result<DbShape> shape = ReadDbShape(db_fd, db_path);
  if (!shape.ok()) return shape.status();
  ltx::Header header = MakeHeader(options, shape->page_size ? shape->page_size : 4096,
                                  shape->page_count, 1, pos.txid, 0);
  Result<std::unique_ptr<LtxFile>> file = LtxFile::Create(path, header);
  if (!file.ok()) return file.status().Context("write snapshot of " + db_path);
  ltx::RollingChecksum sum;
  ltx::Encoder& enc = (*file)->encoder();
  if (shape->page_count > 0) LITEFS_RETURN_IF_ERROR(ForEachPage(
      db_fd, shape->page_size, shape->page_count,
      [&](uint32_t pgno, std::span<const uint8_t> page) {
        sum.Toggle(ltx::PageChecksum(pgno, page));
        return enc.EncodePage(pgno, page);
      }));
  if (sum.value() != pos.checksum) {
    return Status::Error("snapshot of " + db_path + ": database checksum " +
                         ltx::FormatChecksum(sum.value()) + " does not match position " +
                         ltx::FormatPos(pos) + " (was it changed outside litefs?)");
  }
  Result<ltx::Trailer> trailer = (*file)->Finish(pos.checksum, options.sync);
  if (!trailer.ok()) return trailer.status();
  (*file)->Keep();
  return SnapshotFile{path, header, *trailer};
}

}  // namespace litefs
