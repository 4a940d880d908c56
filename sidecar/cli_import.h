// `litefs import -name DB [-url URL] PATH`: uploads the plain SQLite file
// PATH to a running node's POST /import, as LiteFS's command does. The node
// must be the primary (a replica refuses, naming the primary); the import
// becomes the database's next transaction and replicates. The file is
// streamed from disk, never read into memory whole.
#pragma once

#include <string>
#include <vector>

namespace litefs {

// Returns the process exit status (0 ok, 1 failure, 2 usage or help).
int ImportMain(const std::vector<std::string>& args);

}  // namespace litefs
