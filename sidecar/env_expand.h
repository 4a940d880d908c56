// Environment expansion of raw config text, as LiteFS does before YAML parsing
// (Go's os.Expand plus LiteFS's comparison forms). Runs on the whole text,
// comments included; there is no escaping of '$'.
//   $NAME, ${NAME}            -> the variable's value, "" when unset
//   ${NAME == 'text'}, ${NAME != "text"}  -> "true" / "false"
//   ${A == B}, ${A != B}      -> compares two variables ("true" / "false")
//   whitespace inside the braces is trimmed; "${}" and an unterminated "${"
//   are dropped; a '$' not followed by a name is kept.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace litefs {

// Looks a variable up; returns "" when unset.
using EnvLookup = std::function<std::string(const std::string& name)>;

// Expands `text` using `lookup` (defaults to getenv).
std::string ExpandEnv(std::string_view text, const EnvLookup& lookup = {});

// Sets HOSTNAME to the OS hostname when it is unset or empty, so that
// ${HOSTNAME} always expands (LiteFS does the same before loading its config).
void EnsureHostnameEnv();

}  // namespace litefs
