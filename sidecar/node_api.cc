// See node_api.h.
#include "sidecar/node_api.h"

#include <unistd.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "sidecar/file_pump.h"
#include "sidecar/import.h"
#include "sidecar/clock.h"
#include "sidecar/events_api.h"
#include "sidecar/log.h"
#include "sidecar/status_page.h"
#include "sidecar/stream_protocol.h"
#include "sidecar/upload_file.h"

namespace litefs {
namespace {

constexpr size_t kMaxPosMapBytes = 64 << 20;

void PlainError(http::Exchange& ex, int status, const std::string& message) {
  ex.Respond(status, {{"Content-Type", "text/plain; charset=utf-8"}}, message + "\n");
}

}  // namespace

NodeApi::NodeApi(uv_loop_t* loop, Store& store, NodeApiOptions options)
    : loop_(loop), store_(store), options_(std::move(options)), events_(store) {
  http::ServerOptions opts;
  opts.add_headers = [this](std::vector<http::Header>& headers) {
    headers.push_back({"Litefs-Id", FormatNodeId(store_.node_id())});
    if (!store_.cluster_id().empty()) headers.push_back({"Litefs-Cluster-Id", store_.cluster_id()});
    // Replicas forward writes to the primary's proxy: tell them where it is.
    if (store_.is_primary() && !store_.proxy_url().empty()) {
      headers.push_back({"Litefs-Proxy-Url", store_.proxy_url()});
    }
  };
  server_ = std::make_unique<http::Server>(
      loop_, std::move(opts), [this](std::shared_ptr<http::Exchange> ex) { Handle(std::move(ex)); });
  RemoveLeftoverUploads(store_.env().data_dir);
}

NodeApi::~NodeApi() = default;

Status NodeApi::Listen(std::string_view addr) { return server_->Listen(addr); }

void NodeApi::Close(std::function<void()> done) {
  EndStreams();
  events_.Close();
  server_->Close(std::move(done));
}

void NodeApi::EndStreams() {
  std::vector<StreamSession*> sessions;
  for (auto& [raw, session] : streams_) sessions.push_back(raw);
  for (StreamSession* s : sessions) {
    if (streams_.count(s) != 0) s->Shutdown();
  }
}

void NodeApi::Handle(std::shared_ptr<http::Exchange> ex) {
  const http::Request& req = ex->request();
  std::string_view path = req.path();
  if (path == "/") {
    if (req.method != "GET" && req.method != "HEAD") return PlainError(*ex, 405, "method not allowed");
    return HandleStatusPage(*ex);
  }
  if (path == "/info") {
    if (req.method != "GET") return PlainError(*ex, 405, "method not allowed");
    return HandleInfo(*ex);
  }
  if (path == "/stream") {
    if (req.method != "POST") return PlainError(*ex, 405, "method not allowed");
    return HandleStream(std::move(ex));
  }
  if (path == "/export") {
    if (req.method != "GET") return PlainError(*ex, 405, "method not allowed");
    return HandleExport(std::move(ex));
  }
  if (path == "/promote" || path == "/handoff") {
    if (req.method != "POST") return PlainError(*ex, 405, "method not allowed");
    return HandleLeaseChange(std::move(ex));
  }
  if (path == "/import") {
    if (req.method != "POST") return PlainError(*ex, 405, "method not allowed");
    return HandleImport(std::move(ex));
  }
  if (path == "/events") {
    if (req.method != "GET") return PlainError(*ex, 405, "method not allowed");
    return events_.Handle(std::move(ex));
  }
  if (path == "/metrics") return HandleMetrics(*ex);  // any method, as LiteFS
  PlainError(*ex, 404, "404 page not found");
}

void NodeApi::HandleLeaseChange(std::shared_ptr<http::Exchange> ex) {
  NodeApiOptions::Reply reply = [ex](int status, std::string message) {
    if (!ex->closed()) PlainError(*ex, status, message);
  };
  if (ex->request().path() == "/promote") {
    if (!options_.promote) return reply(500, "promotion is not supported");
    return options_.promote(std::move(reply));
  }
  std::optional<std::string> node_id = ex->request().QueryParam("nodeID");
  if (!node_id || node_id->empty()) return reply(400, "nodeID required");
  if (!options_.handoff) return reply(500, "handoff is not supported");
  options_.handoff(*node_id, std::move(reply));
}

void NodeApi::HandleInfo(http::Exchange& ex) {
  nlohmann::ordered_json j;
  if (!store_.cluster_id().empty()) j["clusterID"] = store_.cluster_id();
  j["isPrimary"] = store_.is_primary();
  j["candidate"] = options_.candidate;
  j["path"] = store_.env().data_dir;
  std::string primary_host;
  if (store_.is_primary()) {
    primary_host = options_.hostname;
  } else if (store_.primary()) {
    primary_host = store_.primary()->hostname;
  }
  j["primary"] = {{"hostname", primary_host}};
  std::string primary_proxy = store_.is_primary() ? store_.proxy_url()
                              : store_.primary()  ? store_.primary()->proxy_url
                                                  : "";
  if (!primary_proxy.empty()) j["primary"]["proxyURL"] = primary_proxy;
  j["nodeID"] = FormatNodeId(store_.node_id());
  nlohmann::ordered_json dbs = nlohmann::ordered_json::object();
  for (Database* db : store_.All()) {
    ltx::Pos pos = db->pos();
    dbs[db->name()] = {{"txid", ltx::FormatTXID(pos.txid)},
                       {"checksum", ltx::FormatChecksum(pos.checksum)}};
  }
  j["dbs"] = std::move(dbs);
  // Ours, for the status page: lag as .lag shows it, and the replicas served.
  double lag = store_.is_primary() || !options_.lag_seconds ? 0.0 : options_.lag_seconds();
  j["lagMs"] = int64_t(lag * 1000.0 + 0.5);
  nlohmann::ordered_json replicas = nlohmann::ordered_json::array();
  for (const auto& [session, peer] : stream_peers_) {
    replicas.push_back({{"nodeID", peer.node_id}, {"address", peer.address}, {"since", peer.since}});
  }
  j["replicas"] = std::move(replicas);
  ex.Respond(200, {{"Content-Type", "application/json"}}, j.dump(2) + "\n");
}

void NodeApi::HandleStatusPage(http::Exchange& ex) {
  ex.Respond(200, {{"Content-Type", "text/html; charset=utf-8"}, {"Cache-Control", "no-store"}},
             std::string(StatusPageHtml()));
}

void NodeApi::HandleExport(std::shared_ptr<http::Exchange> ex) {
  std::optional<std::string> name = ex->request().QueryParam("name");
  if (!name || name->empty()) return PlainError(*ex, 400, "name required");
  Database* db = store_.Find(*name);
  if (!db) return PlainError(*ex, 404, "database not found");
  std::string tmp = db->log().NewTempPath();
  db->Export(tmp, [this, ex, tmp](Result<uint64_t> size) {
    if (!size.ok()) {
      unlink(tmp.c_str());
      return PlainError(*ex, 500, size.message());
    }
    if (ex->closed()) {
      unlink(tmp.c_str());
      return;
    }
    ex->StartResponse(200, {{"Content-Type", "application/octet-stream"},
                            {"Content-Length", std::to_string(*size)}});
    Result<FilePump*> pump = FilePump::Start(
        loop_, tmp, /*remove_after=*/true,
        [ex](std::span<const uint8_t> piece, std::function<void()> next) {
          (void)ex->WriteBody(std::string(reinterpret_cast<const char*>(piece.data()), piece.size()),
                              [ex, next](Status st) {
                                if (st.ok() && !ex->closed()) next();
                              });
        },
        [ex](Status st) {
          if (!st.ok()) log::Error("export failed", {{"error", st.message()}});
          ex->EndResponse();
        });
    if (!pump.ok()) {
      unlink(tmp.c_str());
      ex->EndResponse();
      return;
    }
    // A client that leaves stops the pump.
    FilePump* p = *pump;
    ex->OnClose([p] { p->Cancel(); });
  });
}

void NodeApi::HandleMetrics(http::Exchange& ex) {
  NodeGauges gauges;
  gauges.stream_count = streams_.size();
  gauges.event_subscribers = events_.subscriber_count();
  gauges.lag_seconds = options_.lag_seconds ? options_.lag_seconds() : 0;
  ex.Respond(200, {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}},
             RenderMetrics(store_, options_.metrics, gauges));
}

// POST /import?name=DB: the body (a plain SQLite file) goes to a temporary
// file first, checked as it arrives; only a valid file reaches the database.
void NodeApi::HandleImport(std::shared_ptr<http::Exchange> ex) {
  std::optional<std::string> name = ex->request().QueryParam("name");
  if (!name || name->empty()) return PlainError(*ex, 400, "name required");
  Status valid = ValidateDbName(*name);
  if (!valid.ok()) return PlainError(*ex, 400, valid.message());
  if (!store_.is_primary()) {
    std::string primary = store_.primary() ? store_.primary()->hostname + " (" +
                                                 store_.primary()->advertise_url + ")"
                                           : "unknown";
    return PlainError(*ex, 503, "lease expired: this node is a replica; import on the primary, " +
                                    primary);
  }
  std::string tmp = store_.env().data_dir + "/" + kUploadPrefix + std::to_string(getpid()) + "-" +
                    std::to_string(++next_import_) + kUploadSuffix;
  std::string db_name = *name;
  UploadToFile(
      loop_, ex, tmp, UploadLimits{},
      [](std::span<const uint8_t> head) { return ValidateImportHeader(head); },
      [this, ex, tmp, db_name](Result<uint64_t> size) {
        auto fail = [ex, tmp](int status, const std::string& message) {
          unlink(tmp.c_str());
          log::Warn("import refused", {{"error", message}});
          PlainError(*ex, status, message);
        };
        if (!size.ok()) return fail(400, size.message());
        // Checked in full before the database is created or touched.
        Result<ImportFile> file = ValidateImportFile(tmp);
        if (!file.ok()) return fail(400, file.message());
        if (!store_.is_primary()) return fail(503, "lease expired");
        Result<Database*> db = store_.GetOrCreate(db_name);
        if (!db.ok()) return fail(400, db.message());
        Database* d = *db;
        d->WhenSettled([d, ex, tmp, fail] {
          d->Import(tmp, [ex, tmp, fail](Result<ltx::Pos> pos) {
            if (!pos.ok()) {
              bool busy = pos.message().rfind("database busy", 0) == 0;
              return fail(busy ? 503 : 500, pos.message());
            }
            unlink(tmp.c_str());
            ex->Respond(200, {}, "");
          });
        });
      });
}

void NodeApi::HandleStream(std::shared_ptr<http::Exchange> ex) {
  const std::string* caller = ex->request().Header("Litefs-Id");
  if (caller && *caller == FormatNodeId(store_.node_id())) {
    return PlainError(*ex, 400, "cannot connect to self");
  }
  if (!store_.is_primary()) return PlainError(*ex, 503, "lease expired");
  http::Exchange* raw = ex.get();
  Status st = raw->ReadFullBody(kMaxPosMapBytes, [this, ex](Status st, std::string body) {
    if (!st.ok()) return;  // the server already answered (413) or the client left
    Result<stream::PosMap> positions =
        stream::DecodePosMap({reinterpret_cast<const uint8_t*>(body.data()), body.size()});
    if (!positions.ok()) return PlainError(*ex, 400, positions.message());
    for (const auto& [name, pos] : *positions) {
      Status valid = ValidateDbName(name);
      if (!valid.ok()) return PlainError(*ex, 400, valid.message());
    }
    if (!store_.is_primary()) return PlainError(*ex, 503, "lease expired");
    log::Info("replica connected", {{"peer", ex->request().peer}});
    auto session = std::make_unique<StreamSession>(
        loop_, store_, ex, std::move(positions).value(), [this](StreamSession* s) {
          stream_peers_.erase(s);
          streams_.erase(s);
        });
    StreamSession* s = session.get();
    streams_[s] = std::move(session);
    const std::string* caller_id = ex->request().Header("Litefs-Id");
    stream_peers_[s] = ReplicaPeer{caller_id ? *caller_id : "", ex->request().peer, FormatRfc3339Ms(WallClockMs())};
    s->Start();
  });
  if (!st.ok()) PlainError(*raw, 400, st.message());
}

}  // namespace litefs
