// See cli_db_flags.h.
#include "sidecar/cli_db_flags.h"

#include <cstdio>

namespace litefs {

DbCommandParse ParseDbCommandFlags(const std::vector<std::string>& args, const char* help, const char* usage) {
  DbCommandFlags flags;
  for (size_t i = 0; i < args.size(); i++) {
    std::string a = args[i].rfind("--", 0) == 0 ? args[i].substr(1) : args[i];
    if (a == "-h" || a == "-help") {
      fputs(help, stdout);
      return {std::nullopt, 2};  // as LiteFS's flag package does for help
    } else if ((a == "-name" || a == "-url") && i + 1 < args.size()) {
      (a == "-name" ? flags.name : flags.url) = args[++i];
    } else if (a.rfind("-name=", 0) == 0) {
      flags.name = a.substr(6);
    } else if (a.rfind("-url=", 0) == 0) {
      flags.url = a.substr(5);
    } else if (!a.empty() && a[0] != '-' && flags.path.empty()) {
      flags.path = args[i];
    } else {
      fputs(usage, stderr);
      return {std::nullopt, 2};
    }
  }
  if (flags.name.empty() || flags.path.empty()) {
    fputs(usage, stderr);
    return {std::nullopt, 2};
  }
  return {std::move(flags), 0};
}

}  // namespace litefs
