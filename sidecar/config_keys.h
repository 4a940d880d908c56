// Every key litefs.yml may hold: the one list the parser checks keys
// against, and that docs/configuration.md is tested against, so the two
// cannot drift apart. LiteFS keys litefs-vfs has no use for are accepted and
// ignored with a warning saying why, so an existing LiteFS config works.
#pragma once

#include <string_view>
#include <vector>

namespace litefs {

struct ConfigKey {
  std::string_view name;        // dotted: "lease.etcd.ttl"; list items as "exec[].cmd"
  std::string_view ignored_why;  // non-empty: accepted from LiteFS, ignored (any value)
};

const std::vector<ConfigKey>& ConfigKeys();

// The names directly under `section` ("" for the top level, "lease",
// "exec[]"): {"type", "candidate", ..., "etcd"} for "lease".
std::vector<std::string_view> ConfigKeysUnder(std::string_view section);

// The entry for a full dotted name, or nullptr.
const ConfigKey* FindConfigKey(std::string_view name);

}  // namespace litefs
