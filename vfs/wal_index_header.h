// The 48-byte header at the start of SQLite's wal-index (`<db>-shm`), stored
// twice (offsets 0 and 48) in host byte order (sqlite-internals §4.5). Read
// by the VFS at commit time from the shared mapping, and by the sidecar when
// it appends frames to a replica's WAL.
#pragma once

#include <cstdint>
#include <cstring>

namespace litefs {

struct WalIndexHeader {
  static constexpr size_t kSize = 48;

  uint32_t version = 0;      // iVersion, 3007000
  uint32_t change = 0;       // iChange: +1 per committed transaction
  uint8_t is_init = 0;
  uint8_t big_end_cksum = 0;
  uint16_t page_size_field = 0;  // szPage; 1 means 65536
  uint32_t mx_frame = 0;     // last valid commit frame; 0 = the WAL is empty
  uint32_t n_page = 0;       // database size in pages
  uint32_t frame_cksum[2] = {0, 0};
  uint8_t salt[8] = {};      // raw copy of WAL header bytes 16..23 (big-endian)
  uint32_t cksum[2] = {0, 0};

  uint32_t page_size() const { return page_size_field == 1 ? 65536u : page_size_field; }
  uint32_t salt1() const {
    return uint32_t(salt[0]) << 24 | uint32_t(salt[1]) << 16 | uint32_t(salt[2]) << 8 | salt[3];
  }
  uint32_t salt2() const {
    return uint32_t(salt[4]) << 24 | uint32_t(salt[5]) << 16 | uint32_t(salt[6]) << 8 | salt[7];
  }

  static WalIndexHeader Decode(const uint8_t* p) {
    WalIndexHeader h;
    std::memcpy(&h.version, p + 0, 4);
    std::memcpy(&h.change, p + 8, 4);
    h.is_init = p[12];
    h.big_end_cksum = p[13];
    std::memcpy(&h.page_size_field, p + 14, 2);
    std::memcpy(&h.mx_frame, p + 16, 4);
    std::memcpy(&h.n_page, p + 20, 4);
    std::memcpy(h.frame_cksum, p + 24, 8);
    std::memcpy(h.salt, p + 32, 8);
    std::memcpy(h.cksum, p + 40, 8);
    return h;
  }

  void Encode(uint8_t* p) const {
    std::memset(p, 0, kSize);
    std::memcpy(p + 0, &version, 4);
    std::memcpy(p + 8, &change, 4);
    p[12] = is_init;
    p[13] = big_end_cksum;
    std::memcpy(p + 14, &page_size_field, 2);
    std::memcpy(p + 16, &mx_frame, 4);
    std::memcpy(p + 20, &n_page, 4);
    std::memcpy(p + 24, frame_cksum, 8);
    std::memcpy(p + 32, salt, 8);
    std::memcpy(p + 40, cksum, 8);
  }
};

}  // namespace litefs
