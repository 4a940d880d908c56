// Page-number rules of an LTX page block, shared by the encoder and the
// decoder so that both accept and refuse the same files with the same words:
// page numbers are 1..commit, never the lock page, strictly ascending, and a
// snapshot holds every page 1..commit except the lock page.
#pragma once

#include <cstdint>

#include "ltx/header.h"
#include "ltx/status.h"

namespace litefs::ltx {

// May page `pgno` follow page `prev` (0 = none yet) in a file with header `h`?
Status CheckPageOrder(const Header& h, uint32_t prev, uint32_t pgno);

// Called at the end of the page block, `last` being the last page stored
// (0 = none): a snapshot must have reached its commit size.
Status CheckPageBlockComplete(const Header& h, uint32_t last);

}  // namespace litefs::ltx
