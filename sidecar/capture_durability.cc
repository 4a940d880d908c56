// See capture_durability.h.
#include "sidecar/capture_durability.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>

#include "sidecar/fsutil.h"

namespace litefs {

Status CaptureDurability::BeforeUnsynced(uint64_t first_txid) {
  if (!marked_) marked_ = UnsyncedFrom().has_value();
  if (*marked_) return Status();
  LITEFS_RETURN_IF_ERROR(fs::MakeDirs(fs::Dirname(marker_path_)));
  LITEFS_RETURN_IF_ERROR(fs::WriteFileAtomic(marker_path_, std::to_string(first_txid) + "\n", /*sync=*/true));
  marked_ = true;
  return Status();
}

std::optional<uint64_t> CaptureDurability::UnsyncedFrom() const {
  Result<std::string> text = fs::ReadFile(marker_path_);
  if (!text.ok()) return std::nullopt;
  uint64_t txid = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), txid);
  // An unreadable marker (torn by the power failure it is there for) still
  // says files may be unsynced: verify them all.
  if (ec != std::errc() || txid == 0) return 1;
  return txid;
}

Status CaptureDurability::MakeDurable(const std::string& ltx_dir) {
  if (!marked_) marked_ = UnsyncedFrom().has_value();
  if (!*marked_) return Status();
  Result<fs::UniqueFd> fd = fs::Open(ltx_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (!fd.ok()) return fd.status();
  if (syncfs(fd->get()) != 0) return fs::ErrnoError("syncfs", ltx_dir);
  LITEFS_RETURN_IF_ERROR(fs::RemoveFile(marker_path_));
  LITEFS_RETURN_IF_ERROR(fs::FsyncDir(fs::Dirname(marker_path_)));
  marked_ = false;
  return Status();
}

}  // namespace litefs
