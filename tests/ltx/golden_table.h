// Every field of every golden LTX file, as tests/testdata/ltx/README.md lists
// them (written by superfly/ltx v0.3.14).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace litefs::ltx::test {

struct GoldenLtx {
  std::string name;
  size_t bytes;
  uint32_t flags, page_size, commit;
  uint64_t min_txid, max_txid;
  int64_t timestamp_ms;
  uint64_t pre_apply, post_apply, file_checksum;
  std::vector<uint32_t> pages;
};

inline std::vector<uint32_t> PageRange(uint32_t first, uint32_t last) {
  std::vector<uint32_t> v;
  for (uint32_t p = first; p <= last; p++) v.push_back(p);
  return v;
}

constexpr int64_t kT1 = 1700000000123;
constexpr int64_t kT2 = 1700000060456;

// The files that verify (the two *.corrupt.ltx ones are tested separately).
inline const std::vector<GoldenLtx>& GoldenFiles() {
  // clang-format off
  static const std::vector<GoldenLtx> files = {
    // name                              bytes  flags size commit min max time  pre-apply           post-apply          file checksum       pages
    {"small4k-snapshot.ltx",             32920,  0, 4096,    8, 1, 1, kT1,           0,                  0x837729c5a4821b1a, 0xffc293110d4e1032, PageRange(1, 8)},
    {"small4k-snapshot.lz4.ltx",           887,  1, 4096,    8, 1, 1, kT1,           0,                  0x837729c5a4821b1a, 0xaa4b2d086909df00, PageRange(1, 8)},
    {"small4k-snapshot.encode-db.ltx",   32920,  0, 4096,    8, 1, 1, 1795664391875, 0,                  0x837729c5a4821b1a, 0x9e395020d9c047c3, PageRange(1, 8)},
    {"small4k-incr-txid2.ltx",           12420,  0, 4096,    8, 2, 2, kT2,           0x837729c5a4821b1a, 0xee32fe3749230f90, 0xdc07a43221e37dde, {1, 2, 8}},
    {"small4k-incr-txid2.lz4.ltx",         490,  1, 4096,    8, 2, 2, kT2,           0x837729c5a4821b1a, 0xee32fe3749230f90, 0x88bcd1b851e9bcff, {1, 2, 8}},
    {"small512-snapshot.ltx",             7860,  0,  512,   15, 1, 1, kT1,           0,                  0x97dd9846327860dd, 0x946096ed3be3feff, PageRange(1, 15)},
    {"small512-snapshot.lz4.ltx",         1988,  1,  512,   15, 1, 1, kT1,           0,                  0x97dd9846327860dd, 0xbf675841a86b02a9, PageRange(1, 15)},
    {"large5m-snapshot.lz4.ltx",        840938,  1, 4096, 1353, 1, 1, kT1,           0,                  0xea3cdd725eb6e6c0, 0xf6494aaf77733d13, PageRange(1, 1353)},
  };
  // clang-format on
  return files;
}

}  // namespace litefs::ltx::test
