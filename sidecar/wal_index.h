// SQLite's wal-index (`<db>-shm`, sqlite-internals §4.5), maintained from
// outside SQLite by the replica's WAL applier: the header (two copies plus
// checkpoint info) and the per-32-KiB-block hash tables that map frames to
// page numbers, written exactly as SQLite's own writer does (walIndexAppend,
// walCleanupHash, walIndexWriteHdr in wal.c) so that SQLite readers in
// other processes, which have the file mapped, find every frame.
//
// All access goes through pread/pwrite on the -shm file: one page cache, so
// mappings in other processes see the bytes at once. Host byte order (the
// file is never shared between machines).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "ltx/status.h"
#include "sidecar/fsutil.h"
#include "vfs/wal_index_header.h"

namespace litefs::wal {

inline constexpr uint32_t kIndexVersion = 3007000;
inline constexpr size_t kIndexBlockSize = 32768;
inline constexpr uint32_t kHashPages = 4096;                   // frames per block (block 0: fewer)
inline constexpr uint32_t kHashSlots = 2 * kHashPages;         // u16 slots per block
inline constexpr size_t kIndexHeaderBytes = 136;               // two headers + checkpoint info
inline constexpr uint32_t kFirstBlockPages = kHashPages - kIndexHeaderBytes / 4;  // 4062
inline constexpr uint32_t kReadMarkUnused = 0xffffffff;

struct CheckpointInfo {
  uint32_t backfill = 0;             // nBackfill: frames copied into the database
  uint32_t read_mark[5] = {0, 0, 0, 0, 0};
  uint32_t backfill_attempted = 0;
};

class Index {
 public:
  // Opens (creating with `mode` if missing) the -shm file.
  static Result<Index> Open(const std::string& path, int mode);

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

  // Both header copies; `valid` is false when they differ, are not
  // initialised, or fail their checksum (a reader would run recovery).
  struct HeaderState {
    WalIndexHeader header;
    bool valid = false;
  };
  Result<HeaderState> ReadHeader() const;
  // Sets the checksum, then writes the second copy and then the first, as
  // SQLite does, so a reader comparing them never accepts a torn header.
  Status WriteHeader(WalIndexHeader header) const;

  Result<CheckpointInfo> ReadCheckpointInfo() const;
  Status WriteCheckpointInfo(const CheckpointInfo& info) const;

  // Records that frames first_frame, first_frame+1, ... hold pages `pgnos`
  // (appended after `mx_frame`, the last frame readers may see). Each
  // 32 KiB block is read once and written once, if it changed.
  Status Append(uint32_t first_frame, std::span<const uint32_t> pgnos, uint32_t mx_frame) const;

  // Forgets everything: a zero-filled first block (readers that open it
  // next see no valid header until WriteHeader).
  Status Clear() const;

  // The header checksum SQLite computes (native word order, bytes 0..39).
  static void SetChecksum(WalIndexHeader& h);

 private:
  Index(std::string path, fs::UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  class BlockBuffer;
  Result<uint64_t> Size() const;
  // Extends the file (of `size` bytes, updated) to hold `block`.
  Status EnsureBlock(uint32_t block, uint64_t& size) const;
  // Removes hash entries of frames after `mx_frame` in its block.
  Status CleanupAfter(uint32_t mx_frame, BlockBuffer& buf) const;

  std::string path_;
  fs::UniqueFd fd_;
};

// Index::ReadHeader on any -shm descriptor (a primary's, opened read-only:
// SQLite maintains it there).
Result<Index::HeaderState> ReadIndexHeader(int shm_fd);

}  // namespace litefs::wal
