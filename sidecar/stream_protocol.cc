// See stream_protocol.h.
#include "sidecar/stream_protocol.h"

#include <algorithm>
#include <cstring>

#include "ltx/io.h"

namespace litefs::stream {
namespace {

void PutU16(std::string& out, uint16_t v) {
  uint8_t b[2];
  io::StoreBE16(b, v);
  out.append(reinterpret_cast<char*>(b), 2);
}
void PutU32(std::string& out, uint32_t v) {
  uint8_t b[4];
  io::StoreBE32(b, v);
  out.append(reinterpret_cast<char*>(b), 4);
}
void PutU64(std::string& out, uint64_t v) {
  uint8_t b[8];
  io::StoreBE64(b, v);
  out.append(reinterpret_cast<char*>(b), 8);
}
void PutName(std::string& out, std::string_view name) {
  PutU32(out, uint32_t(name.size()));
  out.append(name);
}

}  // namespace

std::string EncodePosMap(const PosMap& positions) {
  std::string out;
  PutU32(out, uint32_t(positions.size()));
  for (const auto& [name, pos] : positions) {  // std::map: sorted by name
    PutName(out, name);
    PutU64(out, pos.txid);
    PutU64(out, pos.checksum);
  }
  return out;
}

Result<PosMap> DecodePosMap(std::span<const uint8_t> body) {
  size_t off = 0;
  auto need = [&](size_t n) { return body.size() - off >= n; };
  if (!need(4)) return Status::Error("position map: truncated count");
  uint32_t count = io::LoadBE32(&body[off]);
  off += 4;
  if (count > kMaxPosMapEntries) return Status::Error("position map: too many entries");
  PosMap out;
  for (uint32_t i = 0; i < count; i++) {
    if (!need(4)) return Status::Error("position map: truncated entry");
    uint32_t len = io::LoadBE32(&body[off]);
    off += 4;
    if (len > kMaxNameSize) return Status::Error("position map: name too long");
    if (!need(size_t(len) + 16)) return Status::Error("position map: truncated entry");
    std::string name(reinterpret_cast<const char*>(&body[off]), len);
    off += len;
    ltx::Pos pos{io::LoadBE64(&body[off]), io::LoadBE64(&body[off + 8])};
    off += 16;
    out[std::move(name)] = pos;
  }
  if (off != body.size()) return Status::Error("position map: trailing bytes");
  return out;
}

void AppendLtxBegin(std::string& out, std::string_view db) {
  PutU32(out, uint32_t(FrameType::kLtx));
  PutU64(out, 0);  // size: always 0 in LiteFS's stream
  PutName(out, db);
}

void AppendLtxChunks(std::string& out, std::span<const uint8_t> data) {
  while (!data.empty()) {
    size_t n = std::min(data.size(), kMaxChunkSize);
    PutU16(out, uint16_t(n));
    out.append(reinterpret_cast<const char*>(data.data()), n);
    data = data.subspan(n);
  }
}

void AppendLtxEnd(std::string& out) { PutU16(out, 0); }
void AppendReady(std::string& out) { PutU32(out, uint32_t(FrameType::kReady)); }
void AppendEnd(std::string& out) { PutU32(out, uint32_t(FrameType::kEnd)); }

void AppendDropDb(std::string& out, std::string_view db) {
  PutU32(out, uint32_t(FrameType::kDropDb));
  PutName(out, db);
}

void AppendHandoff(std::string& out, std::string_view lease_id) {
  PutU32(out, uint32_t(FrameType::kHandoff));
  PutName(out, lease_id);
}

void AppendHwm(std::string& out, uint64_t txid, std::string_view db) {
  PutU32(out, uint32_t(FrameType::kHwm));
  PutU64(out, txid);
  PutName(out, db);
}

void AppendHeartbeat(std::string& out, int64_t timestamp_ms) {
  PutU32(out, uint32_t(FrameType::kHeartbeat));
  PutU64(out, uint64_t(timestamp_ms));
}

// Gathers `n` bytes into fixed_ across calls; true once all are there.
bool FrameDecoder::Need(size_t n, std::span<const uint8_t>& in, size_t& used) {
  size_t take = std::min(n - have_, in.size());
  std::memcpy(fixed_ + have_, in.data(), take);
  have_ += take;
  in = in.subspan(take);
  used += take;
  if (have_ < n) return false;
  have_ = 0;
  return true;
}

Result<size_t> FrameDecoder::Feed(std::span<const uint8_t> in,
                                  const std::function<bool(const Event&)>& on_event) {
  size_t used = 0;
  auto emit = [&](Event e) { return on_event(e); };
  auto simple = [](Event::Kind k) {
    Event e;
    e.kind = k;
    return e;
  };
  while (!in.empty() || state_ == State::kName || state_ == State::kLtxName) {
    switch (state_) {
      case State::kType: {
        if (!Need(4, in, used)) return used;
        uint32_t t = io::LoadBE32(fixed_);
        type_ = FrameType(t);
        switch (type_) {
          case FrameType::kLtx: state_ = State::kLtxSize; break;
          case FrameType::kReady:
            if (!emit(simple(Event::Kind::kReady))) return used;
            break;
          case FrameType::kEnd:
            if (!emit(simple(Event::Kind::kEnd))) return used;
            break;
          case FrameType::kDropDb:
          case FrameType::kHandoff: state_ = State::kNameLen; break;
          case FrameType::kHwm: state_ = State::kHwmTxid; break;
          case FrameType::kHeartbeat: state_ = State::kHeartbeat; break;
          default: return Status::Error("unknown stream frame type " + std::to_string(t));
        }
        break;
      }
      case State::kLtxSize:
        if (!Need(8, in, used)) return used;
        state_ = State::kLtxNameLen;
        break;
      case State::kLtxNameLen:
      case State::kNameLen: {
        if (!Need(4, in, used)) return used;
        remaining_ = io::LoadBE32(fixed_);
        if (remaining_ > kMaxNameSize) {
          return Status::Error("stream frame name of " + std::to_string(remaining_) + " bytes");
        }
        name_.clear();
        state_ = state_ == State::kLtxNameLen ? State::kLtxName : State::kName;
        break;
      }
      case State::kLtxName:
      case State::kName: {
        size_t take = std::min<size_t>(remaining_, in.size());
        name_.append(reinterpret_cast<const char*>(in.data()), take);
        in = in.subspan(take);
        used += take;
        remaining_ -= uint32_t(take);
        if (remaining_ > 0) return used;
        Event e;
        e.name = name_;
        if (state_ == State::kLtxName) {
          e.kind = Event::Kind::kLtxBegin;
          state_ = State::kChunkLen;
        } else {
          e.kind = type_ == FrameType::kDropDb ? Event::Kind::kDropDb
                   : type_ == FrameType::kHandoff ? Event::Kind::kHandoff
                                                  : Event::Kind::kHwm;
          if (type_ == FrameType::kHwm) e.txid = txid_;
          state_ = State::kType;
        }
        if (!emit(e)) return used;
        break;
      }
      case State::kChunkLen:
        if (!Need(2, in, used)) return used;
        remaining_ = io::LoadBE16(fixed_);
        if (remaining_ == 0) {
          state_ = State::kType;
          if (!emit(simple(Event::Kind::kLtxEnd))) return used;
        } else {
          state_ = State::kChunkData;
        }
        break;
      case State::kChunkData: {
        size_t take = std::min<size_t>(remaining_, in.size());
        Event e;
        e.kind = Event::Kind::kLtxData;
        e.data = in.first(take);
        in = in.subspan(take);
        used += take;
        remaining_ -= uint32_t(take);
        if (remaining_ == 0) state_ = State::kChunkLen;
        if (!emit(e)) return used;
        break;
      }
      case State::kHwmTxid:
        if (!Need(8, in, used)) return used;
        txid_ = io::LoadBE64(fixed_);
        state_ = State::kNameLen;
        break;
      case State::kHeartbeat: {
        if (!Need(8, in, used)) return used;
        Event e;
        e.kind = Event::Kind::kHeartbeat;
        e.timestamp_ms = int64_t(io::LoadBE64(fixed_));
        state_ = State::kType;
        if (!emit(e)) return used;
        break;
      }
    }
  }
  return used;
}

}  // namespace litefs::stream
