// The flags `litefs export` and `litefs import` share, parsed as LiteFS's Go
// flag package does: -name DB, -url URL (also --x and -x=value), one PATH.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace litefs {

struct DbCommandFlags {
  std::string name;
  std::string url = "http://localhost:20202";
  std::string path;
};

// The flags, or the exit status to return at once: 2 after printing `help`
// to stdout (-h) or `usage` to stderr (bad or missing arguments), as LiteFS.
struct DbCommandParse {
  std::optional<DbCommandFlags> flags;
  int exit_status = 0;
};
DbCommandParse ParseDbCommandFlags(const std::vector<std::string>& args, const char* help, const char* usage);

}  // namespace litefs
