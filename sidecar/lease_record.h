// The value of the lease key in etcd. While a node holds the lease it is
// LiteFS's primary record, JSON {"hostname","advertise-url"} plus our
// "proxy-url" and "node-id"; the key is attached to the holder's etcd lease,
// so it vanishes when that lease expires. A primary that steps down cleanly
// leaves the key in place (no lease) with an empty value ("released": take
// it at once) or with {"handoff-to": node, "positions": {db: txid}} (only
// that node may take it, once it has replicated those positions).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "ltx/status.h"

namespace litefs {

struct LeaseRecord {
  enum class Kind { kHeld, kReleased, kHandoff };
  Kind kind = Kind::kReleased;
  // kHeld: who holds it.
  std::string hostname;
  std::string advertise_url;
  std::string proxy_url;
  std::string node_id;
  // kHandoff: the chosen successor. kReleased and kHandoff: what a
  // successor must have applied first (empty: nothing to wait for).
  std::string handoff_to;
  std::map<std::string, uint64_t> positions;
};

std::string EncodeLeaseRecord(const LeaseRecord& record);
// An empty value is a released lease; anything that is not one of the JSON
// shapes above is an error naming what is wrong.
Result<LeaseRecord> DecodeLeaseRecord(std::string_view value);

}  // namespace litefs
