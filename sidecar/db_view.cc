// See db_view.h.
#include "sidecar/db_view.h"

#include <fcntl.h>

#include <algorithm>
#include <cstring>

#include "ltx/checksum.h"

namespace litefs {
namespace {

Status ReadFull(int fd, std::span<uint8_t> out, uint64_t off, const std::string& what) {
  Result<size_t> n = fs::PreadFull(fd, out.data(), out.size(), off);
  if (!n.ok()) return n.status();
  if (*n != out.size()) return Status::Error(what + ": unexpected end of file");
  return Status();
}

}  // namespace

Result<DbView> DbView::OpenFile(const std::string& db_path) {
  DbView v;
  v.db_path_ = db_path;
  Result<fs::UniqueFd> db = fs::Open(db_path, O_RDONLY);
  if (!db.ok()) return v;  // no file: an empty database
  v.db_fd_ = std::move(db).value();
  Result<DbShape> shape = ReadDbShape(v.db_fd_.get(), db_path);
  if (!shape.ok()) return shape.status();
  v.shape_ = *shape;
  v.page_size_ = shape->page_size;
  v.page_count_ = shape->page_count;
  return v;
}

void DbView::UseWal(fs::UniqueFd wal_fd, wal::Committed committed) {
  wal_ = std::move(committed);
  wal_fd_ = std::move(wal_fd);
  if (wal_.last_frame > 0) {
    page_size_ = wal_.header.page_size;
    page_count_ = wal_.db_pages;
  }
}

Result<DbView> DbView::Open(const std::string& db_path, uint32_t wal_stop_after) {
  Result<DbView> v = OpenFile(db_path);
  if (!v.ok() || !v->exists()) return v;
  Result<fs::UniqueFd> wal = fs::Open(db_path + "-wal", O_RDONLY);
  if (wal.ok()) {
    Result<wal::Committed> c = wal::ScanCommitted(wal->get(), wal_stop_after);
    if (!c.ok()) return c.status().Context(db_path + "-wal");
    v->UseWal(std::move(wal).value(), std::move(c).value());
  }
  return v;
}

Result<DbView> DbView::OpenAtWalTail(const std::string& db_path, uint32_t salt1, uint32_t salt2,
                                     uint32_t frame) {
  Result<DbView> v = OpenFile(db_path);
  if (!v.ok() || !v->exists() || frame == 0) return v;
  Result<fs::UniqueFd> wal = fs::Open(db_path + "-wal", O_RDONLY);
  if (!wal.ok()) return v;
  Result<wal::Committed> c = wal::ScanCommitted(wal->get(), frame);
  if (!c.ok()) return c.status().Context(db_path + "-wal");
  // Restarted since: the database file holds everything before the restart.
  if (c->header.salt1 != salt1 || c->header.salt2 != salt2) return v;
  if (c->last_frame != frame) {
    return Status::Error(db_path + "-wal: committed frames end at " + std::to_string(c->last_frame) +
                         ", before frame " + std::to_string(frame) + " of the last capture");
  }
  v->UseWal(std::move(wal).value(), std::move(c).value());
  return v;
}

Status DbView::ReadPage(uint32_t pgno, std::span<uint8_t> out) {
  auto it = wal_.frames.find(pgno);
  if (it != wal_.frames.end()) {
    return ReadFull(wal_fd_.get(), out,
                    wal::FrameOffset(it->second, page_size_) + wal::kFrameHeaderSize,
                    db_path_ + "-wal");
  }
  Result<size_t> n = fs::PreadFull(db_fd_.get(), out.data(), out.size(),
                                   uint64_t(pgno - 1) * page_size_);
  return n.status();  // past the end of the file: zeros, as SQLite would see
}

Result<WalTransaction> WalTransaction::Read(const std::string& wal_path, const wire::WalFrames& f) {
  WalTransaction t;
  t.frames_ = f;
  Result<fs::UniqueFd> fd = fs::Open(wal_path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  t.fd_ = std::move(fd).value();
  uint8_t head[wal::kHeaderSize];
  LITEFS_RETURN_IF_ERROR(ReadFull(t.fd_.get(), head, 0, wal_path));
  Result<wal::Header> h = wal::Header::Decode(head);
  if (!h.ok()) return h.status().Context(wal_path);
  if (h->salt1 != f.salt1 || h->salt2 != f.salt2 || h->page_size != f.page_size) {
    return Status::Error(wal_path + ": the WAL was restarted before its frames were captured");
  }
  if (f.first_frame == 0 || f.last_frame < f.first_frame) {
    return Status::Error(wal_path + ": empty frame range");
  }
  const uint32_t ps = f.page_size;
  const bool be = h->big_endian();
  const uint64_t frame_size = wal::kFrameHeaderSize + ps;
  const uint64_t range_bytes = uint64_t(f.last_frame - f.first_frame + 1) * frame_size;
  if (range_bytes <= kBufferedBytes) {
    t.buffered_.resize(range_bytes);
    LITEFS_RETURN_IF_ERROR(ReadFull(t.fd_.get(), t.buffered_, wal::FrameOffset(f.first_frame, ps), wal_path));
  }
  std::vector<uint8_t> scratch;
  wal::Checksum chain = h->checksum;
  if (f.first_frame > 1) {
    // The chain continues from the frame before, verified by the capture before.
    uint8_t prev[wal::kFrameHeaderSize];
    LITEFS_RETURN_IF_ERROR(ReadFull(t.fd_.get(), prev, wal::FrameOffset(f.first_frame - 1, ps), wal_path));
    chain = wal::FrameHeader::Decode(prev).checksum;
  }
  for (uint32_t i = f.first_frame; i <= f.last_frame; i++) {
    Result<std::span<const uint8_t>> frame = t.Frame(i, scratch);
    if (!frame.ok()) return frame.status().Context(wal_path);
    wal::FrameHeader fh = wal::FrameHeader::Decode(frame->data());
    chain = wal::Update(chain, frame->subspan(0, 8), be);
    chain = wal::Update(chain, frame->subspan(wal::kFrameHeaderSize, ps), be);
    if (fh.salt1 != f.salt1 || fh.salt2 != f.salt2 || fh.pgno == 0 || chain != fh.checksum) {
      return Status::Error(wal_path + ": frame " + std::to_string(i) + " is not valid");
    }
    if (i == f.last_frame && fh.commit != f.db_pages) {
      return Status::Error(wal_path + ": frame " + std::to_string(i) +
                           " is not the commit frame announced");
    }
    t.latest_[fh.pgno] = i;
    if (fh.commit != 0) t.commits_++;
  }
  const uint32_t lock_pgno = ltx::LockPgno(ps);
  for (const auto& [pgno, idx] : t.latest_) {
    if (pgno <= f.db_pages && pgno != lock_pgno) t.pages_.push_back(pgno);
  }
  std::sort(t.pages_.begin(), t.pages_.end());
  return t;
}

Result<std::span<const uint8_t>> WalTransaction::Frame(uint32_t i, std::vector<uint8_t>& scratch) const {
  const size_t frame_size = wal::kFrameHeaderSize + frames_.page_size;
  if (!buffered_.empty()) {
    return std::span<const uint8_t>(buffered_).subspan(size_t(i - frames_.first_frame) * frame_size, frame_size);
  }
  scratch.resize(frame_size);
  LITEFS_RETURN_IF_ERROR(ReadFull(fd_.get(), scratch, wal::FrameOffset(i, frames_.page_size), "WAL"));
  return std::span<const uint8_t>(scratch);
}

Status WalTransaction::ReadPage(uint32_t pgno, std::span<uint8_t> out) {
  auto it = latest_.find(pgno);
  if (it == latest_.end()) return Status::Error("page " + std::to_string(pgno) + " is not in the transaction");
  if (!buffered_.empty() && out.size() == frames_.page_size) {
    const size_t frame_size = wal::kFrameHeaderSize + frames_.page_size;
    const size_t off = size_t(it->second - frames_.first_frame) * frame_size + wal::kFrameHeaderSize;
    std::memcpy(out.data(), buffered_.data() + off, out.size());
    return Status();
  }
  return ReadFull(fd_.get(), out, wal::FrameOffset(it->second, frames_.page_size) + wal::kFrameHeaderSize,
                  "WAL");
}

Status DbFileSource::ReadPage(uint32_t pgno, std::span<uint8_t> out) {
  Result<size_t> n = fs::PreadFull(fd_, out.data(), out.size(), uint64_t(pgno - 1) * shape_.page_size);
  if (!n.ok()) return n.status();
  if (*n != out.size()) {
    return Status::Error("page " + std::to_string(pgno) + " is past the end of the database file");
  }
  return Status();
}

}  // namespace litefs
