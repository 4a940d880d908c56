// Encoding and decoding of commit-protocol frames (see commit_protocol.h).
#include "vfs/commit_protocol.h"

#include <algorithm>
#include <cstring>

namespace litefs::wire {
namespace {

void PutU8(std::string& out, uint8_t v) { out.push_back(char(v)); }
void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; i++) out.push_back(char(v >> (8 * i)));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; i++) out.push_back(char(v >> (8 * i)));
}
void PutString(std::string& out, const std::string& s) {
  PutU32(out, uint32_t(s.size()));
  out.append(s);
}

// Bounds-checked little-endian reader over one frame body.
class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> data) : data_(data) {}
  bool U8(uint8_t& v) {
    if (!Need(1)) return false;
    v = data_[pos_++];
    return true;
  }
  bool U32(uint32_t& v) {
    if (!Need(4)) return false;
    v = 0;
    for (int i = 0; i < 4; i++) v |= uint32_t(data_[pos_ + i]) << (8 * i);
    pos_ += 4;
    return true;
  }
  bool U64(uint64_t& v) {
    if (!Need(8)) return false;
    v = 0;
    for (int i = 0; i < 8; i++) v |= uint64_t(data_[pos_ + i]) << (8 * i);
    pos_ += 8;
    return true;
  }
  bool String(std::string& s) {
    uint32_t n;
    if (!U32(n) || !Need(n)) return false;
    s.assign(reinterpret_cast<const char*>(data_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  bool AtEnd() const { return pos_ == data_.size(); }
  size_t remaining() const { return data_.size() - pos_; }

 private:
  bool Need(size_t n) const { return data_.size() - pos_ >= n; }
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

}  // namespace

void EncodeMessage(const Message& msg, std::string& out) {
  size_t start = out.size();
  PutU32(out, 0);  // length, patched below
  PutU8(out, uint8_t(msg.type));
  switch (msg.type) {
    case MsgType::kHello:
      PutU32(out, msg.version);
      PutU32(out, msg.pid);
      break;
    case MsgType::kBegin:
    case MsgType::kBegun:
    case MsgType::kAbort:
    case MsgType::kAwaitCapture:
    case MsgType::kReadOnly:
    case MsgType::kError:
    case MsgType::kBusy:
      PutString(out, msg.text);
      break;
    case MsgType::kCommit:
      PutString(out, msg.text);
      PutU8(out, msg.flags);
      PutU32(out, uint32_t(msg.ranges.size()));
      for (const ByteRange& r : msg.ranges) {
        PutU64(out, r.offset);
        PutU64(out, r.length);
      }
      if (msg.flags & kCommitWal) {
        for (uint32_t v : {msg.wal.salt1, msg.wal.salt2, msg.wal.first_frame, msg.wal.last_frame,
                           msg.wal.page_size, msg.wal.db_pages}) {
          PutU32(out, v);
        }
      }
      if (msg.flags & kCommitCounter) PutU32(out, msg.change_counter);
      break;
    case MsgType::kOk:
      PutU64(out, msg.txid);
      PutU64(out, msg.checksum);
      if (msg.capture_slot != 0) PutU32(out, msg.capture_slot);
      break;
  }
  uint32_t len = uint32_t(out.size() - start - 4);
  for (int i = 0; i < 4; i++) out[start + i] = char(len >> (8 * i));
}

Result<Message> DecodeMessage(std::span<const uint8_t> body) {
  Cursor c(body);
  Message msg;
  uint8_t type;
  if (!c.U8(type)) return Status::Error("empty frame");
  msg.type = MsgType(type);
  bool ok = false;
  switch (msg.type) {
    case MsgType::kHello:
      ok = c.U32(msg.version) && c.U32(msg.pid);
      break;
    case MsgType::kBegin:
    case MsgType::kBegun:
    case MsgType::kAbort:
    case MsgType::kAwaitCapture:
    case MsgType::kReadOnly:
    case MsgType::kError:
    case MsgType::kBusy:
      ok = c.String(msg.text);
      break;
    case MsgType::kCommit: {
      uint32_t n = 0;
      ok = c.String(msg.text) && c.U8(msg.flags) && c.U32(n);
      const size_t wal_bytes = (msg.flags & kCommitWal) ? 24 : 0;
      const size_t counter_bytes = (msg.flags & kCommitCounter) ? 4 : 0;
      ok = ok && c.remaining() == size_t(n) * 16 + wal_bytes + counter_bytes;
      if (ok) {
        msg.ranges.resize(n);
        for (ByteRange& r : msg.ranges) ok = ok && c.U64(r.offset) && c.U64(r.length);
      }
      if (ok && wal_bytes) {
        WalFrames& w = msg.wal;
        ok = c.U32(w.salt1) && c.U32(w.salt2) && c.U32(w.first_frame) && c.U32(w.last_frame) &&
             c.U32(w.page_size) && c.U32(w.db_pages);
      }
      if (ok && counter_bytes) ok = c.U32(msg.change_counter);
      break;
    }
    case MsgType::kOk:
      ok = c.U64(msg.txid) && c.U64(msg.checksum) && (c.AtEnd() || c.U32(msg.capture_slot));
      break;
    default:
      return Status::Error("unknown message type " + std::to_string(type));
  }
  if (!ok || !c.AtEnd()) {
    return Status::Error("malformed message of type " + std::to_string(type));
  }
  return msg;
}

void FrameReader::Append(std::span<const uint8_t> data) {
  if (start_ > 0 && start_ == buf_.size()) {
    buf_.clear();
    start_ = 0;
  }
  buf_.insert(buf_.end(), data.begin(), data.end());
}

Result<bool> FrameReader::Next(Message& msg) {
  size_t avail = buf_.size() - start_;
  if (avail < 4) return false;
  const uint8_t* p = buf_.data() + start_;
  uint32_t len = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
  if (len == 0 || len > kMaxFrameSize) {
    return Status::Error("bad frame length " + std::to_string(len));
  }
  if (avail - 4 < len) return false;
  Result<Message> decoded = DecodeMessage({p + 4, len});
  if (!decoded.ok()) return decoded.status();
  msg = std::move(decoded).value();
  start_ += 4 + len;
  if (start_ > (1u << 20) && start_ * 2 > buf_.size()) {  // compact occasionally
    buf_.erase(buf_.begin(), buf_.begin() + ptrdiff_t(start_));
    start_ = 0;
  }
  return true;
}

void RangeSet::Add(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  if (!ranges_.empty()) {
    ByteRange& last = ranges_.back();
    if (offset >= last.offset && offset <= last.offset + last.length) {
      last.length = std::max(last.length, offset + length - last.offset);
      return;
    }
  }
  ranges_.push_back({offset, length});
  if (ranges_.size() >= 2 * std::max<size_t>(normalized_size_, 1024)) Normalize();
}

void RangeSet::Normalize() {
  std::sort(ranges_.begin(), ranges_.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  std::vector<ByteRange> merged;
  merged.reserve(ranges_.size());
  for (const ByteRange& r : ranges_) {
    if (!merged.empty() && r.offset <= merged.back().offset + merged.back().length) {
      ByteRange& m = merged.back();
      m.length = std::max(m.length, r.offset + r.length - m.offset);
    } else {
      merged.push_back(r);
    }
  }
  ranges_ = std::move(merged);
  normalized_size_ = ranges_.size();
}

const std::vector<ByteRange>& RangeSet::Normalized() {
  Normalize();
  return ranges_;
}

void RangeSet::Clear() {
  ranges_.clear();
  normalized_size_ = 0;
}

}  // namespace litefs::wire
