// See etcd_client.h. Gateway paths are etcd 3.4's /v3/... routes.
#include "sidecar/etcd_client.h"

#include <memory>

#include <nlohmann/json.hpp>

#include "sidecar/base64.h"
#include "sidecar/log.h"

namespace litefs {
namespace {

using json = nlohmann::json;

// The gateway writes int64 fields as strings and leaves out zero values.
int64_t Int(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return 0;
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (const std::exception&) {
      return 0;
    }
  }
  return it->is_number_integer() ? it->get<int64_t>() : 0;
}

std::string Str(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

Result<EtcdKeyValue> DecodeKeyValue(const json& kv) {
  EtcdKeyValue out;
  std::optional<std::string> value = Base64Decode(Str(kv, "value"));
  if (!value) return Status::Error("etcd sent a value that is not base64");
  out.value = std::move(*value);
  out.create_revision = Int(kv, "create_revision");
  out.mod_revision = Int(kv, "mod_revision");
  out.lease = Int(kv, "lease");
  return out;
}

Result<json> ParseJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Error("etcd sent a response that is not a JSON object: " + text.substr(0, 200));
  }
  return j;
}

}  // namespace

EtcdClient::EtcdClient(http::CurlLoop& curl, std::vector<std::string> endpoints,
                       long request_timeout_ms, http::ClientRequest::Tls tls, Credentials credentials)
    : curl_(curl), endpoints_(std::move(endpoints)), tls_(std::move(tls)),
      credentials_(std::move(credentials)), request_timeout_ms_(request_timeout_ms) {
  for (std::string& e : endpoints_) {
    while (!e.empty() && e.back() == '/') e.pop_back();
  }
}

EtcdClient::~EtcdClient() {
  for (uint64_t id : transfers_) curl_.Cancel(id);
}

void EtcdClient::Failed(size_t index) {
  // Later calls try the next endpoint, unless another failure moved on already.
  if (index == current_) current_ = (current_ + 1) % endpoints_.size();
}

void EtcdClient::Authenticate(std::function<void(Status)> done) {
  json body = {{"name", credentials_.user}, {"password", credentials_.password}};
  Call("authenticate", "/v3/auth/authenticate", body.dump(),
       [this, done = std::move(done)](Result<std::string> r) {
         if (!r.ok()) return done(r.status());
         Result<json> j = ParseJson(*r);
         if (!j.ok()) return done(j.status());
         token_ = Str(*j, "token");
         if (token_.empty()) return done(Status::Error("etcd authenticate: no token in the answer"));
         done(Status());
       },
       /*may_reauthenticate=*/false);
}

void EtcdClient::Call(const std::string& what, const std::string& path, std::string body,
                      std::function<void(Result<std::string>)> done, bool may_reauthenticate) {
  if (may_reauthenticate && !credentials_.user.empty() && token_.empty()) {
    return Authenticate([this, what, path, body = std::move(body), done = std::move(done)](Status st) mutable {
      if (!st.ok()) return done(st);
      Call(what, path, std::move(body), std::move(done), /*may_reauthenticate=*/false);
    });
  }
  size_t index = current_;
  http::ClientRequest req;
  req.method = "POST";
  req.url = endpoints_[index] + path;
  req.tls = tls_;
  req.headers = {{"Content-Type", "application/json"}};
  if (!token_.empty()) req.headers.push_back({"Authorization", token_});
  // Kept for one retry with a new token when etcd says this one expired.
  std::string resend = may_reauthenticate && !credentials_.user.empty() ? body : std::string();
  req.body = std::move(body);
  req.connect_timeout_ms = request_timeout_ms_;
  req.total_timeout_ms = request_timeout_ms_;
  auto response = std::make_shared<std::string>();
  auto id = std::make_shared<uint64_t>(0);
  req.on_data = [response](std::span<const uint8_t> data) {
    response->append(reinterpret_cast<const char*>(data.data()), data.size());
    return http::DataAction::kContinue;
  };
  req.on_done = [this, what, path, index, response, id, may_reauthenticate, resend = std::move(resend),
                 done = std::move(done)](Status st, int status) mutable {
    transfers_.erase(*id);
    const std::string where = "etcd " + what + " at " + endpoints_[index];
    if (!st.ok()) {
      Failed(index);
      return done(Status::Error(where + ": " + st.message()));
    }
    if (status != 200) {
      Result<json> j = ParseJson(*response);
      std::string message = j.ok() ? Str(*j, "message") : *response;
      if (message.empty() && j.ok()) message = Str(*j, "error");
      if (may_reauthenticate && !credentials_.user.empty() &&
          message.find("invalid auth token") != std::string::npos) {
        log::Debug("etcd auth token expired; authenticating again", {{"endpoint", endpoints_[index]}});
        token_.clear();  // expired (etcd's --auth-token-ttl): authenticate again, once
        return Call(what, path, std::move(resend), std::move(done), /*may_reauthenticate=*/true);
      }
      if (status >= 500) Failed(index);
      return done(Status::Error(where + ": HTTP " + std::to_string(status) + ": " + message));
    }
    done(std::move(*response));
  };
  *id = curl_.Start(std::move(req));
  transfers_.insert(*id);
}

void EtcdClient::GrantLease(int64_t ttl_s, std::function<void(Result<Grant>)> done) {
  json body = {{"TTL", std::to_string(ttl_s)}};
  Call("lease grant", "/v3/lease/grant", body.dump(), [done = std::move(done)](Result<std::string> r) {
    if (!r.ok()) return done(r.status());
    Result<json> j = ParseJson(*r);
    if (!j.ok()) return done(j.status());
    if (!Str(*j, "error").empty()) return done(Status::Error("etcd lease grant: " + Str(*j, "error")));
    Grant g{Int(*j, "ID"), Int(*j, "TTL")};
    if (g.id == 0) return done(Status::Error("etcd lease grant: no lease ID in the answer"));
    done(g);
  });
}

void EtcdClient::KeepAlive(int64_t lease_id, std::function<void(Result<int64_t>)> done) {
  json body = {{"ID", std::to_string(lease_id)}};
  // The gateway answers one keepalive per request: {"result":{"ID":..,"TTL":..}};
  // a lease that expired comes back without a TTL.
  Call("lease keepalive", "/v3/lease/keepalive", body.dump(),
       [done = std::move(done)](Result<std::string> r) {
         if (!r.ok()) return done(r.status());
         std::string text = *r;
         size_t nl = text.find('\n');
         if (nl != std::string::npos) text.resize(nl);
         Result<json> j = ParseJson(text);
         if (!j.ok()) return done(j.status());
         auto result = j->find("result");
         if (result == j->end() || !result->is_object()) {
           return done(Status::Error("etcd lease keepalive: " + text.substr(0, 200)));
         }
         done(Int(*result, "TTL"));
       });
}

void EtcdClient::Revoke(int64_t lease_id, std::function<void(Status)> done) {
  json body = {{"ID", std::to_string(lease_id)}};
  Call("lease revoke", "/v3/lease/revoke", body.dump(), [done = std::move(done)](Result<std::string> r) {
    done(r.ok() ? Status() : r.status());
  });
}

void EtcdClient::Get(std::string_view key, std::function<void(Result<EtcdGetResult>)> done) {
  json body = {{"key", Base64Encode(key)}};
  Call("get", "/v3/kv/range", body.dump(), [done = std::move(done)](Result<std::string> r) {
    if (!r.ok()) return done(r.status());
    Result<json> j = ParseJson(*r);
    if (!j.ok()) return done(j.status());
    EtcdGetResult out;
    auto header = j->find("header");
    if (header != j->end() && header->is_object()) out.revision = Int(*header, "revision");
    auto kvs = j->find("kvs");
    if (kvs != j->end() && kvs->is_array() && !kvs->empty()) {
      Result<EtcdKeyValue> kv = DecodeKeyValue((*kvs)[0]);
      if (!kv.ok()) return done(kv.status());
      out.kv = std::move(*kv);
    }
    done(out);
  });
}

void EtcdClient::PutIf(std::string_view key, std::string_view value, int64_t lease,
                       int64_t expected_mod_revision, std::function<void(Result<TxnResult>)> done) {
  const std::string k = Base64Encode(key);
  json compare = expected_mod_revision == 0
      ? json{{"target", "CREATE"}, {"key", k}, {"result", "EQUAL"}, {"create_revision", "0"}}
      : json{{"target", "MOD"}, {"key", k}, {"result", "EQUAL"},
             {"mod_revision", std::to_string(expected_mod_revision)}};
  json put = {{"key", k}, {"value", Base64Encode(value)}};
  if (lease != 0) put["lease"] = std::to_string(lease);
  json body = {{"compare", json::array({compare})},
               {"success", json::array({json{{"request_put", put}}})}};
  Call("txn", "/v3/kv/txn", body.dump(), [done = std::move(done)](Result<std::string> r) {
    if (!r.ok()) return done(r.status());
    Result<json> j = ParseJson(*r);
    if (!j.ok()) return done(j.status());
    TxnResult out;
    auto ok = j->find("succeeded");
    out.succeeded = ok != j->end() && ok->is_boolean() && ok->get<bool>();
    auto header = j->find("header");
    if (header != j->end() && header->is_object()) out.revision = Int(*header, "revision");
    done(out);
  });
}

uint64_t EtcdClient::Watch(std::string_view key, int64_t from_revision, long idle_timeout_ms,
                           std::function<void(const EtcdWatchEvent&)> on_event,
                           std::function<void(Status)> on_end) {
  struct State {
    std::string buffer;
    uint64_t id = 0;
    bool ended = false;
    std::function<void(const EtcdWatchEvent&)> on_event;
    std::function<void(Status)> on_end;
  };
  auto state = std::make_shared<State>();
  state->on_event = std::move(on_event);
  state->on_end = std::move(on_end);
  size_t index = current_;
  json create = {{"key", Base64Encode(key)}};
  if (from_revision > 0) create["start_revision"] = std::to_string(from_revision);
  json body = {{"create_request", create}};

  http::ClientRequest req;
  req.method = "POST";
  req.url = endpoints_[index] + "/v3/watch";
  req.tls = tls_;
  req.headers = {{"Content-Type", "application/json"}};
  if (!token_.empty()) req.headers.push_back({"Authorization", token_});
  req.body = body.dump();
  req.connect_timeout_ms = request_timeout_ms_;
  req.idle_timeout_ms = idle_timeout_ms;
  // Ends the stream (as an error) when etcd cancels the watch; the owner
  // re-reads the key and watches again.
  auto end = [this, state](Status st) {
    if (state->ended) return;
    state->ended = true;
    transfers_.erase(state->id);
    curl_.Cancel(state->id);
    state->on_end(std::move(st));
  };
  req.on_data = [state, end](std::span<const uint8_t> data) {
    state->buffer.append(reinterpret_cast<const char*>(data.data()), data.size());
    size_t nl;
    // Each message of the stream is one JSON object on its own line.
    while (!state->ended && (nl = state->buffer.find('\n')) != std::string::npos) {
      std::string line = state->buffer.substr(0, nl);
      state->buffer.erase(0, nl + 1);
      if (line.empty()) continue;
      Result<json> j = ParseJson(line);
      if (!j.ok()) {
        end(j.status());
        break;
      }
      auto result = j->find("result");
      if (result == j->end() || !result->is_object()) {
        end(Status::Error("etcd watch: " + line.substr(0, 200)));
        break;
      }
      if (result->value("canceled", false)) {
        end(Status::Error("etcd cancelled the watch: " + Str(*result, "cancel_reason") +
                          (Int(*result, "compact_revision") ? " (compacted)" : "")));
        break;
      }
      auto events = result->find("events");
      if (events == result->end() || !events->is_array()) continue;
      for (const json& e : *events) {
        EtcdWatchEvent ev;
        ev.deleted = Str(e, "type") == "DELETE";
        auto kv = e.find("kv");
        if (kv != e.end() && kv->is_object()) {
          Result<EtcdKeyValue> decoded = DecodeKeyValue(*kv);
          if (!decoded.ok()) {
            end(decoded.status());
            break;
          }
          ev.kv = std::move(*decoded);
        }
        state->on_event(ev);
        if (state->ended) break;
      }
    }
    return http::DataAction::kContinue;
  };
  req.on_done = [this, state, index](Status st, int status) {
    if (state->ended) return;
    state->ended = true;
    transfers_.erase(state->id);
    const std::string where = "etcd watch at " + endpoints_[index];
    if (!st.ok()) {
      Failed(index);
      return state->on_end(Status::Error(where + ": " + st.message()));
    }
    state->on_end(Status::Error(where + ": the stream ended (HTTP " + std::to_string(status) + ")"));
  };
  state->id = curl_.Start(std::move(req));
  transfers_.insert(state->id);
  return state->id;
}

void EtcdClient::CancelWatch(uint64_t watch_id) {
  if (transfers_.erase(watch_id) != 0) curl_.Cancel(watch_id);
}

}  // namespace litefs
