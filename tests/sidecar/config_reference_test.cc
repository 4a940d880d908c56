// docs/configuration.md and the parser's key table (sidecar/config_keys)
// must agree: every key the parser accepts is documented, every documented
// key is accepted, and keys accepted only for LiteFS compatibility are listed
// as ignored, with a warning when used.
#include <doctest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "sidecar/config.h"
#include "sidecar/config_keys.h"

namespace {

struct DocKeys {
  std::set<std::string> supported;  // first table
  std::set<std::string> ignored;    // the "ignored" table
};

DocKeys ReadDocKeys() {
  std::ifstream in(std::string(LITEFS_SOURCE_ROOT) + "/docs/configuration.md");
  REQUIRE(in.good());
  DocKeys keys;
  bool in_ignored = false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) in_ignored = line.find("ignored") != std::string::npos;
    // A table row naming a key: "| `lease.etcd.ttl` | ...".
    if (line.rfind("| `", 0) != 0) continue;
    size_t end = line.find('`', 3);
    if (end == std::string::npos || line.compare(end, 3, "` |") != 0) continue;
    (in_ignored ? keys.ignored : keys.supported).insert(line.substr(3, end - 3));
  }
  return keys;
}

}  // namespace

TEST_CASE("configuration reference: docs/configuration.md lists exactly the parser's keys") {
  DocKeys doc = ReadDocKeys();
  REQUIRE(doc.supported.size() > 20);
  std::set<std::string> code_supported, code_ignored;
  for (const litefs::ConfigKey& k : litefs::ConfigKeys()) {
    (k.ignored_why.empty() ? code_supported : code_ignored).insert(std::string(k.name));
  }
  for (const std::string& k : code_supported) CHECK_MESSAGE(doc.supported.count(k) == 1, "undocumented key ", k);
  for (const std::string& k : doc.supported) CHECK_MESSAGE(code_supported.count(k) == 1, "documented key not accepted: ", k);
  CHECK(doc.ignored == code_ignored);
}

TEST_CASE("configuration reference: LiteFS-only keys are accepted with a warning") {
  litefs::Result<litefs::Config> c = litefs::ParseConfig(
      "fuse:\n  dir: /litefs\n  allow-other: true\n"
      "exit-on-error: false\nstrict-verify: true\n"
      "lease:\n  type: static\n  demote-delay: 10s\n  consul:\n    url: http://c:8500\n    key: k\n"
      "log:\n  timestamp: true\n"
      "tracing:\n  enabled: true\n  path: /var/log/t\n"
      "backup:\n  type: file\n  path: /b\n",
      false);
  INFO(c.message());
  REQUIRE(c.ok());
  CHECK(c->dir == "/litefs");
  std::string all;
  for (const std::string& w : c->warnings) all += w + "\n";
  for (const char* key : {"fuse.allow-other", "exit-on-error", "strict-verify", "lease.demote-delay", "lease.consul",
                          "log.timestamp", "tracing", "backup"}) {
    CHECK_MESSAGE(all.find(std::string(key) + " is ignored: ") != std::string::npos, key);
  }
  // Consul itself is still refused as a lease type.
  litefs::Result<litefs::Config> consul = litefs::ParseConfig("dir: /d\nlease:\n  type: consul\n", false);
  REQUIRE_FALSE(consul.ok());
  CHECK(consul.message().find("lease.type \"consul\" is not supported") != std::string::npos);
}
