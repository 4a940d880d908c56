// See wal_format.h.
#include "sidecar/wal_format.h"

#include <sys/stat.h>

#include <vector>

#include "ltx/io.h"
#include "sidecar/fsutil.h"

namespace litefs::wal {
namespace {

uint32_t LoadLE32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

bool ValidPageSize(uint32_t ps) { return ps >= 512 && ps <= 65536 && (ps & (ps - 1)) == 0; }

}  // namespace

Checksum Update(Checksum c, std::span<const uint8_t> data, bool big_endian) {
  uint32_t s0 = c.s0, s1 = c.s1;
  const uint8_t* p = data.data();
  const uint8_t* end = p + (data.size() & ~size_t(7));
  if (big_endian) {
    for (; p < end; p += 8) {
      s0 += io::LoadBE32(p) + s1;
      s1 += io::LoadBE32(p + 4) + s0;
    }
  } else {
    for (; p < end; p += 8) {
      s0 += LoadLE32(p) + s1;
      s1 += LoadLE32(p + 4) + s0;
    }
  }
  return {s0, s1};
}

Result<Header> Header::Decode(std::span<const uint8_t> b) {
  if (b.size() < kHeaderSize) return Status::Error("WAL header is truncated");
  Header h;
  h.magic = io::LoadBE32(&b[0]);
  if (h.magic != kMagicLE && h.magic != kMagicBE) return Status::Error("not a WAL file (bad magic)");
  h.version = io::LoadBE32(&b[4]);
  if (h.version != kFormatVersion) {
    return Status::Error("unsupported WAL format version " + std::to_string(h.version));
  }
  h.page_size = io::LoadBE32(&b[8]);
  if (!ValidPageSize(h.page_size)) {
    return Status::Error("bad WAL page size " + std::to_string(h.page_size));
  }
  h.checkpoint_seq = io::LoadBE32(&b[12]);
  h.salt1 = io::LoadBE32(&b[16]);
  h.salt2 = io::LoadBE32(&b[20]);
  h.checksum = {io::LoadBE32(&b[24]), io::LoadBE32(&b[28])};
  if (Update({}, b.first(24), h.big_endian()) != h.checksum) {
    return Status::Error("WAL header checksum mismatch");
  }
  return h;
}

void Header::Encode(uint8_t out[kHeaderSize]) const {
  io::StoreBE32(out, magic);
  io::StoreBE32(out + 4, version);
  io::StoreBE32(out + 8, page_size);
  io::StoreBE32(out + 12, checkpoint_seq);
  io::StoreBE32(out + 16, salt1);
  io::StoreBE32(out + 20, salt2);
  Checksum c = Update({}, {out, 24}, magic == kMagicBE);
  io::StoreBE32(out + 24, c.s0);
  io::StoreBE32(out + 28, c.s1);
}

FrameHeader FrameHeader::Decode(const uint8_t b[kFrameHeaderSize]) {
  FrameHeader f;
  f.pgno = io::LoadBE32(b);
  f.commit = io::LoadBE32(b + 4);
  f.salt1 = io::LoadBE32(b + 8);
  f.salt2 = io::LoadBE32(b + 12);
  f.checksum = {io::LoadBE32(b + 16), io::LoadBE32(b + 20)};
  return f;
}

void FrameHeader::Encode(uint8_t out[kFrameHeaderSize]) const {
  io::StoreBE32(out, pgno);
  io::StoreBE32(out + 4, commit);
  io::StoreBE32(out + 8, salt1);
  io::StoreBE32(out + 12, salt2);
  io::StoreBE32(out + 16, checksum.s0);
  io::StoreBE32(out + 20, checksum.s1);
}

Result<Tail> ScanTail(int fd, uint32_t page_size, uint32_t after, Checksum checksum,
                      uint32_t salt1, uint32_t salt2, bool big_endian) {
  Tail out;
  out.last_frame = after;
  out.checksum = checksum;
  struct stat st;
  if (fstat(fd, &st) != 0) return fs::ErrnoError("stat", "WAL");
  std::vector<uint8_t> frame(kFrameHeaderSize + page_size);
  std::vector<uint32_t> pending;
  Checksum chain = checksum;
  for (uint32_t i = after + 1;; i++) {
    uint64_t off = FrameOffset(i, page_size);
    if (off + frame.size() > uint64_t(st.st_size)) break;
    Result<size_t> n = fs::PreadFull(fd, frame.data(), frame.size(), off);
    if (!n.ok()) return n.status();
    FrameHeader f = FrameHeader::Decode(frame.data());
    if (f.pgno == 0 || f.salt1 != salt1 || f.salt2 != salt2) break;
    chain = Update(chain, {frame.data(), 8}, big_endian);
    chain = Update(chain, {frame.data() + kFrameHeaderSize, page_size}, big_endian);
    if (chain != f.checksum) break;
    pending.push_back(f.pgno);
    if (f.commit != 0) {
      out.pgnos.insert(out.pgnos.end(), pending.begin(), pending.end());
      pending.clear();
      out.last_frame = i;
      out.db_pages = f.commit;
      out.checksum = chain;
    }
  }
  return out;
}

Result<Committed> ScanCommitted(int fd, uint32_t stop_after) {
  Committed out;
  struct stat st;
  if (fstat(fd, &st) != 0) return fs::ErrnoError("stat", "WAL");
  if (uint64_t(st.st_size) < kHeaderSize) return out;
  uint8_t head[kHeaderSize];
  Result<size_t> n = fs::PreadFull(fd, head, sizeof head, 0);
  if (!n.ok()) return n.status();
  Result<Header> h = Header::Decode(head);
  if (!h.ok()) return out;  // SQLite treats an invalid header as an empty WAL
  out.header = *h;
  out.checksum = h->checksum;
  const uint32_t ps = h->page_size;
  const bool be = h->big_endian();
  std::vector<uint8_t> frame(kFrameHeaderSize + ps);
  std::unordered_map<uint32_t, uint32_t> pending;
  Checksum chain = h->checksum;
  for (uint32_t i = 1;; i++) {
    if (stop_after && i > stop_after) break;
    uint64_t off = FrameOffset(i, ps);
    if (off + frame.size() > uint64_t(st.st_size)) break;
    n = fs::PreadFull(fd, frame.data(), frame.size(), off);
    if (!n.ok()) return n.status();
    FrameHeader f = FrameHeader::Decode(frame.data());
    if (f.pgno == 0 || f.salt1 != h->salt1 || f.salt2 != h->salt2) break;
    chain = Update(chain, {frame.data(), 8}, be);
    chain = Update(chain, {frame.data() + kFrameHeaderSize, ps}, be);
    if (chain != f.checksum) break;
    pending[f.pgno] = i;
    if (f.commit != 0) {
      for (const auto& [pgno, idx] : pending) out.frames[pgno] = idx;
      pending.clear();
      out.last_frame = i;
      out.db_pages = f.commit;
      out.checksum = chain;
    }
  }
  return out;
}

}  // namespace litefs::wal
