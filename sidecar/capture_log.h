// Copies of LTX files written without a sync, in a file whose blocks are
// already on disk: `<data-dir>/dbs/<db>/ltx-copies`.
//
// A rollback-mode commit the app synced must have a durable record before
// the app's COMMIT returns. A new LTX file made durable costs two flushes
// that each carry metadata (the file's inode and allocation, then its
// directory entry). Appending a copy of the file here costs one fdatasync
// that carries nothing but the new bytes: the log is allocated and written
// through once when created, so an append changes no metadata that
// fdatasync must write. The file itself stays unsynced, named by the
// unsynced-LTX marker, until the next sync of the file system
// (capture_durability.h), after which the copies are forgotten.
//
// Layout (integers big-endian, as in LTX): a 4 KiB header ("LFSCOPY1",
// generation), then entries one after another, each 8-byte aligned: magic,
// generation, length and CRC-64 of the copy, then the copy.
// Forgetting bumps the generation, so older entries stop counting without
// being erased; an entry torn by a crash ends the list (appends are
// sequential; one whose flush was deferred may be torn with those after it).
//
// A flush may be deferred (Append with `flush` false): the copy is written
// to the device (sync_file_range, waiting for the write) but left in its
// volatile cache, which the next flush of any file on the device empties —
// the app's own flush of the database, when its next transaction commits —
// or Flush().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ltx/status.h"
#include "sidecar/fsutil.h"

namespace litefs {

class CaptureLog {
 public:
  static constexpr uint64_t kDefaultCapacity = 1 << 20;
  static constexpr uint64_t kHeaderSize = 4096;
  static constexpr uint64_t kEntryHeaderSize = 32;

  explicit CaptureLog(std::string path, uint64_t capacity = kDefaultCapacity)
      : path_(std::move(path)), capacity_(capacity) {}

  // Appends a copy of the file at `file_path` and makes it durable, or with
  // `flush` false only writes it to the device. False, with nothing
  // written, when it does not fit in the space left.
  Result<bool> Append(const std::string& file_path, bool flush = true);
  // Makes the copies appended without a flush durable (no-op without any).
  Status Flush();

  // Whether a copy of `size` bytes fits in the log once it is emptied.
  bool FitsWhenEmpty(uint64_t size) const {
    return size + kEntryHeaderSize <= capacity_ - kHeaderSize;
  }

  // Forgets every copy, durably: the next Append starts at the beginning.
  // Cheap when there is nothing to forget.
  Status Forget();

  // The copies the log holds, oldest first (none if it does not exist).
  Result<std::vector<std::string>> Copies();

 private:
  // Opens the log, creating and writing it through on first use, and
  // reads its generation. Appends go after the copies already there.
  Status Open();
  Status WriteHeader(uint64_t generation);
  // Walks the entries of the current generation; with `out`, collects them.
  Result<uint64_t> ScanEntries(std::vector<std::string>* out);

  std::string path_;
  uint64_t capacity_;
  fs::UniqueFd fd_;
  uint64_t generation_ = 0;
  uint64_t end_ = kHeaderSize;  // where the next entry goes
  bool unflushed_ = false;       // a copy was appended without a flush
};

}  // namespace litefs
