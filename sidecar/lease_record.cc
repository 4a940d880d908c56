// See lease_record.h.
#include "sidecar/lease_record.h"

#include <nlohmann/json.hpp>

#include "ltx/pos.h"

namespace litefs {

std::string EncodeLeaseRecord(const LeaseRecord& r) {
  nlohmann::ordered_json j;
  switch (r.kind) {
    case LeaseRecord::Kind::kReleased: {
      if (r.positions.empty()) return "";
      j["released"] = true;
      nlohmann::ordered_json pos = nlohmann::ordered_json::object();
      for (const auto& [db, txid] : r.positions) pos[db] = ltx::FormatTXID(txid);
      j["positions"] = std::move(pos);
      break;
    }
    case LeaseRecord::Kind::kHeld:
      j["hostname"] = r.hostname;
      j["advertise-url"] = r.advertise_url;
      j["proxy-url"] = r.proxy_url;
      j["node-id"] = r.node_id;
      break;
    case LeaseRecord::Kind::kHandoff: {
      j["handoff-to"] = r.handoff_to;
      nlohmann::ordered_json pos = nlohmann::ordered_json::object();
      for (const auto& [db, txid] : r.positions) pos[db] = ltx::FormatTXID(txid);
      j["positions"] = std::move(pos);
      break;
    }
  }
  return j.dump();
}

Result<LeaseRecord> DecodeLeaseRecord(std::string_view value) {
  LeaseRecord r;
  if (value.empty()) return r;
  nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::Error("lease record is not a JSON object: " + std::string(value));
  auto text = [&j](const char* name) -> std::string {
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : "";
  };
  const bool released = j.contains("released");
  if (released || j.contains("handoff-to")) {
    r.kind = released ? LeaseRecord::Kind::kReleased : LeaseRecord::Kind::kHandoff;
    r.handoff_to = text("handoff-to");
    if (!released && r.handoff_to.empty()) return Status::Error("lease record: empty handoff-to");
    auto pos = j.find("positions");
    if (pos != j.end()) {
      if (!pos->is_object()) return Status::Error("lease record: positions is not an object");
      for (auto it = pos->begin(); it != pos->end(); ++it) {
        if (!it->is_string()) return Status::Error("lease record: bad position for " + it.key());
        std::optional<uint64_t> txid = ltx::ParseTXID(it->get<std::string>());
        if (!txid) return Status::Error("lease record: bad position for " + it.key());
        r.positions[it.key()] = *txid;
      }
    }
    return r;
  }
  r.kind = LeaseRecord::Kind::kHeld;
  r.hostname = text("hostname");
  r.advertise_url = text("advertise-url");
  r.proxy_url = text("proxy-url");
  r.node_id = text("node-id");
  if (r.advertise_url.empty()) {
    return Status::Error("lease record has no advertise-url: " + std::string(value));
  }
  return r;
}

}  // namespace litefs
