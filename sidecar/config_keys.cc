// See config_keys.h.
#include "sidecar/config_keys.h"

#include <algorithm>

namespace litefs {

const std::vector<ConfigKey>& ConfigKeys() {
  static const std::vector<ConfigKey> keys = {
      {"dir", ""},
      {"fuse.dir", ""},
      {"fuse.allow-other", "litefs-vfs does not use FUSE"},
      {"fuse.debug", "litefs-vfs does not use FUSE"},
      {"data.dir", ""},
      {"data.compress", ""},
      {"data.retention", ""},
      {"data.retention-monitor-interval", ""},
      {"http.addr", ""},
      {"http.snapshot-timeout", "snapshots stream with backpressure and no deadline"},
      {"lease.type", ""},
      {"lease.candidate", ""},
      {"lease.hostname", ""},
      {"lease.advertise-url", ""},
      {"lease.reconnect-delay", ""},
      {"lease.promote", ""},
      {"lease.etcd.endpoints", ""},
      {"lease.etcd.key", ""},
      {"lease.etcd.ttl", ""},
      {"lease.etcd.lock-delay", ""},
      {"lease.etcd.ca-file", ""},
      {"lease.etcd.cert-file", ""},
      {"lease.etcd.key-file", ""},
      {"lease.etcd.username", ""},
      {"lease.etcd.password", ""},
      {"lease.demote-delay", "there is no manual demotion; use POST /handoff"},
      {"lease.databases", "every database replicates"},
      {"lease.consul", "Consul is not supported: use lease.type etcd"},
      {"proxy.addr", ""},
      {"proxy.target", ""},
      {"proxy.db", ""},
      {"proxy.advertise-url", ""},
      {"proxy.mode", ""},
      {"proxy.max-lag", ""},
      {"proxy.debug", ""},
      {"proxy.passthrough", ""},
      {"proxy.always-forward", ""},
      {"proxy.primary-redirect-timeout", ""},
      {"proxy.read-timeout", ""},
      {"proxy.read-header-timeout", ""},
      {"proxy.write-timeout", ""},
      {"proxy.idle-timeout", ""},
      {"proxy.txid-timeout", ""},
      {"proxy.cookie-expiry", ""},
      {"proxy.target-retry-timeout", ""},
      {"proxy.max-connections", ""},
      {"exec", ""},
      {"exec[].cmd", ""},
      {"exec[].if-candidate", ""},
      {"skip-sync", ""},
      {"cpus", ""},
      {"exit-on-error", "litefs-vfs always exits on a startup error"},
      {"strict-verify", "a LiteFS test option"},
      {"log.format", ""},
      {"log.debug", ""},
      {"log.file", ""},
      {"log.timestamp", "log lines always carry a timestamp"},
      {"tracing", "there is no trace log"},
      {"backup", "LiteFS Cloud backups are not supported; use litefs export"},
  };
  return keys;
}

std::vector<std::string_view> ConfigKeysUnder(std::string_view section) {
  std::vector<std::string_view> out;
  for (const ConfigKey& k : ConfigKeys()) {
    std::string_view rest = k.name;
    if (!section.empty()) {
      if (rest.size() <= section.size() || rest.substr(0, section.size()) != section ||
          rest[section.size()] != '.') {
        continue;
      }
      rest.remove_prefix(section.size() + 1);
    }
    std::string_view child = rest.substr(0, rest.find('.'));
    if (child.size() > 2 && child.substr(child.size() - 2) == "[]") continue;  // "exec[]" is "exec"
    if (std::find(out.begin(), out.end(), child) == out.end()) out.push_back(child);
  }
  return out;
}

const ConfigKey* FindConfigKey(std::string_view name) {
  for (const ConfigKey& k : ConfigKeys()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

}  // namespace litefs
