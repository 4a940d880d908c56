// A file whose presence says "data written since may not be on disk": made
// durable before the first unsynced write, removed (durably) only after the
// file systems holding that data were synced. Recovery trusts less of what
// it finds while one exists (replica_durability.h, capture_durability.h).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "ltx/status.h"

namespace litefs {

class DurabilityMarker {
 public:
  explicit DurabilityMarker(std::string path) : path_(std::move(path)) {}

  // Writes the marker with `content`; durable (file and directory entry)
  // when this returns.
  Status Place(std::string_view content) const;
  bool Exists() const;
  Result<std::string> Read() const;
  // Syncs the file systems holding `dirs`, then removes the marker and syncs
  // its directory. A missing marker is not an error.
  Status SyncAndRemove(std::initializer_list<std::string> dirs) const;
  // The two halves of SyncAndRemove.
  Status Sync(std::initializer_list<std::string> dirs) const;
  Status Remove() const;

 private:
  std::string path_;
};

}  // namespace litefs
