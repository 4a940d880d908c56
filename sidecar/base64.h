// Standard base64 (RFC 4648, with padding): etcd's JSON gateway carries keys
// and values as base64 strings.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace litefs {

std::string Base64Encode(std::string_view bytes);
// nullopt when `text` is not valid padded base64.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace litefs
