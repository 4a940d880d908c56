// Tests for sidecar/lease_record and sidecar/base64: the etcd lease key's
// value (LiteFS's primary record, released, handoff) and its base64 carriage.
#include <doctest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "sidecar/base64.h"
#include "sidecar/etcd_lease.h"
#include "sidecar/lease_record.h"
#include "sidecar/store.h"
#include "vfs/commit_window_client.h"

using litefs::Base64Decode;
using litefs::Base64Encode;
using litefs::DecodeLeaseRecord;
using litefs::EncodeLeaseRecord;
using litefs::LeaseRecord;

TEST_CASE("base64: RFC 4648 vectors both ways") {
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (auto [plain, encoded] : vectors) {
    CHECK(Base64Encode(plain) == encoded);
    CHECK(Base64Decode(encoded) == std::optional<std::string>(plain));
  }
  std::string binary("\x00\xff\x10\x80", 4);
  CHECK(Base64Decode(Base64Encode(binary)) == binary);
  CHECK(Base64Encode("litefs/primary") == "bGl0ZWZzL3ByaW1hcnk=");  // as etcd shows it
}

TEST_CASE("base64: invalid text is refused") {
  CHECK_FALSE(Base64Decode("Zg="));     // not a multiple of 4
  CHECK_FALSE(Base64Decode("Z==="));     // padding where data must be
  CHECK_FALSE(Base64Decode("Zm9v!A==")); // bad character
  CHECK_FALSE(Base64Decode("Zg==Zm9v")); // data after padding
}

TEST_CASE("lease record: the held record is LiteFS's JSON plus our fields") {
  LeaseRecord r;
  r.kind = LeaseRecord::Kind::kHeld;
  r.hostname = "node-a";
  r.advertise_url = "http://10.0.0.1:20202";
  r.proxy_url = "http://10.0.0.1:8080";
  r.node_id = "27439C8D0EB31F8B";
  std::string text = EncodeLeaseRecord(r);
  nlohmann::json j = nlohmann::json::parse(text);
  CHECK(j["hostname"] == "node-a");
  CHECK(j["advertise-url"] == "http://10.0.0.1:20202");
  CHECK(j["proxy-url"] == "http://10.0.0.1:8080");
  litefs::Result<LeaseRecord> back = DecodeLeaseRecord(text);
  REQUIRE(back.ok());
  CHECK(back->kind == LeaseRecord::Kind::kHeld);
  CHECK(back->hostname == "node-a");
  CHECK(back->advertise_url == r.advertise_url);
  CHECK(back->proxy_url == r.proxy_url);
  CHECK(back->node_id == r.node_id);

  // A record written by LiteFS itself (two fields) is understood.
  litefs::Result<LeaseRecord> litefs_record =
      DecodeLeaseRecord(R"({"hostname":"h","advertise-url":"http://h:20202"})");
  REQUIRE(litefs_record.ok());
  CHECK(litefs_record->advertise_url == "http://h:20202");
  CHECK(litefs_record->proxy_url.empty());
}

TEST_CASE("lease record: released and handoff records") {
  LeaseRecord released;
  CHECK(EncodeLeaseRecord(released).empty());
  litefs::Result<LeaseRecord> r = DecodeLeaseRecord("");
  REQUIRE(r.ok());
  CHECK(r->kind == LeaseRecord::Kind::kReleased);

  // A clean shutdown leaves the positions a successor must reach first.
  LeaseRecord with_positions;
  with_positions.positions = {{"app.db", 9}};
  std::string text = EncodeLeaseRecord(with_positions);
  CHECK(nlohmann::json::parse(text)["released"] == true);
  litefs::Result<LeaseRecord> rp = DecodeLeaseRecord(text);
  REQUIRE(rp.ok());
  CHECK(rp->kind == LeaseRecord::Kind::kReleased);
  CHECK(rp->positions == with_positions.positions);

  LeaseRecord h;
  h.kind = LeaseRecord::Kind::kHandoff;
  h.handoff_to = "ECC01649861A8D1D";
  h.positions = {{"app.db", 42}, {"other.db", 7}};
  litefs::Result<LeaseRecord> back = DecodeLeaseRecord(EncodeLeaseRecord(h));
  REQUIRE(back.ok());
  CHECK(back->kind == LeaseRecord::Kind::kHandoff);
  CHECK(back->handoff_to == h.handoff_to);
  CHECK(back->positions == h.positions);
}

TEST_CASE("lease record: foreign values are errors, never a primary") {
  CHECK_FALSE(DecodeLeaseRecord("not json").ok());
  CHECK_FALSE(DecodeLeaseRecord("[1,2]").ok());
  CHECK_FALSE(DecodeLeaseRecord(R"({"hostname":"h"})").ok());  // no advertise-url
  CHECK_FALSE(DecodeLeaseRecord(R"({"handoff-to":""})").ok());
  CHECK_FALSE(DecodeLeaseRecord(R"({"handoff-to":"X","positions":{"a.db":"12"}})").ok());
}

TEST_CASE("fencing margin: a tenth of the TTL, at least 250 ms") {
  using std::chrono::milliseconds;
  CHECK(litefs::FencingMargin(milliseconds(10000)) == milliseconds(1000));
  CHECK(litefs::FencingMargin(milliseconds(3000)) == milliseconds(300));
  CHECK(litefs::FencingMargin(milliseconds(2000)) == milliseconds(250));
}

namespace {

// A store over a fresh managed directory (removed afterwards): what the
// commit window tests need of a sidecar.
struct StoreInTempDir {
  static std::string MakeDir() {
    char dir_template[] = "/tmp/litefs-window-XXXXXX";
    REQUIRE(mkdtemp(dir_template) != nullptr);
    return dir_template;
  }
  static litefs::DatabaseEnv EnvFor(const std::string& dir) {
    litefs::DatabaseEnv env;
    env.dir = dir;
    env.data_dir = dir + "/.litefs";
    return env;
  }
  ~StoreInTempDir() { std::filesystem::remove_all(dir); }

  std::string dir = MakeDir();
  litefs::Store store{EnvFor(dir)};
};

}  // namespace

TEST_CASE("fencing: approvals stop half a margin early; apps see the window move with the role") {
  StoreInTempDir fixture;
  const std::string& dir = fixture.dir;
  litefs::Store& store = fixture.store;
  using Verdict = litefs::vfs::CommitWindowClient::Verdict;
  litefs::vfs::CommitWindowClient missing(dir + "/.litefs.window");
  CHECK(missing.Enter() == Verdict::kUnavailable);
  CHECK(missing.error().find("sidecar") != std::string::npos);

  REQUIRE(store.OpenCommitWindow().ok());
  litefs::vfs::CommitWindowClient app(dir + "/.litefs.window");
  CHECK(app.Enter() == Verdict::kClosed);  // no role yet

  using namespace std::chrono;
  const auto now = steady_clock::now();
  store.set_approval_lead(milliseconds(500));
  store.BecomePrimary(now + milliseconds(300));
  // Inside the lead: no new transaction is approved, but one already open
  // may still pass its commit point until the deadline.
  CHECK_FALSE(store.approving_writes());
  CHECK(app.Enter() == Verdict::kOpen);
  app.Leave();
  store.SetCommitDeadline(now + seconds(10));
  CHECK(store.approving_writes());
  store.SetCommitDeadline(now - milliseconds(1));
  CHECK(app.Enter() == Verdict::kExpired);
  CHECK_FALSE(app.entered());

  // Stepping down waits for a commit between its check and its record.
  store.SetCommitDeadline(now + seconds(10));
  REQUIRE(app.Enter() == Verdict::kOpen);
  store.CloseCommitWindow();
  CHECK(store.is_primary());
  CHECK_FALSE(store.approving_writes());
  CHECK_FALSE(store.NoCommitInFlight());
  app.Leave();
  CHECK(store.NoCommitInFlight());
  CHECK(app.Enter() == Verdict::kClosed);

  store.BecomePrimary(std::nullopt);  // static lease: no deadline
  CHECK(app.Enter() == Verdict::kOpen);
  app.Leave();
  store.SetPrimary(std::nullopt);
  CHECK(app.Enter() == Verdict::kClosed);
  CHECK_FALSE(store.approving_writes());
}

TEST_CASE("approvals: a connection approved once begins unasked until the sidecar withdraws") {
  StoreInTempDir fixture;
  const std::string& dir = fixture.dir;
  litefs::Store& store = fixture.store;
  litefs::vfs::CommitWindowClient app(dir + "/.litefs.window");
  CHECK_FALSE(app.Generation().has_value());  // no sidecar: always ask
  CHECK_FALSE(app.MayBeginUnasked(0));

  REQUIRE(store.OpenCommitWindow().ok());
  std::optional<uint64_t> replica_gen = app.Generation();
  REQUIRE(replica_gen.has_value());
  CHECK_FALSE(app.MayBeginUnasked(*replica_gen));  // a replica approves nothing

  store.BecomePrimary(std::nullopt);
  const uint64_t approved = *app.Generation();  // read before the Begin the sidecar approves
  CHECK(app.MayBeginUnasked(approved));
  CHECK_FALSE(app.MayBeginUnasked(approved + 1));

  // A recovery, a waiting import or a drain withdraws every approval: the
  // next transaction asks, and may then go on unasked again.
  store.WithdrawWriteApprovals();
  CHECK_FALSE(app.MayBeginUnasked(approved));
  const uint64_t again = *app.Generation();
  CHECK(again != approved);
  CHECK(app.MayBeginUnasked(again));

  // On an etcd lease: no unasked begin within the approval lead of the
  // deadline, the same rule as the sidecar's own approvals.
  using namespace std::chrono;
  const auto now = steady_clock::now();
  store.set_approval_lead(milliseconds(500));
  store.SetCommitDeadline(now + milliseconds(300));
  CHECK_FALSE(store.approving_writes());
  CHECK_FALSE(app.MayBeginUnasked(again));
  store.SetCommitDeadline(now + seconds(10));
  CHECK(store.approving_writes());
  CHECK(app.MayBeginUnasked(again));

  // Stepping down withdraws them too, and a later term starts afresh.
  store.SetPrimary(std::nullopt);
  CHECK_FALSE(app.MayBeginUnasked(again));
  store.BecomePrimary(std::nullopt);
  CHECK_FALSE(app.MayBeginUnasked(again));
  CHECK(app.MayBeginUnasked(*app.Generation()));
}
