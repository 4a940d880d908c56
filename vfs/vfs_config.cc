// See vfs_config.h.
#include "vfs/vfs_config.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>

#include <sqlite3.h>

#include "vfs/commit_protocol.h"
#include "vfs/vfs_log.h"

namespace litefs::vfs {
namespace {

std::optional<VfsConfig> Load() {
  const char* dir = getenv("LITEFS_DIR");
  if (!dir || !*dir) {
    LogWarning(SQLITE_WARNING, "LITEFS_DIR is not set; no database is replicated");
    return std::nullopt;
  }
  char real[PATH_MAX];
  struct stat st;
  if (!realpath(dir, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
    LogWarning(SQLITE_WARNING, "LITEFS_DIR=%s is not a directory; no database is replicated", dir);
    return std::nullopt;
  }
  VfsConfig config;
  config.dir = real;
  if (config.dir.size() > 1 && config.dir.back() == '/') config.dir.pop_back();
  const char* sock = getenv("LITEFS_SOCKET");
  config.socket_path = (sock && *sock) ? std::string(sock) : config.dir + "/" + wire::kSocketName;
  const char* wait = getenv("LITEFS_WAIT_FOR_CAPTURE");
  config.wait_for_capture = wait && std::string_view(wait) == "1";
  return config;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

const std::optional<VfsConfig>& GetVfsConfig() {
  static const std::optional<VfsConfig> config = Load();
  return config;
}

std::optional<std::string> ManagedDbName(const VfsConfig& config, std::string_view path) {
  if (path.size() <= config.dir.size() + 1) return std::nullopt;
  if (path.substr(0, config.dir.size()) != config.dir || path[config.dir.size()] != '/') {
    return std::nullopt;
  }
  std::string_view name = path.substr(config.dir.size() + 1);
  if (name.find('/') != std::string_view::npos || name == "." || name == "..") return std::nullopt;
  for (std::string_view suffix : {"-journal", "-wal", "-shm", "-pos", "-lock"}) {
    if (EndsWith(name, suffix)) return std::nullopt;
  }
  return std::string(name);
}

}  // namespace litefs::vfs
