// See capture_durability.h.
#include "sidecar/capture_durability.h"

#include <charconv>
#include <string>

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

Status CaptureDurability::MakeDurable(const std::string& ltx_dir) {
  if (!marked_) marked_ = UnsyncedFrom().has_value();
  if (!*marked_) return Status();
  LITEFS_RETURN_IF_ERROR(marker_.SyncAndRemove({ltx_dir}));
  marked_ = false;
  return Status();
}

}  // namespace litefs
