// `litefs promote [-url URL] [-timeout DURATION]`: asks a candidate node
// (default http://localhost:20202) to take the lease from the current
// primary (POST /promote, which requests a handoff), then waits until that
// node's /info says it is the primary. etcd lease only; a static lease
// answers 409.
#pragma once

#include <string>
#include <vector>

namespace litefs {

// Returns the process exit status (0 primary now, 1 failure, 2 usage).
int PromoteMain(const std::vector<std::string>& args);

}  // namespace litefs
