// The node's status page (GET / on the node API): one self-contained HTML
// page, no external assets, that shows this node's role, the primary, every
// database with its position and lag, and the connected replicas, refreshing
// itself from GET /info every second.
#pragma once

#include <string_view>

namespace litefs {

std::string_view StatusPageHtml();

}  // namespace litefs
