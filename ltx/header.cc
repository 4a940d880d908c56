// LTX header/trailer encoding and the header rules of superfly/ltx v0.3.14.
#include "ltx/header.h"

#include <cassert>
#include <cstdio>
#include <cstring>
#include <string>

#include "ltx/checksum.h"
#include "ltx/io.h"

namespace litefs::ltx {
namespace {

constexpr char kMagic[4] = {'L', 'T', 'X', '1'};

bool IsValidPageSize(uint32_t size) {
  return size >= 512 && size <= 65536 && (size & (size - 1)) == 0;
}

std::string Hex32(uint32_t v) {
  char buf[11];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

Status Header::Validate() const {
  if (flags & ~kFlagCompressLZ4) return Status::Error("invalid flags: " + Hex32(flags));
  if (!IsValidPageSize(page_size)) {
    return Status::Error("invalid page size: " + std::to_string(page_size) +
                         " (must be a power of two from 512 to 65536)");
  }
  if (min_txid == 0) return Status::Error("minimum transaction id required");
  if (max_txid == 0) return Status::Error("maximum transaction id required");
  if (min_txid > max_txid) {
    return Status::Error("transaction ids out of order: min " + std::to_string(min_txid) +
                         " > max " + std::to_string(max_txid));
  }
  if (wal_offset < 0)
    return Status::Error("wal offset cannot be negative: " + std::to_string(wal_offset));
  if (wal_size < 0)
    return Status::Error("wal size cannot be negative: " + std::to_string(wal_size));
  if (wal_salt1 != 0 || wal_salt2 != 0) {
    if (wal_offset == 0) return Status::Error("wal offset required if wal salt exists");
    if (wal_size == 0) return Status::Error("wal size required if wal salt exists");
  }
  if (wal_offset != 0 && wal_size == 0)
    return Status::Error("wal size required if wal offset exists");
  if (wal_offset == 0 && wal_size != 0)
    return Status::Error("wal offset required if wal size exists");
  if (IsSnapshot()) {
    if (pre_apply_checksum != 0)
      return Status::Error("pre-apply checksum must be zero on snapshots");
  } else {
    if (pre_apply_checksum == 0) {
      return Status::Error("pre-apply checksum required on non-snapshot files");
    }
    if (!(pre_apply_checksum & kChecksumFlag)) {
      return Status::Error("invalid pre-apply checksum format: checksum flag (bit 63) not set");
    }
  }
  return Status();
}

std::array<uint8_t, kHeaderSize> Header::Encode() const {
  std::array<uint8_t, kHeaderSize> b{};
  uint8_t* p = b.data();
  std::memcpy(p, kMagic, sizeof kMagic);
  io::StoreBE32(p + 4, flags);
  io::StoreBE32(p + 8, page_size);
  io::StoreBE32(p + 12, commit);
  io::StoreBE64(p + 16, min_txid);
  io::StoreBE64(p + 24, max_txid);
  io::StoreBE64(p + 32, uint64_t(timestamp_ms));
  io::StoreBE64(p + 40, pre_apply_checksum);
  io::StoreBE64(p + 48, uint64_t(wal_offset));
  io::StoreBE64(p + 56, uint64_t(wal_size));
  io::StoreBE32(p + 64, wal_salt1);
  io::StoreBE32(p + 68, wal_salt2);
  io::StoreBE64(p + 72, node_id);
  return b;
}

Result<Header> Header::Decode(std::span<const uint8_t> bytes) {
  if (bytes.size() < kHeaderSize) {
    return Status::Error("ltx header too short: " + std::to_string(bytes.size()) + " bytes");
  }
  const uint8_t* p = bytes.data();
  if (std::memcmp(p, kMagic, sizeof kMagic) != 0) {
    return Status::Error("invalid LTX file: magic is not \"LTX1\"");
  }
  Header h;
  h.flags = io::LoadBE32(p + 4);
  h.page_size = io::LoadBE32(p + 8);
  h.commit = io::LoadBE32(p + 12);
  h.min_txid = io::LoadBE64(p + 16);
  h.max_txid = io::LoadBE64(p + 24);
  h.timestamp_ms = int64_t(io::LoadBE64(p + 32));
  h.pre_apply_checksum = io::LoadBE64(p + 40);
  h.wal_offset = int64_t(io::LoadBE64(p + 48));
  h.wal_size = int64_t(io::LoadBE64(p + 56));
  h.wal_salt1 = io::LoadBE32(p + 64);
  h.wal_salt2 = io::LoadBE32(p + 68);
  h.node_id = io::LoadBE64(p + 72);
  LITEFS_RETURN_IF_ERROR(h.Validate().Context("invalid ltx header"));
  return h;
}

std::array<uint8_t, kTrailerSize> Trailer::Encode() const {
  std::array<uint8_t, kTrailerSize> b{};
  io::StoreBE64(b.data(), post_apply_checksum);
  io::StoreBE64(b.data() + 8, file_checksum);
  return b;
}

Trailer Trailer::Decode(std::span<const uint8_t> bytes) {
  // Callers pass kTrailerSize bytes. A shorter span is a programming error;
  // it yields an all-zero trailer, whose file checksum never verifies.
  assert(bytes.size() >= kTrailerSize);
  Trailer t;
  if (bytes.size() < kTrailerSize) return t;
  t.post_apply_checksum = io::LoadBE64(bytes.data());
  t.file_checksum = io::LoadBE64(bytes.data() + 8);
  return t;
}

}  // namespace litefs::ltx
