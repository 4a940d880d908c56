// See capture_durability.h.
#include "sidecar/capture_durability.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <string>

#include "sidecar/fsutil.h"

namespace litefs {

Status CaptureDurability::BeforeUnsynced(uint64_t first_txid) {
  if (!marked_) marked_ = UnsyncedFrom().has_value();
  if (*marked_) return Status();
  LITEFS_RETURN_IF_ERROR(marker_.Place(std::to_string(first_txid) + "\n"));
  marked_ = true;
  return Status();
}

std::optional<uint64_t> CaptureDurability::UnsyncedFrom() const {
  if (!marker_.Exists()) return std::nullopt;
  // An unreadable marker (torn by the power failure it is there for) still
  // says files may be unsynced: verify them all.
  Result<std::string> text = marker_.Read();
  if (!text.ok()) return 1;
  uint64_t txid = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), txid);
  if (ec != std::errc() || txid == 0) return 1;
  return txid;
}

Status CaptureDurability::KeepDurable(const std::string& ltx_path, const std::string& ltx_dir,
                                     bool defer_flush) {
  struct stat st;
  if (stat(ltx_path.c_str(), &st) != 0) return fs::ErrnoError("stat", ltx_path);
  if (!copies_.FitsWhenEmpty(uint64_t(st.st_size))) {
    // A large transaction: its own file synced, as without the log (a sync
    // of the whole file system would also wait for unrelated writes).
    Result<fs::UniqueFd> fd = fs::Open(ltx_path, O_RDONLY);
    if (!fd.ok()) return fd.status();
    if (fdatasync(fd->get()) != 0) return fs::ErrnoError("fsync", ltx_path);
    return fs::FsyncDir(ltx_dir);
  }
  Result<bool> copied = copies_.Append(ltx_path, !defer_flush);
  if (!copied.ok()) return copied.status();
  if (*copied) return Status();
  // The log is full: sync everything, which forgets the copies; this file
  // is durable with the rest.
  return MakeDurable(ltx_dir);
}

Status CaptureDurability::MakeDurable(const std::string& ltx_dir) {
  if (!marked_) marked_ = UnsyncedFrom().has_value();
  if (*marked_) {
    LITEFS_RETURN_IF_ERROR(marker_.Sync({ltx_dir}));
  }
  // Forgotten before the marker goes: a crash in between leaves a marker
  // with nothing to bring back, never copies that no marker guards (they
  // could otherwise be brought back over a later, different history).
  LITEFS_RETURN_IF_ERROR(copies_.Forget());
  if (!*marked_) return Status();
  LITEFS_RETURN_IF_ERROR(marker_.Remove());
  marked_ = false;
  return Status();
}

}  // namespace litefs
