// See etcd_lease.h.
#include "sidecar/etcd_lease.h"

#include <cstdlib>

#include <algorithm>

#include "sidecar/log.h"

namespace litefs {
namespace {

using std::chrono::milliseconds;

milliseconds Until(SteadyTime t) {
  auto d = std::chrono::duration_cast<milliseconds>(t - std::chrono::steady_clock::now());
  return std::max(d, milliseconds(0));
}

std::optional<PrimaryInfo> InfoOf(const LeaseRecord& r) {
  if (r.kind != LeaseRecord::Kind::kHeld) return std::nullopt;
  uint64_t node_id = std::strtoull(r.node_id.c_str(), nullptr, 16);
  return PrimaryInfo{r.hostname, r.advertise_url, r.proxy_url, node_id, false};
}

bool SameInfo(const std::optional<PrimaryInfo>& a, const std::optional<PrimaryInfo>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->hostname == b->hostname && a->advertise_url == b->advertise_url);
}

}  // namespace

milliseconds FencingMargin(milliseconds ttl) {
  // Covers the loop noticing late, the rate difference of two clocks and
  // etcd's own timer slack; a tenth of the TTL, at least 250 ms.
  return std::max(milliseconds(250), ttl / 10);
}

EtcdLease::EtcdLease(uv_loop_t* loop, EtcdClient& etcd, EtcdLeaseOptions options, Callbacks callbacks)
    : loop_(loop), etcd_(etcd), options_(std::move(options)), cb_(std::move(callbacks)),
      alive_(std::make_shared<bool>(true)) {
  for (uv_timer_t** t : {&observe_timer_, &acquire_timer_, &keepalive_timer_, &fence_timer_}) {
    *t = new uv_timer_t;
    uv_timer_init(loop_, *t);
    (*t)->data = this;
  }
}

EtcdLease::~EtcdLease() {
  *alive_ = false;
  if (watch_) etcd_.CancelWatch(watch_);
  for (uv_timer_t* t : {observe_timer_, acquire_timer_, keepalive_timer_, fence_timer_}) {
    uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
}

// Each timer has one job. Answers to etcd requests are dropped when the
// lease object is gone (`alive`) or the request was abandoned by a state
// change (`generation_`).
void EtcdLease::ArmTimer(uv_timer_t* timer, milliseconds delay) {
  uv_timer_stop(timer);
  if (timer == observe_timer_) {
    uv_timer_start(timer, [](uv_timer_t* t) { static_cast<EtcdLease*>(t->data)->Observe(); },
                   uint64_t(delay.count()), 0);
  } else if (timer == keepalive_timer_) {
    uv_timer_start(timer, [](uv_timer_t* t) { static_cast<EtcdLease*>(t->data)->KeepAlive(); },
                   uint64_t(delay.count()), 0);
  } else if (timer == fence_timer_) {
    uv_timer_start(timer, [](uv_timer_t* t) {
      static_cast<EtcdLease*>(t->data)->Fence("the etcd lease could not be renewed before the fencing deadline");
    }, uint64_t(delay.count()), 0);
  } else {
    uv_timer_start(timer, [](uv_timer_t* t) {
      auto* self = static_cast<EtcdLease*>(t->data);
      self->Acquire(self->pending_acquire_revision_);
    }, uint64_t(delay.count()), 0);
  }
}

milliseconds EtcdLease::RetryInterval() const {
  return std::clamp(options_.ttl / 10, milliseconds(100), milliseconds(500));
}

void EtcdLease::Start() {
  log::Info("etcd lease starting", {{"endpoint", etcd_.endpoint()}, {"key", options_.key},
                                    {"candidate", options_.candidate ? "true" : "false"}});
  Observe();
}

// Reads the key, acts on it, then watches it from the next revision.
void EtcdLease::Observe() {
  if (state_ == State::kStopped) return;
  if (watch_) etcd_.CancelWatch(watch_);
  watch_ = 0;
  auto alive = std::weak_ptr<bool>(alive_);
  etcd_.Get(options_.key, [this, alive](Result<EtcdGetResult> r) {
    if (alive.expired() || state_ == State::kStopped) return;
    if (!r.ok()) {
      log::Warn("cannot read the lease key from etcd; retrying", {{"error", r.message()}});
      return ScheduleObserve();
    }
    observe_failures_ = 0;
    Seen(r->kv);
    if (state_ == State::kStopped) return;
    WatchFrom(r->revision + 1);
  });
}

void EtcdLease::ScheduleObserve() {
  // Back off while etcd is away, up to a third of the TTL.
  milliseconds delay = std::max(options_.reconnect_delay, milliseconds(50));
  for (int i = 0; i < observe_failures_ && delay < options_.ttl / 3; i++) delay *= 2;
  delay = std::min(delay, std::max(options_.ttl / 3, options_.reconnect_delay));
  observe_failures_++;
  ArmTimer(observe_timer_, delay);
}

void EtcdLease::WatchFrom(int64_t revision) {
  auto alive = std::weak_ptr<bool>(alive_);
  // A quiet key sends nothing: re-read it every two TTLs anyway, so that a
  // connection broken without a reset cannot hide a change for long.
  watch_ = etcd_.Watch(
      options_.key, revision, long(2 * options_.ttl.count()),
      [this, alive](const EtcdWatchEvent& e) {
        if (alive.expired()) return;  // (when stopped, Seen looks for a successor)
        Seen(e.deleted ? std::nullopt : std::optional<EtcdKeyValue>(e.kv));
      },
      [this, alive](Status st) {
        if (alive.expired() || state_ == State::kStopped) return;
        watch_ = 0;
        if (st.message().find("(idle timeout)") != std::string::npos) {
          log::Debug("etcd watch idle; reading the key again");
          return Observe();
        }
        log::Warn("etcd watch ended; watching again", {{"error", st.message()}});
        ScheduleObserve();
      });
}

// One observation of the key: absent, or its current value.
void EtcdLease::Seen(std::optional<EtcdKeyValue> kv) {
  const bool ours = kv && lease_id_ != 0 && kv->lease == lease_id_;
  if (ours) return;  // our own write (or its echo on the watch)
  if (state_ == State::kStopped) {
    if (kv && successor_waiter_ && DecodeLeaseRecord(kv->value).ok() &&
        DecodeLeaseRecord(kv->value)->kind == LeaseRecord::Kind::kHeld) {
      auto fn = std::move(successor_waiter_);
      successor_waiter_ = nullptr;
      fn();
    }
    return;
  }

  LeaseRecord record;
  if (kv) {
    Result<LeaseRecord> decoded = DecodeLeaseRecord(kv->value);
    if (!decoded.ok()) {
      // Someone else's data under our key: never overwrite it.
      log::Error("the lease key holds something else; not competing", {{"key", options_.key},
                                                                        {"error", decoded.message()}});
      record.kind = LeaseRecord::Kind::kHeld;
    } else {
      record = std::move(decoded).value();
    }
  }
  if (state_ == State::kHolding || state_ == State::kFenced) {
    // The key is not ours any more: expired, deleted, or taken.
    Drop(kv ? "another node holds the lease key" : "the lease key disappeared");
  }
  uv_timer_stop(acquire_timer_);
  handoff_.reset();

  std::optional<PrimaryInfo> info = kv ? InfoOf(record) : std::nullopt;
  if (!published_once_ || !SameInfo(info, published_)) {
    published_once_ = true;
    published_ = info;
    if (info) {
      log::Info("primary from etcd", {{"hostname", info->hostname}, {"url", info->advertise_url}});
    } else {
      log::Info("no primary in etcd", {{"key", options_.key}});
    }
    cb_.primary_changed(info);
  }
  if (!options_.candidate || state_ != State::kFollowing) return;
  if (kv && record.kind == LeaseRecord::Kind::kHeld) return;

  if (!kv) {
    // Gone by expiry (or never there): wait lock-delay first.
    ScheduleAcquire(options_.lock_delay, 0);
  } else if (record.kind == LeaseRecord::Kind::kReleased && record.positions.empty()) {
    ScheduleAcquire(milliseconds(0), kv->mod_revision);
  } else if (record.kind == LeaseRecord::Kind::kReleased ||
             record.handoff_to == options_.self.node_id) {
    handoff_ = record;
    handoff_revision_ = kv->mod_revision;
    handoff_deadline_ = std::chrono::steady_clock::now() + milliseconds(5000);
    log::Info(record.kind == LeaseRecord::Kind::kReleased
                  ? "the primary released the lease; catching up before taking it"
                  : "the primary is handing the lease to this node; catching up first");
    CheckHandoffToMe();
  } else {
    // Handed to another node: step in only if it never takes it.
    ScheduleAcquire(options_.ttl + options_.lock_delay, kv->mod_revision);
  }
}

void EtcdLease::LocalProgress() {
  if (handoff_) CheckHandoffToMe();
}

void EtcdLease::CheckHandoffToMe() {
  if (!handoff_ || state_ != State::kFollowing) return;
  bool caught_up = cb_.caught_up(handoff_->positions);
  bool late = std::chrono::steady_clock::now() >= handoff_deadline_;
  if (!caught_up && !late) {
    // Woken by LocalProgress; this timer only bounds the wait.
    ScheduleAcquire(Until(handoff_deadline_), handoff_revision_);
    return;
  }
  if (!caught_up) {
    log::Warn("taking the lease before catching up: the old primary's last commits may be lost");
  }
  handoff_.reset();
  ScheduleAcquire(milliseconds(0), handoff_revision_);
}

void EtcdLease::ScheduleAcquire(milliseconds delay, int64_t expected_mod_revision) {
  pending_acquire_revision_ = expected_mod_revision;
  ArmTimer(acquire_timer_, delay);
}

void EtcdLease::Acquire(int64_t expected_mod_revision) {
  if (state_ != State::kFollowing || !options_.candidate) return;
  if (handoff_) return CheckHandoffToMe();
  state_ = State::kAcquiring;
  const uint64_t gen = ++generation_;
  auto alive = std::weak_ptr<bool>(alive_);
  // The cluster ID first: a node of another cluster must not take the key.
  etcd_.Get(options_.key + "/clusterid", [this, alive, gen, expected_mod_revision](Result<EtcdGetResult> r) {
    if (alive.expired() || gen != generation_) return;
    if (!r.ok()) {
      log::Warn("cannot read the cluster id from etcd; retrying", {{"error", r.message()}});
      state_ = State::kFollowing;
      return ScheduleObserve();
    }
    const std::string theirs = r->kv ? r->kv->value : "";
    const std::string ours = cb_.cluster_id();
    if (!theirs.empty() && ours.empty()) {
      Status st = cb_.adopt_cluster_id(theirs);
      if (!st.ok()) {
        log::Error("cannot adopt the cluster id from etcd", {{"error", st.message()}});
        state_ = State::kFollowing;
        return ScheduleObserve();
      }
      log::Info("adopted the cluster id from etcd", {{"cluster_id", theirs}});
    } else if (!theirs.empty() && theirs != ours) {
      log::Error("this node belongs to another cluster; it will not compete for the lease",
                 {{"cluster_id", ours}, {"etcd_cluster_id", theirs}, {"key", options_.key + "/clusterid"}});
      state_ = State::kFollowing;
      return;
    }
    Race(expected_mod_revision, gen);
  });
}

void EtcdLease::Race(int64_t expected_mod_revision, uint64_t gen) {
  auto alive = std::weak_ptr<bool>(alive_);
  const SteadyTime sent = std::chrono::steady_clock::now();
  const int64_t ttl_s = std::max<int64_t>(1, (options_.ttl.count() + 999) / 1000);
  etcd_.GrantLease(ttl_s, [this, alive, gen, sent, expected_mod_revision](Result<EtcdClient::Grant> g) {
    if (alive.expired() || gen != generation_) return;
    if (!g.ok()) {
      log::Warn("cannot get an etcd lease; retrying", {{"error", g.message()}});
      state_ = State::kFollowing;
      return ScheduleObserve();
    }
    lease_id_ = g->id;
    const int64_t granted_ttl = g->ttl_s;
    std::string value = EncodeLeaseRecord(options_.self);
    etcd_.PutIf(options_.key, value, lease_id_, expected_mod_revision,
                [this, alive, gen, sent, granted_ttl](Result<EtcdClient::TxnResult> t) {
                  if (alive.expired() || gen != generation_) return;
                  if (!t.ok() || !t->succeeded) {
                    if (!t.ok()) log::Warn("lease race failed", {{"error", t.message()}});
                    int64_t id = lease_id_;
                    lease_id_ = 0;
                    state_ = State::kFollowing;
                    etcd_.Revoke(id, [](Status) {});
                    // Read the key again: who won, or retry after an error.
                    if (!t.ok()) return ScheduleObserve();
                    return Observe();
                  }
                  Held(sent, granted_ttl, t->revision);
                });
  });
}

void EtcdLease::Held(SteadyTime sent, int64_t ttl_s, int64_t revision) {
  held_revision_ = revision;
  deadline_ = sent + std::chrono::seconds(ttl_s) - FencingMargin(options_.ttl);
  if (deadline_ <= std::chrono::steady_clock::now()) {
    // Too slow to be of use: let it go rather than hold it with no time left.
    log::Warn("acquired the lease too late to use it; releasing");
    Drop("acquired too late");
    return ScheduleObserve();
  }
  state_ = State::kHolding;
  // Whoever is seen next is news to the node, even the primary it followed
  // before this one.
  published_once_ = false;
  log::Info("acquired the etcd lease", {{"lease", std::to_string(lease_id_)},
                                        {"revision", std::to_string(revision)},
                                        {"valid_ms", std::to_string(Until(deadline_).count())}});
  ArmTimer(fence_timer_, Until(deadline_));
  ScheduleKeepAlive(options_.ttl / 3);
  cb_.acquired(deadline_);
  PublishClusterId();
}

// The first primary writes the cluster ID (the node made one on taking the
// role); later ones find it there already.
void EtcdLease::PublishClusterId() {
  const std::string id = cb_.cluster_id();
  if (id.empty()) return;
  etcd_.PutIf(options_.key + "/clusterid", id, 0, 0, [id](Result<EtcdClient::TxnResult> t) {
    if (!t.ok()) {
      log::Warn("cannot store the cluster id in etcd", {{"error", t.message()}});
    } else if (t->succeeded) {
      log::Info("stored the cluster id in etcd", {{"cluster_id", id}});
    }
  });
}

void EtcdLease::ScheduleKeepAlive(milliseconds delay) { ArmTimer(keepalive_timer_, delay); }

void EtcdLease::KeepAlive() {
  if (state_ != State::kHolding && state_ != State::kFenced) return;
  const uint64_t gen = generation_;
  auto alive = std::weak_ptr<bool>(alive_);
  const SteadyTime sent = std::chrono::steady_clock::now();
  etcd_.KeepAlive(lease_id_, [this, alive, gen, sent](Result<int64_t> ttl) {
    if (alive.expired() || gen != generation_) return;
    if (!ttl.ok()) {
      // Retries are frequent while etcd is away: log the first few, then every 20th.
      if (++keepalive_failures_ <= 3 || keepalive_failures_ % 20 == 0) {
        log::Warn("cannot renew the etcd lease; retrying",
                  {{"error", ttl.message()}, {"failures", std::to_string(keepalive_failures_)},
                   {"deadline_in_ms", std::to_string(Until(deadline_).count())}});
      }
      return ScheduleKeepAlive(RetryInterval());
    }
    keepalive_failures_ = 0;
    if (*ttl <= 0) {
      Drop("the etcd lease expired");
      return Observe();
    }
    SteadyTime deadline = sent + std::chrono::seconds(*ttl) - FencingMargin(options_.ttl);
    if (state_ == State::kHolding) {
      deadline_ = std::max(deadline_, deadline);
      ArmTimer(fence_timer_, Until(deadline_));
      ScheduleKeepAlive(options_.ttl / 3);
      cb_.renewed(deadline_);
      return;
    }
    // Fenced, and etcd is back: the lease survived; take up the role again
    // only if the key is still the one we wrote under it.
    etcd_.Get(options_.key, [this, alive, gen, deadline](Result<EtcdGetResult> r) {
      if (alive.expired() || gen != generation_ || state_ != State::kFenced) return;
      if (!r.ok()) return ScheduleKeepAlive(RetryInterval());
      if (!r->kv || r->kv->lease != lease_id_ || r->kv->mod_revision != held_revision_) {
        Drop("the lease key changed while this node was fenced");
        return Observe();
      }
      if (deadline <= std::chrono::steady_clock::now()) return ScheduleKeepAlive(milliseconds(0));
      deadline_ = deadline;
      state_ = State::kHolding;
      log::Info("etcd lease renewed after fencing; primary again",
                {{"valid_ms", std::to_string(Until(deadline_).count())}});
      ArmTimer(fence_timer_, Until(deadline_));
      ScheduleKeepAlive(options_.ttl / 3);
      cb_.acquired(deadline_);
      // The watch may have died with the connection: read afresh.
      Observe();
    });
  });
}

void EtcdLease::Fence(const std::string& why) {
  if (state_ != State::kHolding) return;
  state_ = State::kFenced;
  log::Warn("fenced: stopped being the primary", {{"reason", why}});
  cb_.lost(why);
  ScheduleKeepAlive(milliseconds(0));
}

void EtcdLease::Drop(const std::string& why) {
  const bool was_primary = state_ == State::kHolding;
  uv_timer_stop(fence_timer_);
  uv_timer_stop(keepalive_timer_);
  ++generation_;
  if (lease_id_ != 0) etcd_.Revoke(lease_id_, [](Status) {});
  lease_id_ = 0;
  held_revision_ = 0;
  state_ = State::kFollowing;
  if (was_primary) {
    log::Warn("lost the etcd lease", {{"reason", why}});
    cb_.lost(why);
  }
}

void EtcdLease::HandOff(const std::string& node_id, Positions positions, std::function<void(Status)> done) {
  if (state_ != State::kHolding && state_ != State::kFenced) {
    return done(Status::Error("this node does not hold the lease"));
  }
  state_ = State::kHandingOff;
  uv_timer_stop(fence_timer_);
  uv_timer_stop(keepalive_timer_);
  const uint64_t gen = ++generation_;
  auto alive = std::weak_ptr<bool>(alive_);
  LeaseRecord record;
  record.kind = LeaseRecord::Kind::kHandoff;
  record.handoff_to = node_id;
  record.positions = std::move(positions);
  log::Info("handing the lease off", {{"to", node_id}});
  etcd_.PutIf(options_.key, EncodeLeaseRecord(record), 0, held_revision_,
              [this, alive, gen, done = std::move(done)](Result<EtcdClient::TxnResult> t) {
                if (alive.expired() || gen != generation_) return;
                int64_t id = lease_id_;
                lease_id_ = 0;
                held_revision_ = 0;
                state_ = State::kFollowing;
                etcd_.Revoke(id, [](Status) {});
                Observe();
                if (!t.ok()) return done(t.status());
                if (!t->succeeded) return done(Status::Error("the lease key changed; handoff abandoned"));
                done(Status());
              });
}

void EtcdLease::Stop(Positions positions, std::function<void()> done) {
  const bool holding = state_ == State::kHolding || state_ == State::kFenced;
  const int64_t id = lease_id_;
  const int64_t revision = held_revision_;
  if (state_ == State::kHolding) cb_.lost("shutting down");
  state_ = State::kStopped;
  ++generation_;
  for (uv_timer_t* t : {observe_timer_, acquire_timer_, keepalive_timer_, fence_timer_}) uv_timer_stop(t);
  lease_id_ = 0;
  auto alive = std::weak_ptr<bool>(alive_);
  auto finish = [this, alive, id, done = std::move(done)]() {
    if (alive.expired()) return done();
    uv_timer_stop(acquire_timer_);
    if (watch_) etcd_.CancelWatch(watch_);
    watch_ = 0;
    if (id == 0) return done();
    etcd_.Revoke(id, [done](Status st) {
      if (!st.ok()) log::Warn("cannot revoke the etcd lease", {{"error", st.message()}});
      done();
    });
  };
  if (!holding) return finish();
  LeaseRecord released;
  released.kind = LeaseRecord::Kind::kReleased;
  released.positions = std::move(positions);
  etcd_.PutIf(options_.key, EncodeLeaseRecord(released), 0, revision,
              [this, alive, finish](Result<EtcdClient::TxnResult> t) {
                if (alive.expired()) return finish();
                if (!t.ok() || !t->succeeded || !watch_) {
                  if (!t.ok()) log::Warn("cannot release the lease key", {{"error", t.message()}});
                  return finish();
                }
                log::Info("released the etcd lease; waiting for a successor");
                // The streams keep running until a successor, caught up,
                // holds the key (bounded: a lone node has none).
                successor_waiter_ = finish;
                uv_timer_stop(acquire_timer_);
                acquire_timer_->data = this;
                uv_timer_start(acquire_timer_, [](uv_timer_t* t) {
                  auto* self = static_cast<EtcdLease*>(t->data);
                  if (!self->successor_waiter_) return;
                  log::Warn("no successor took the lease; stopping anyway");
                  auto fn = std::move(self->successor_waiter_);
                  self->successor_waiter_ = nullptr;
                  fn();
                }, 2000, 0);
              });
}

}  // namespace litefs
