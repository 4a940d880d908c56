// See events_api.h.
#include "sidecar/events_api.h"

#include <ctime>

#include <nlohmann/json.hpp>

#include "ltx/pos.h"
#include "sidecar/log.h"

namespace litefs {

std::string FormatRfc3339Ms(int64_t ms) {
  int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  int frac = int(ms - secs * 1000);
  time_t t = time_t(secs);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(buf, n);
  if (frac != 0) {
    char f[8];
    snprintf(f, sizeof f, ".%03d", frac);
    std::string fs = f;
    while (fs.back() == '0') fs.pop_back();
    out += fs;
  }
  out += 'Z';
  return out;
}

std::string FormatTxEvent(const std::string& db, const PosChange& c) {
  nlohmann::ordered_json j;
  j["type"] = "tx";
  j["db"] = db;
  j["data"] = {{"txID", ltx::FormatTXID(c.pos.txid)},
               {"postApplyChecksum", ltx::FormatChecksum(c.pos.checksum)},
               {"pageSize", c.page_size},
               {"commit", c.commit},
               {"timestamp", FormatRfc3339Ms(c.timestamp_ms)}};
  return j.dump();
}

std::string FormatRoleEvent(const char* type, bool is_primary, const std::string& hostname) {
  nlohmann::ordered_json data;
  data["isPrimary"] = is_primary;
  if (!hostname.empty()) data["hostname"] = hostname;
  nlohmann::ordered_json j;
  j["type"] = type;
  j["data"] = std::move(data);
  return j.dump();
}

EventsApi::EventsApi(Store& store) : store_(store) {
  db_subscription_ = store_.Subscribe([this](Database& db) { OnDbChanged(db); });
  role_subscription_ = store_.SubscribeRole([this] { OnRoleChanged(); });
}

EventsApi::~EventsApi() {
  Close();
  store_.Unsubscribe(db_subscription_);
  store_.UnsubscribeRole(role_subscription_);
}

void EventsApi::Close() {
  std::map<uint64_t, SubscriberPtr> all;
  all.swap(subscribers_);
  for (auto& [id, s] : all) {
    s->gone = true;
    s->ex->EndResponse();
  }
}

// Empty on the primary itself, as LiteFS reports it.
std::string EventsApi::PrimaryHostname() const {
  if (store_.is_primary() || !store_.primary()) return "";
  return store_.primary()->hostname;
}

void EventsApi::Handle(std::shared_ptr<http::Exchange> ex) {
  if (subscribers_.empty()) {
    // Changes made while nobody listened are not replayed.
    last_seq_.clear();
    for (Database* db : store_.All()) last_seq_[db->name()] = db->last_change_seq();
  }
  ex->StartResponse(200, {{"Content-Type", "application/json"}, {"Connection", "close"}});
  auto s = std::make_shared<Subscriber>();
  s->ex = ex;
  const uint64_t id = next_id_++;
  subscribers_[id] = s;
  ex->OnClose([this, id, s] {
    s->gone = true;
    subscribers_.erase(id);
  });
  last_is_primary_ = store_.is_primary();
  last_hostname_ = PrimaryHostname();
  Push(s, FormatRoleEvent("init", last_is_primary_, last_hostname_));
}

void EventsApi::OnDbChanged(Database& db) {
  if (subscribers_.empty()) return;
  auto it = last_seq_.find(db.name());
  uint64_t after = it == last_seq_.end() ? 0 : it->second;
  std::vector<PosChange> changes = db.ChangesSince(after);
  if (changes.empty()) return;
  last_seq_[db.name()] = changes.back().seq;
  for (const PosChange& c : changes) Broadcast(FormatTxEvent(db.name(), c));
}

void EventsApi::OnRoleChanged() {
  if (subscribers_.empty()) return;
  const bool is_primary = store_.is_primary();
  std::string hostname = PrimaryHostname();
  if (is_primary == last_is_primary_ && hostname == last_hostname_) return;
  last_is_primary_ = is_primary;
  last_hostname_ = hostname;
  Broadcast(FormatRoleEvent("primaryChange", is_primary, hostname));
}

void EventsApi::Broadcast(const std::string& line) {
  std::vector<SubscriberPtr> all;
  for (auto& [id, s] : subscribers_) all.push_back(s);
  for (const SubscriberPtr& s : all) Push(s, line);
}

void EventsApi::Push(const SubscriberPtr& s, std::string line) {
  if (s->gone) return;
  if (s->queue.size() >= kMaxQueuedEvents) return Drop(s, "too far behind");
  line += '\n';
  s->queue.push_back(std::move(line));
  Flush(s);
}

void EventsApi::Flush(const SubscriberPtr& s) {
  if (s->gone || s->writing || s->queue.empty()) return;
  std::string batch;
  for (const std::string& line : s->queue) batch += line;
  s->queue.clear();
  s->writing = true;
  Status st = s->ex->WriteBody(std::move(batch), [this, s](Status st) {
    s->writing = false;
    if (s->gone) return;  // dropped or closed meanwhile: `this` may be gone too
    if (!st.ok()) return Drop(s, "write failed");
    Flush(s);
  });
  if (!st.ok()) {
    s->writing = false;
    Drop(s, "write failed");
  }
}

void EventsApi::Drop(const SubscriberPtr& s, const char* why) {
  if (s->gone) return;
  s->gone = true;
  s->queue.clear();
  for (auto it = subscribers_.begin(); it != subscribers_.end(); ++it) {
    if (it->second == s) {
      subscribers_.erase(it);
      break;
    }
  }
  log::Info("events subscriber dropped", {{"reason", why}, {"peer", s->ex->request().peer}});
  s->ex->EndResponse();  // the client must reconnect, as with LiteFS
}

}  // namespace litefs
