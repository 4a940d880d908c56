// GET /events (reference §1.9): a long-lived response of newline-delimited
// JSON objects. The first line is `init` (the role now), then
// `primaryChange` whenever the role or the followed primary changes, and
// `tx` for every position change of a database (local commit, applied LTX,
// import, drop). Pushed from the store's subscriptions, never polled.
//
// Each subscriber may have at most kMaxQueuedEvents events not yet handed to
// the kernel; one that falls further behind is dropped (its response ends,
// as LiteFS ends it) so a slow client never grows the sidecar's memory.
// With no subscriber, a position change costs nothing here.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "proxy/http/exchange.h"
#include "sidecar/store.h"

namespace litefs {

// LiteFS's JSON for one event, without the trailing newline.
std::string FormatTxEvent(const std::string& db, const PosChange& change);
std::string FormatRoleEvent(const char* type, bool is_primary, const std::string& hostname);
// RFC 3339 in UTC as Go prints a time: fractional digits only when non-zero,
// trailing zeros trimmed ("2024-05-01T10:00:00.25Z").
std::string FormatRfc3339Ms(int64_t ms_since_epoch);

class EventsApi {
 public:
  static constexpr size_t kMaxQueuedEvents = 1024;

  explicit EventsApi(Store& store);
  ~EventsApi();

  void Handle(std::shared_ptr<http::Exchange> ex);
  size_t subscriber_count() const { return subscribers_.size(); }
  // Ends every response (server shutdown).
  void Close();

 private:
  struct Subscriber {
    std::shared_ptr<http::Exchange> ex;
    std::deque<std::string> queue;  // lines not yet handed to the connection
    bool writing = false;
    bool gone = false;
  };
  using SubscriberPtr = std::shared_ptr<Subscriber>;

  void OnDbChanged(Database& db);
  void OnRoleChanged();
  std::string PrimaryHostname() const;
  void Broadcast(const std::string& line);
  void Push(const SubscriberPtr& s, std::string line);
  void Flush(const SubscriberPtr& s);
  void Drop(const SubscriberPtr& s, const char* why);

  Store& store_;
  uint64_t db_subscription_ = 0;
  uint64_t role_subscription_ = 0;
  uint64_t next_id_ = 1;
  std::map<uint64_t, SubscriberPtr> subscribers_;
  std::map<std::string, uint64_t, std::less<>> last_seq_;  // per db: the last change sent
  // The role last reported: the store also notifies changes events do not
  // show (READY, the primary's proxy URL).
  bool last_is_primary_ = false;
  std::string last_hostname_;
};

}  // namespace litefs
