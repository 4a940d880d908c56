// `litefs export -name DB [-url URL] PATH`: downloads a database from a
// running node's /export into PATH, as LiteFS's command does: any
// PATH-journal, PATH-wal and PATH-shm are removed first (they would not
// belong to the new file), the bytes go to PATH.tmp, which is fsynced and
// renamed over PATH, and the directory is fsynced. Works against replicas.
#pragma once

#include <string>
#include <vector>

namespace litefs {

// Returns the process exit status (0 ok, 1 failure, 2 usage).
int ExportMain(const std::vector<std::string>& args);

}  // namespace litefs
