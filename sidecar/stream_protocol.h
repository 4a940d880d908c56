// LiteFS's replication stream (reference §1.3), both directions:
//  - the position map a replica POSTs to /stream (count, then per database
//    sorted by name: name, TXID, post-apply checksum; all big-endian);
//  - the frames the primary answers with: LTX (name, then the LTX file as a
//    chunked byte stream of u16-length pieces ended by a 0 length), READY,
//    END, DROP_DB, HANDOFF, HWM and HEARTBEAT.
// The decoder is incremental (bytes arrive in arbitrary pieces), bounds
// every length it reads, and rejects anything it does not understand.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "ltx/pos.h"
#include "ltx/status.h"

namespace litefs::stream {

enum class FrameType : uint32_t {
  kLtx = 1,
  kReady = 2,
  kEnd = 3,
  kDropDb = 4,
  kHandoff = 5,
  kHwm = 6,
  kHeartbeat = 7,
};

inline constexpr uint32_t kMaxNameSize = 1024;
inline constexpr uint32_t kMaxPosMapEntries = 1u << 20;
inline constexpr size_t kMaxChunkSize = 65535;

using PosMap = std::map<std::string, ltx::Pos>;

std::string EncodePosMap(const PosMap& positions);
Result<PosMap> DecodePosMap(std::span<const uint8_t> body);

// Frame writers append to `out`.
void AppendLtxBegin(std::string& out, std::string_view db);
void AppendLtxChunks(std::string& out, std::span<const uint8_t> data);  // pieces <= 65535
void AppendLtxEnd(std::string& out);
void AppendReady(std::string& out);
void AppendEnd(std::string& out);
void AppendDropDb(std::string& out, std::string_view db);
void AppendHandoff(std::string& out, std::string_view lease_id);
void AppendHwm(std::string& out, uint64_t txid, std::string_view db);
void AppendHeartbeat(std::string& out, int64_t timestamp_ms);

struct Event {
  enum class Kind {
    kLtxBegin,  // name
    kLtxData,   // data: the next bytes of the LTX file
    kLtxEnd,
    kReady,
    kEnd,
    kDropDb,     // name
    kHandoff,    // name = lease id
    kHwm,        // name, txid
    kHeartbeat,  // timestamp_ms
  };
  Kind kind;
  std::string_view name;
  std::span<const uint8_t> data;
  uint64_t txid = 0;
  int64_t timestamp_ms = 0;
};

class FrameDecoder {
 public:
  // Decodes `data`, calling `on_event` for each event. If `on_event`
  // returns false the decoder stops right after that event and Feed returns
  // the number of bytes consumed; the caller feeds the rest later.
  Result<size_t> Feed(std::span<const uint8_t> data,
                      const std::function<bool(const Event&)>& on_event);

  // True between frames (a clean place for the stream to end).
  bool AtFrameBoundary() const { return state_ == State::kType && have_ == 0; }

 private:
  enum class State {
    kType,
    kLtxSize,
    kLtxNameLen,
    kLtxName,
    kChunkLen,
    kChunkData,
    kNameLen,  // DROP_DB, HANDOFF, HWM names
    kName,
    kHwmTxid,
    kHeartbeat,
  };
  bool Need(size_t n, std::span<const uint8_t>& in, size_t& used);

  State state_ = State::kType;
  FrameType type_ = FrameType::kReady;
  uint8_t fixed_[8];
  size_t have_ = 0;  // bytes gathered into fixed_ or name_
  uint32_t remaining_ = 0;
  uint64_t txid_ = 0;
  std::string name_;
};

}  // namespace litefs::stream
