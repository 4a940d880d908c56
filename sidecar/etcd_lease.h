// The etcd lease (lease.type: etcd): who is the primary, decided through one
// etcd key. Candidates race to create the key with an etcd lease attached
// (compare-and-put); the holder renews that lease; every node watches the
// key to learn the primary (and so where to replicate from).
//
// Fencing: the holder may accept commits until
//     deadline = (send time of the last renewal etcd answered) + TTL - margin
// on this node's monotonic clock. etcd starts the TTL when the renewal
// arrives, which is after it was sent, so the lease cannot expire before
// send time + TTL; other candidates then also wait lock-delay after the key
// disappears. The holder stops accepting at least margin + lock-delay before
// anyone else can hold the key (docs/failover.md has the arithmetic).
//
// Clean exits keep the key but drop its holder, with the positions a
// successor must replicate first: "released" (any candidate, no
// lock-delay), or a handoff record naming the successor (only it may take
// the key; others wait TTL + lock-delay in case it never does). A candidate
// that cannot catch up within 5 s takes the key anyway.
//
// Cluster ID: as LiteFS, the sibling key "<key>/clusterid" holds the
// cluster's ID, written once by the first primary. A candidate with no ID
// adopts it; one with another ID never competes (it belongs elsewhere).
//
// Loop thread only. Callbacks run on the loop, never inside a method call.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "ltx/status.h"
#include "sidecar/etcd_client.h"
#include "sidecar/lease_record.h"
#include "sidecar/store.h"

namespace litefs {

using SteadyTime = std::chrono::steady_clock::time_point;

struct EtcdLeaseOptions {
  std::string key;
  std::chrono::milliseconds ttl{10000};
  std::chrono::milliseconds lock_delay{1000};
  std::chrono::milliseconds reconnect_delay{1000};
  bool candidate = true;
  LeaseRecord self;  // kHeld: what this node publishes while primary
};

// How long before the lease could expire the holder stops accepting commits.
std::chrono::milliseconds FencingMargin(std::chrono::milliseconds ttl);

class EtcdLease {
 public:
  using Positions = std::map<std::string, uint64_t>;
  struct Callbacks {
    // This node now holds the lease: commits are safe until `deadline`.
    std::function<void(SteadyTime deadline)> acquired;
    // A renewal moved the deadline.
    std::function<void(SteadyTime deadline)> renewed;
    // Stop accepting commits now (fenced, expired, taken over).
    std::function<void(const std::string& why)> lost;
    // The primary as published in etcd when it is another node; nullopt
    // when there is none.
    std::function<void(std::optional<PrimaryInfo>)> primary_changed;
    // Whether this node has applied at least these positions (handoff).
    std::function<bool(const Positions&)> caught_up;
    // The node's cluster ID ("" if none yet), and adopting the one in etcd.
    std::function<std::string()> cluster_id;
    std::function<Status(const std::string&)> adopt_cluster_id;
  };

  EtcdLease(uv_loop_t* loop, EtcdClient& etcd, EtcdLeaseOptions options, Callbacks callbacks);
  ~EtcdLease();

  void Start();
  // Gives up the lease if held and stops: the key is left "released" with
  // `positions` (what a successor must replicate first); while the node's
  // streams still run, waits (bounded) for a successor to take the key, so
  // that they can deliver those positions. `done` runs after that, or once
  // the requests failed or timed out.
  void Stop(Positions positions, std::function<void()> done);
  // Primary only, after the node stopped accepting commits: hands the key
  // to `node_id`, which must reach `positions` before taking it.
  void HandOff(const std::string& node_id, Positions positions, std::function<void(Status)> done);
  // The node applied something: re-check a pending handoff to this node.
  void LocalProgress();

  bool held() const { return state_ == State::kHolding; }

 private:
  enum class State {
    kFollowing,   // someone else (or no one) holds the key
    kAcquiring,   // a grant + compare-and-put is in flight
    kHolding,     // we hold the key and the deadline is in the future
    kFenced,      // we hold an etcd lease but could not renew it in time
    kHandingOff,  // writing the handoff record
    kStopped,
  };

  void Observe();
  void WatchFrom(int64_t revision);
  void ScheduleObserve();
  void Seen(std::optional<EtcdKeyValue> kv);  // nullopt: the key is absent
  void ScheduleAcquire(std::chrono::milliseconds delay, int64_t expected_mod_revision);
  void Acquire(int64_t expected_mod_revision);
  void Race(int64_t expected_mod_revision, uint64_t gen);
  void PublishClusterId();
  void Held(SteadyTime sent, int64_t ttl_s, int64_t revision);
  void ScheduleKeepAlive(std::chrono::milliseconds delay);
  void KeepAlive();
  void Fence(const std::string& why);
  void Drop(const std::string& why);  // the etcd lease is gone or not ours any more
  void CheckHandoffToMe();
  void ArmTimer(uv_timer_t* timer, std::chrono::milliseconds delay);
  std::chrono::milliseconds RetryInterval() const;

  uv_loop_t* loop_;
  EtcdClient& etcd_;
  EtcdLeaseOptions options_;
  Callbacks cb_;
  State state_ = State::kFollowing;

  int64_t lease_id_ = 0;       // our etcd lease, while we have one
  int64_t held_revision_ = 0;  // mod revision of the key we wrote
  SteadyTime deadline_{};
  uint64_t watch_ = 0;
  std::optional<PrimaryInfo> published_;  // last primary_changed value
  bool published_once_ = false;
  // A released or handoff record this node may take once it has
  // replicated its positions.
  std::optional<LeaseRecord> handoff_;
  std::function<void()> successor_waiter_;  // Stop: a successor took the key
  int64_t handoff_revision_ = 0;
  SteadyTime handoff_deadline_{};
  int64_t pending_acquire_revision_ = 0;
  int observe_failures_ = 0;
  int keepalive_failures_ = 0;  // consecutive: only some are logged  // consecutive failed reads: backs the retries off
  uint64_t generation_ = 0;  // bumps to ignore answers to abandoned requests

  uv_timer_t* observe_timer_;
  uv_timer_t* acquire_timer_;
  uv_timer_t* keepalive_timer_;
  uv_timer_t* fence_timer_;
  std::shared_ptr<bool> alive_;
};

}  // namespace litefs
