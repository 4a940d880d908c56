// A small etcd v3 client over etcd's HTTP/JSON gateway (no gRPC), driven by
// the libuv loop through CurlLoop: lease grant/keepalive/revoke, get, a
// compare-and-put transaction, and a watch stream on one key. Keys and values
// travel base64-encoded, 64-bit numbers as JSON strings (the gateway's
// protobuf mapping).
//
// Contract: loop thread only; every callback runs later from the loop,
// exactly once per call unless the client is destroyed first (then none
// runs). A transport error moves the client to the next endpoint for later
// calls; calls are not retried here (the lease loop decides when to retry).
// Errors name the operation and the endpoint:
// "etcd lease keepalive at http://127.0.0.1:2379: Couldn't connect to server".
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ltx/status.h"
#include "sidecar/curl_loop.h"

namespace litefs {

struct EtcdKeyValue {
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;  // 0: not attached to a lease
};

struct EtcdGetResult {
  std::optional<EtcdKeyValue> kv;  // nullopt: no such key
  int64_t revision = 0;            // the store's revision when read
};

struct EtcdWatchEvent {
  bool deleted = false;
  EtcdKeyValue kv;  // the new value (empty on delete; mod_revision set)
};

class EtcdClient {
 public:
  // `endpoints`: http:// or https://host:port URLs (checked by CheckEtcdEndpoint, config.h).
  // `tls` applies to https endpoints (CA, client certificate and key).
  // With a user name, every request carries a token from
  // /v3/auth/authenticate, fetched again when etcd says it expired.
  struct Credentials {
    std::string user, password;
  };
  EtcdClient(http::CurlLoop& curl, std::vector<std::string> endpoints, long request_timeout_ms,
             http::ClientRequest::Tls tls = {}, Credentials credentials = {});
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // The lease ID and the TTL etcd granted (it may round up to its minimum).
  struct Grant { int64_t id = 0; int64_t ttl_s = 0; };
  void GrantLease(int64_t ttl_s, std::function<void(Result<Grant>)> done);
  // The remaining TTL after the renewal; 0 when the lease no longer exists.
  void KeepAlive(int64_t lease_id, std::function<void(Result<int64_t>)> done);
  void Revoke(int64_t lease_id, std::function<void(Status)> done);
  void Get(std::string_view key, std::function<void(Result<EtcdGetResult>)> done);

  // Puts key=value (attached to `lease`, 0 = none) if the key's mod revision
  // is `expected_mod_revision`, or if the key does not exist when that is 0.
  // Answers whether it succeeded and the store revision after the txn (the
  // new mod revision of the key on success).
  struct TxnResult { bool succeeded = false; int64_t revision = 0; };
  void PutIf(std::string_view key, std::string_view value, int64_t lease,
             int64_t expected_mod_revision, std::function<void(Result<TxnResult>)> done);

  // Streams changes of `key` from `from_revision` on; `on_end` runs once when
  // the stream stops (error, or etcd cancelled it), not after CancelWatch.
  // `idle_timeout_ms` (0 = none) ends a watch that stays silent that long.
  // A watch is a long-lived response; over a silently broken connection it
  // would never end, hence the idle timeout.
  uint64_t Watch(std::string_view key, int64_t from_revision, long idle_timeout_ms,
                 std::function<void(const EtcdWatchEvent&)> on_event,
                 std::function<void(Status)> on_end);
  void CancelWatch(uint64_t watch_id);

  const std::string& endpoint() const { return endpoints_[current_]; }

 private:
  // POSTs `body` to `path`; `done` gets the parsed JSON response or an error.
  void Call(const std::string& what, const std::string& path, std::string body,
            std::function<void(Result<std::string>)> done, bool may_reauthenticate = true);
  // Gets a token for the credentials (`token_`); `done` runs with the outcome.
  void Authenticate(std::function<void(Status)> done);
  void Failed(size_t endpoint_index);

  http::CurlLoop& curl_;
  std::vector<std::string> endpoints_;
  http::ClientRequest::Tls tls_;
  Credentials credentials_;
  std::string token_;  // empty: none yet, or etcd said it expired
  size_t current_ = 0;
  long request_timeout_ms_;
  std::set<uint64_t> transfers_;  // in flight, cancelled on destruction
};

}  // namespace litefs
