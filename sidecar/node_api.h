// The node API on `http.addr` (LiteFS's port 20202): POST /stream for
// replicas, GET /info, GET /events (events_api.h), GET /metrics
// (metrics.h), GET /export?name= (the database as a plain SQLite file, for
// backups), POST /import?name= (import.h), POST /promote and POST
// /handoff?nodeID= (lease changes, answered by the node through
// NodeApiOptions), and GET / (status_page.h), on the shared HTTP layer.
// Every response carries
// Litefs-Id (and Litefs-Cluster-Id once known), as LiteFS's do.
#pragma once

#include <uv.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "ltx/status.h"
#include "proxy/http/server.h"
#include "sidecar/events_api.h"
#include "sidecar/metrics.h"
#include "sidecar/store.h"
#include "sidecar/stream_server.h"

namespace litefs {

struct NodeApiOptions {
  bool candidate = false;
  std::string hostname;  // this node's name when it is the primary
  // Answers with an HTTP status and a message; unset routes answer 500.
  using Reply = std::function<void(int status, std::string message)>;
  std::function<void(Reply)> promote;
  std::function<void(const std::string& node_id, Reply)> handoff;
  const NodeMetrics* metrics = nullptr;
  // Replication lag in seconds as <dir>/.lag shows it (0 when unknown).
  std::function<double()> lag_seconds;
};

class NodeApi {
 public:
  NodeApi(uv_loop_t* loop, Store& store, NodeApiOptions options);
  ~NodeApi();

  Status Listen(std::string_view addr);
  int port() const { return server_->port(); }
  // Ends every stream (END frame), then closes the server.
  void Close(std::function<void()> done);

  size_t stream_count() const { return streams_.size(); }
  // Ends every stream (END frame): this node stopped being the primary.
  void EndStreams();
  size_t event_subscriber_count() const { return events_.subscriber_count(); }

 private:
  void Handle(std::shared_ptr<http::Exchange> ex);
  void HandleInfo(http::Exchange& ex);
  void HandleStatusPage(http::Exchange& ex);
  void HandleStream(std::shared_ptr<http::Exchange> ex);
  void HandleExport(std::shared_ptr<http::Exchange> ex);
  void HandleLeaseChange(std::shared_ptr<http::Exchange> ex);
  void HandleImport(std::shared_ptr<http::Exchange> ex);
  void HandleMetrics(http::Exchange& ex);

  uv_loop_t* loop_;
  Store& store_;
  NodeApiOptions options_;
  std::unique_ptr<http::Server> server_;
  std::map<StreamSession*, std::unique_ptr<StreamSession>> streams_;
  // Who each stream serves, for /info and the status page.
  struct ReplicaPeer {
    std::string node_id;  // the replica's Litefs-Id
    std::string address;
    std::string since;    // RFC 3339, UTC
  };
  std::map<StreamSession*, ReplicaPeer> stream_peers_;
  EventsApi events_;
  uint64_t next_import_ = 0;
};

}  // namespace litefs
