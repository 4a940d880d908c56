// Shell-style word splitting for `exec` commands, as LiteFS does it: quotes
// ('...' literal, "..." with backslash escapes of " \ $ `) and backslashes are
// honoured; there is no shell, so no pipes, redirections or expansion (wrap
// the command in `sh -c '...'` for those).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ltx/status.h"

namespace litefs {

// Errors on an unterminated quote or a trailing backslash.
Result<std::vector<std::string>> SplitShellWords(std::string_view command);

}  // namespace litefs
