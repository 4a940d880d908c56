// See durability_marker.h.
#include "sidecar/durability_marker.h"

#include <fcntl.h>
#include <unistd.h>

#include "sidecar/fsutil.h"

namespace litefs {

Status DurabilityMarker::Place(std::string_view content) const {
  LITEFS_RETURN_IF_ERROR(fs::MakeDirs(fs::Dirname(path_)));
  return fs::WriteFileAtomic(path_, content, /*sync=*/true);
}

bool DurabilityMarker::Exists() const { return fs::Exists(path_); }

Result<std::string> DurabilityMarker::Read() const { return fs::ReadFile(path_); }

Status DurabilityMarker::SyncAndRemove(std::initializer_list<std::string> dirs) const {
  LITEFS_RETURN_IF_ERROR(Sync(dirs));
  return Remove();
}

Status DurabilityMarker::Sync(std::initializer_list<std::string> dirs) const {
  for (const std::string& dir : dirs) {
    Result<fs::UniqueFd> fd = fs::Open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!fd.ok()) return fd.status();
    if (syncfs(fd->get()) != 0) return fs::ErrnoError("syncfs", dir);
  }
  return Status();
}

Status DurabilityMarker::Remove() const {
  LITEFS_RETURN_IF_ERROR(fs::RemoveFile(path_));
  return fs::FsyncDir(fs::Dirname(path_));
}

}  // namespace litefs
