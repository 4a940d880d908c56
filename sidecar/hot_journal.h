// Rolling back a hot journal left by a crashed writer (an app on the
// primary, or this sidecar mid-apply on a replica), by letting SQLite itself
// do it: open the database with the plain "unix" VFS and start a read,
// which is when SQLite replays a hot journal. The caller must not hold any
// lock on the database while calling this.
#pragma once

#include <string>

#include "ltx/status.h"

namespace litefs {

// Returns ok if the database has no hot journal afterwards.
Status RollBackHotJournal(const std::string& db_path);

}  // namespace litefs
