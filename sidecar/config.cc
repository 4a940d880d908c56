// litefs.yml loading: file lookup, env expansion, strict decoding, validation.
#include "sidecar/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <map>

#include "sidecar/config_keys.h"
#include "sidecar/env_expand.h"

namespace litefs {
namespace {

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Where a YAML node sits, for messages: "in litefs.yml line 7" / "at line 7".
std::string Where(const std::string& source, const YAML::Mark& mark) {
  if (mark.is_null()) return source.empty() ? "" : "in " + source;
  const std::string line = "line " + std::to_string(mark.line + 1);
  return source.empty() ? "at " + line : "in " + source + " " + line;
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "nothing";
  }
}

// One map level of the config, checked against its known keys.
struct Section {
  struct Entry {
    YAML::Node key;
    YAML::Node value;
  };
  std::map<std::string, Entry, std::less<>> entries;
};

class Decoder {
 public:
  Decoder(std::string source, std::vector<std::string>* warnings)
      : source_(std::move(source)), warnings_(warnings) {}

  // Checks `node` is a map (null counts as empty) whose keys are all known
  // (config_keys.h) under `table_path` (the section's name in the key table:
  // "lease", "exec[]"; default `path`); `path` is the dotted path of the map
  // itself for messages ("" for the root, "exec[2]"). Keys LiteFS has and we
  // ignore become warnings and are left out of `out`.
  Status ReadSection(const YAML::Node& node, const std::string& path, Section* out,
                     std::optional<std::string> table_path = std::nullopt) {
    const std::string table = table_path ? *table_path : path;
    const std::vector<std::string_view> known = ConfigKeysUnder(table);
    if (!node.IsDefined() || node.IsNull()) return Status();
    if (!node.IsMap()) {
      if (path.empty()) {
        return Status::Error("config must be a map of keys, got " + Describe(node) +
                             Suffix(node.Mark()));
      }
      return Status::Error(path + ": expected a map of keys, got " + Describe(node) +
                           Suffix(node.Mark()));
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) {
        return Status::Error("config key " + Describe(key) + " is not a name" +
                             Suffix(key.Mark()));
      }
      const std::string name = key.Scalar();
      const std::string full = path.empty() ? name : path + "." + name;
      bool ok = false;
      for (std::string_view k : known) ok = ok || k == name;
      if (!ok) {
        return Status::Error("unknown config key " + Quote(full) + " " +
                             Where(source_, key.Mark()));
      }
      if (out->entries.count(name) != 0) {
        return Status::Error("duplicate config key " + Quote(full) + " " +
                             Where(source_, key.Mark()));
      }
      const ConfigKey* entry = FindConfigKey(table.empty() ? name : table + "." + name);
      if (entry != nullptr && !entry->ignored_why.empty()) {
        warnings_->push_back(full + " is ignored: " + std::string(entry->ignored_why));
        continue;
      }
      out->entries.emplace(name, Section::Entry{key, it->second});
    }
    return Status();
  }

  // Each getter leaves *out alone when the key is absent or null.
  Status String(const Section& s, std::string_view name, const std::string& full,
                std::string* out) {
    const YAML::Node* v = Find(s, name);
    if (v == nullptr) return Status();
    if (!v->IsScalar()) {
      return Status::Error(full + ": expected a string, got " + Describe(*v) +
                           Suffix(v->Mark()));
    }
    *out = v->Scalar();
    return Status();
  }

  Status Bool(const Section& s, std::string_view name, const std::string& full, bool* out) {
    const YAML::Node* v = Find(s, name);
    if (v == nullptr) return Status();
    bool b = false;
    if (!v->IsScalar() || !YAML::convert<bool>::decode(*v, b)) {
      return Status::Error(full + ": expected a boolean, got " + Describe(*v) +
                           Suffix(v->Mark()));
    }
    *out = b;
    return Status();
  }

  Status Dur(const Section& s, std::string_view name, const std::string& full,
             Duration* out) {
    const YAML::Node* v = Find(s, name);
    if (v == nullptr) return Status();
    if (!v->IsScalar()) {
      return Status::Error(full + ": expected a duration, got " + Describe(*v) +
                           Suffix(v->Mark()));
    }
    Result<Duration> d = ParseGoDuration(v->Scalar());
    if (!d.ok()) return Status::Error(full + ": " + d.message() + Suffix(v->Mark()));
    *out = *d;
    return Status();
  }

  // A list of strings; a single string counts as a one-element list.
  Status Strings(const Section& s, std::string_view name, const std::string& full,
                 std::vector<std::string>* out) {
    const YAML::Node* v = Find(s, name);
    if (v == nullptr) return Status();
    if (v->IsScalar()) {
      *out = {v->Scalar()};
      return Status();
    }
    if (!v->IsSequence()) {
      return Status::Error(full + ": expected a list of strings, got " + Describe(*v) +
                           Suffix(v->Mark()));
    }
    out->clear();
    for (const YAML::Node& item : *v) {
      if (!item.IsScalar()) {
        return Status::Error(full + ": expected a list of strings, got " + Describe(item) +
                             " in it" + Suffix(item.Mark()));
      }
      out->push_back(item.Scalar());
    }
    return Status();
  }

  const YAML::Node* Find(const Section& s, std::string_view name) {
    auto it = s.entries.find(name);
    if (it == s.entries.end() || it->second.value.IsNull()) return nullptr;
    return &it->second.value;
  }

  YAML::Node Sub(const Section& s, std::string_view name) {
    auto it = s.entries.find(name);
    return it == s.entries.end() ? YAML::Node() : it->second.value;
  }

 private:
  std::string Suffix(const YAML::Mark& mark) const {
    const std::string w = Where(source_, mark);
    return w.empty() ? "" : " (" + w + ")";
  }

  std::string source_;
  std::vector<std::string>* warnings_;
};

// Makes `p` absolute against the working directory and lexically normal,
// without a trailing '/'.
Result<std::string> AbsolutePath(const std::string& p, const std::string& key) {
  std::filesystem::path path(p);
  if (path.is_relative()) {
    std::error_code ec;
    std::filesystem::path cwd = std::filesystem::current_path(ec);
    if (ec) return Status::Error(key + ": resolve " + Quote(p) + ": " + ec.message());
    path = cwd / path;
  }
  std::string s = path.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

struct Raw {
  std::string dir, fuse_dir, data_dir;
  bool has_etcd_section = false;
};

Status DecodeProxy(Decoder& d, const YAML::Node& node, Config* cfg) {
  Section s;
  LITEFS_RETURN_IF_ERROR(d.ReadSection(node, "proxy", &s));
  Config::Proxy& p = cfg->proxy;
  LITEFS_RETURN_IF_ERROR(d.String(s, "addr", "proxy.addr", &p.addr));
  LITEFS_RETURN_IF_ERROR(d.String(s, "target", "proxy.target", &p.target));
  LITEFS_RETURN_IF_ERROR(d.String(s, "db", "proxy.db", &p.db));
  LITEFS_RETURN_IF_ERROR(d.String(s, "advertise-url", "proxy.advertise-url", &p.advertise_url));
  LITEFS_RETURN_IF_ERROR(d.String(s, "mode", "proxy.mode", &p.mode));
  LITEFS_RETURN_IF_ERROR(d.Dur(s, "max-lag", "proxy.max-lag", &p.max_lag));
  LITEFS_RETURN_IF_ERROR(d.Bool(s, "debug", "proxy.debug", &p.debug));
  LITEFS_RETURN_IF_ERROR(d.Strings(s, "passthrough", "proxy.passthrough", &p.passthrough));
  LITEFS_RETURN_IF_ERROR(d.Strings(s, "always-forward", "proxy.always-forward", &p.always_forward));
  LITEFS_RETURN_IF_ERROR(
      d.Dur(s, "primary-redirect-timeout", "proxy.primary-redirect-timeout", &p.primary_redirect_timeout));
  LITEFS_RETURN_IF_ERROR(d.Dur(s, "read-timeout", "proxy.read-timeout", &p.read_timeout));
  LITEFS_RETURN_IF_ERROR(d.Dur(s, "read-header-timeout", "proxy.read-header-timeout", &p.read_header_timeout));
  LITEFS_RETURN_IF_ERROR(d.Dur(s, "write-timeout", "proxy.write-timeout", &p.write_timeout));
  LITEFS_RETURN_IF_ERROR(d.Dur(s, "idle-timeout", "proxy.idle-timeout", &p.idle_timeout));
  LITEFS_RETURN_IF_ERROR(d.Dur(s, "txid-timeout", "proxy.txid-timeout", &p.txid_timeout));
  LITEFS_RETURN_IF_ERROR(d.Dur(s, "cookie-expiry", "proxy.cookie-expiry", &p.cookie_expiry));
  LITEFS_RETURN_IF_ERROR(
      d.Dur(s, "target-retry-timeout", "proxy.target-retry-timeout", &p.target_retry_timeout));
  std::string max_conns;
  LITEFS_RETURN_IF_ERROR(d.String(s, "max-connections", "proxy.max-connections", &max_conns));
  if (!max_conns.empty()) {
    char* end = nullptr;
    unsigned long long n = std::strtoull(max_conns.c_str(), &end, 10);
    if (end == max_conns.c_str() || *end != '\0' || n == 0 || max_conns[0] == '-') {
      return Status::Error("proxy.max-connections: expected a positive number, got '" + max_conns + "'");
    }
    p.max_connections = size_t(n);
  }
  return Status();
}

// `exec: "cmd args"` or a list of `{cmd: ..., if-candidate: bool}` (or plain strings).
Status DecodeExec(Decoder& d, const YAML::Node& node, Config* cfg) {
  if (!node.IsDefined() || node.IsNull()) return Status();
  if (node.IsScalar()) {
    cfg->exec.push_back({node.Scalar(), false});
    return Status();
  }
  if (!node.IsSequence()) return Status::Error("exec: expected a command or a list of commands");
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    std::string where = "exec[" + std::to_string(i) + "]";
    if (item.IsScalar()) {
      cfg->exec.push_back({item.Scalar(), false});
      continue;
    }
    Section s;
    LITEFS_RETURN_IF_ERROR(d.ReadSection(item, where, &s, "exec[]"));
    Config::ExecCommand c;
    LITEFS_RETURN_IF_ERROR(d.String(s, "cmd", where + ".cmd", &c.cmd));
    LITEFS_RETURN_IF_ERROR(d.Bool(s, "if-candidate", where + ".if-candidate", &c.if_candidate));
    if (c.cmd.empty()) return Status::Error(where + ".cmd is required");
    cfg->exec.push_back(std::move(c));
  }
  return Status();
}

Status Decode(Decoder& d, const YAML::Node& root, Config* cfg, Raw* raw) {
  Section top;
  LITEFS_RETURN_IF_ERROR(d.ReadSection(root, "", &top));
  LITEFS_RETURN_IF_ERROR(d.Bool(top, "skip-sync", "skip-sync", &cfg->skip_sync));
  LITEFS_RETURN_IF_ERROR(d.String(top, "cpus", "cpus", &cfg->cpus));
  LITEFS_RETURN_IF_ERROR(DecodeProxy(d, d.Sub(top, "proxy"), cfg));
  LITEFS_RETURN_IF_ERROR(DecodeExec(d, d.Sub(top, "exec"), cfg));
  LITEFS_RETURN_IF_ERROR(d.String(top, "dir", "dir", &raw->dir));

  Section data;
  LITEFS_RETURN_IF_ERROR(d.ReadSection(d.Sub(top, "data"), "data", &data));
  LITEFS_RETURN_IF_ERROR(d.String(data, "dir", "data.dir", &raw->data_dir));
  LITEFS_RETURN_IF_ERROR(d.Bool(data, "compress", "data.compress", &cfg->data_compress));
  LITEFS_RETURN_IF_ERROR(d.Dur(data, "retention", "data.retention", &cfg->data_retention));
  LITEFS_RETURN_IF_ERROR(d.Dur(data, "retention-monitor-interval", "data.retention-monitor-interval",
                               &cfg->data_retention_monitor_interval));

  Section fuse;
  LITEFS_RETURN_IF_ERROR(d.ReadSection(d.Sub(top, "fuse"), "fuse", &fuse));
  LITEFS_RETURN_IF_ERROR(d.String(fuse, "dir", "fuse.dir", &raw->fuse_dir));

  Section http;
  LITEFS_RETURN_IF_ERROR(d.ReadSection(d.Sub(top, "http"), "http", &http));
  LITEFS_RETURN_IF_ERROR(d.String(http, "addr", "http.addr", &cfg->http_addr));

  Section lease;
  LITEFS_RETURN_IF_ERROR(d.ReadSection(d.Sub(top, "lease"), "lease", &lease));
  LITEFS_RETURN_IF_ERROR(d.String(lease, "type", "lease.type", &cfg->lease.type));
  LITEFS_RETURN_IF_ERROR(d.Bool(lease, "candidate", "lease.candidate", &cfg->lease.candidate));
  LITEFS_RETURN_IF_ERROR(d.String(lease, "hostname", "lease.hostname", &cfg->lease.hostname));
  LITEFS_RETURN_IF_ERROR(
      d.String(lease, "advertise-url", "lease.advertise-url", &cfg->lease.advertise_url));
  LITEFS_RETURN_IF_ERROR(
      d.Dur(lease, "reconnect-delay", "lease.reconnect-delay", &cfg->lease.reconnect_delay));
  LITEFS_RETURN_IF_ERROR(d.Bool(lease, "promote", "lease.promote", &cfg->lease.promote));
  Section etcd;
  LITEFS_RETURN_IF_ERROR(d.ReadSection(d.Sub(lease, "etcd"), "lease.etcd", &etcd));
  raw->has_etcd_section = lease.entries.count("etcd") != 0;
  Config::Lease::Etcd& e = cfg->lease.etcd;
  LITEFS_RETURN_IF_ERROR(d.Strings(etcd, "endpoints", "lease.etcd.endpoints", &e.endpoints));
  LITEFS_RETURN_IF_ERROR(d.String(etcd, "key", "lease.etcd.key", &e.key));
  LITEFS_RETURN_IF_ERROR(d.Dur(etcd, "ttl", "lease.etcd.ttl", &e.ttl));
  LITEFS_RETURN_IF_ERROR(d.Dur(etcd, "lock-delay", "lease.etcd.lock-delay", &e.lock_delay));
  LITEFS_RETURN_IF_ERROR(d.String(etcd, "ca-file", "lease.etcd.ca-file", &e.ca_file));
  LITEFS_RETURN_IF_ERROR(d.String(etcd, "cert-file", "lease.etcd.cert-file", &e.cert_file));
  LITEFS_RETURN_IF_ERROR(d.String(etcd, "key-file", "lease.etcd.key-file", &e.key_file));
  LITEFS_RETURN_IF_ERROR(d.String(etcd, "username", "lease.etcd.username", &e.username));
  LITEFS_RETURN_IF_ERROR(d.String(etcd, "password", "lease.etcd.password", &e.password));

  Section log;
  LITEFS_RETURN_IF_ERROR(d.ReadSection(d.Sub(top, "log"), "log", &log));
  LITEFS_RETURN_IF_ERROR(d.String(log, "file", "log.file", &cfg->log.file));
  LITEFS_RETURN_IF_ERROR(d.String(log, "format", "log.format", &cfg->log.format));
  LITEFS_RETURN_IF_ERROR(d.Bool(log, "debug", "log.debug", &cfg->log.debug));
  return Status();
}

Status ValidateProxy(Config* cfg) {
  Config::Proxy& p = cfg->proxy;
  if (p.target.empty()) {
    if (!p.addr.empty()) return Status::Error("proxy.target is required when proxy.addr is set");
    return Status();
  }
  if (p.addr.empty()) return Status::Error("proxy.addr is required when proxy.target is set");
  if (p.db.empty()) return Status::Error("proxy.db is required when proxy.target is set");
  Result<std::pair<std::string, int>> addr = ParseHostPort(p.addr);
  if (!addr.ok()) return addr.status().Context("proxy.addr");
  Result<std::pair<std::string, int>> target = ParseHostPort(p.target);
  if (!target.ok() || target->first.empty() || target->second == 0) {
    return Status::Error("proxy.target " + Quote(p.target) + " must be host:port (e.g. localhost:8080)");
  }
  for (auto [key, d] : {std::pair<const char*, Duration>{"max-lag", p.max_lag},
                        {"primary-redirect-timeout", p.primary_redirect_timeout},
                        {"read-timeout", p.read_timeout},
                        {"read-header-timeout", p.read_header_timeout},
                        {"write-timeout", p.write_timeout},
                        {"idle-timeout", p.idle_timeout},
                        {"txid-timeout", p.txid_timeout},
                        {"cookie-expiry", p.cookie_expiry},
                        {"target-retry-timeout", p.target_retry_timeout}}) {
    if (d.count() < 0) return Status::Error(std::string("proxy.") + key + " must not be negative");
  }
  if (p.mode != "forward" && p.mode != "fly-replay") {
    return Status::Error("proxy.mode " + Quote(p.mode) + " is not supported (supported: forward, fly-replay)");
  }
  const std::string& url = p.advertise_url;
  if (!url.empty() && (url.rfind("http://", 0) != 0 || url.size() == 7)) {
    return Status::Error("proxy.advertise-url " + Quote(url) + " must be an http:// URL (e.g. http://node1:8080)");
  }
  if (url.empty()) {
    // Other nodes forward writes here: by default this node's advertised host
    // name with the proxy's port.
    std::string host = cfg->lease.hostname;
    if (host.empty()) host = addr->first.empty() ? "localhost" : addr->first;
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    p.advertise_url = "http://" + host + ":" + std::to_string(addr->second);
  }
  return Status();
}

// lease.etcd.* and what etcd mode implies for the other lease keys.
Status ValidateEtcdLease(const Raw& raw, Config* cfg, int http_port) {
  Config::Lease& lease = cfg->lease;
  if (lease.type != "etcd") {
    if (raw.has_etcd_section) return Status::Error("lease.etcd is only used with lease.type etcd");
    if (lease.promote) return Status::Error("lease.promote needs lease.type etcd");
    return Status();
  }
  Config::Lease::Etcd& e = lease.etcd;
  if (e.endpoints.empty()) {
    return Status::Error("lease.etcd.endpoints is required with lease.type etcd "
                         "(e.g. [\"http://127.0.0.1:2379\"])");
  }
  for (const std::string& url : e.endpoints) {
    std::string why = CheckEtcdEndpoint(url);
    if (!why.empty()) return Status::Error("lease.etcd.endpoints: " + Quote(url) + " " + why);
  }
  if (e.key.empty()) return Status::Error("lease.etcd.key must not be empty");
  if (e.username.empty() && !e.password.empty()) {
    return Status::Error("lease.etcd.password needs lease.etcd.username");
  }
  if (e.cert_file.empty() != e.key_file.empty()) {
    return Status::Error("lease.etcd.cert-file and lease.etcd.key-file go together");
  }
  for (const auto& [key, path] : {std::pair{"lease.etcd.ca-file", &e.ca_file},
                                  std::pair{"lease.etcd.cert-file", &e.cert_file},
                                  std::pair{"lease.etcd.key-file", &e.key_file}}) {
    if (path->empty()) continue;
    Result<std::string> abs = AbsolutePath(*path, key);
    if (!abs.ok()) return abs.status();
    *path = *abs;
    if (access(path->c_str(), R_OK) != 0) {
      return Status::Error(std::string(key) + ": cannot read " + *path + ": " + strerror(errno));
    }
  }
  if (e.ttl < std::chrono::seconds(2) || e.ttl.count() % 1000 != 0) {
    return Status::Error("lease.etcd.ttl must be whole seconds, at least 2s (etcd's minimum)");
  }
  if (e.lock_delay.count() < 0) return Status::Error("lease.etcd.lock-delay must not be negative");
  if (lease.promote && !lease.candidate) {
    return Status::Error("lease.promote needs lease.candidate: true");
  }
  if (lease.hostname.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
      return Status::Error("lease.hostname is not set and the OS hostname is unknown");
    }
    lease.hostname = host;
  }
  if (lease.advertise_url.empty()) {
    lease.advertise_url = "http://" + lease.hostname + ":" + std::to_string(http_port);
  }
  return Status();
}

Status Validate(const Raw& raw, Config* cfg) {
  std::string dir, fuse_dir;
  if (!raw.dir.empty()) {
    Result<std::string> p = AbsolutePath(raw.dir, "dir");
    if (!p.ok()) return p.status();
    dir = *p;
  }
  if (!raw.fuse_dir.empty()) {
    Result<std::string> p = AbsolutePath(raw.fuse_dir, "fuse.dir");
    if (!p.ok()) return p.status();
    fuse_dir = *p;
  }
  if (!dir.empty() && !fuse_dir.empty() && dir != fuse_dir) {
    return Status::Error("dir " + Quote(dir) + " and fuse.dir " + Quote(fuse_dir) +
                         " are both set and differ (fuse.dir is an alias of dir)");
  }
  if (dir.empty()) dir = fuse_dir;
  if (dir.empty()) return Status::Error("dir is required (fuse.dir is accepted as an alias)");
  cfg->dir = dir;

  if (raw.data_dir.empty()) {
    cfg->data_dir = dir == "/" ? "/.litefs" : dir + "/.litefs";
  } else {
    Result<std::string> p = AbsolutePath(raw.data_dir, "data.dir");
    if (!p.ok()) return p.status();
    cfg->data_dir = *p;
  }
  if (cfg->data_dir == cfg->dir) {
    return Status::Error("data.dir must differ from dir (both are " + Quote(dir) + ")");
  }

  Result<std::pair<std::string, int>> addr = ParseHostPort(cfg->http_addr);
  if (!addr.ok()) return addr.status().Context("http.addr");

  if (cfg->lease.type.empty()) {
    return Status::Error("lease.type is required (supported: static, etcd)");
  }
  if (cfg->lease.type != "static" && cfg->lease.type != "etcd") {
    return Status::Error("lease.type " + Quote(cfg->lease.type) +
                         " is not supported (supported: static, etcd)");
  }
  LITEFS_RETURN_IF_ERROR(ValidateEtcdLease(raw, cfg, addr->second));
  const std::string& url = cfg->lease.advertise_url;
  if (!url.empty() && (url.rfind("http://", 0) != 0 || url.size() == 7)) {
    return Status::Error("lease.advertise-url " + Quote(url) +
                         " must be an http:// URL (e.g. http://primary:20202)");
  }
  if (cfg->lease.type == "static" && !cfg->lease.candidate && url.empty()) {
    return Status::Error(
        "lease.advertise-url is required on a replica: it names the primary's API URL");
  }
  if (cfg->lease.reconnect_delay.count() < 0) {
    return Status::Error("lease.reconnect-delay must not be negative");
  }
  if (cfg->data_retention_monitor_interval.count() <= 0) {
    return Status::Error("data.retention-monitor-interval must be positive");
  }

  LITEFS_RETURN_IF_ERROR(ValidateProxy(cfg));
  if (cfg->log.format != "text" && cfg->log.format != "json") {
    return Status::Error("log.format " + Quote(cfg->log.format) +
                         " is not supported (supported: text, json)");
  }
  return Status();
}

Result<Config> Parse(std::string_view text, bool expand_env, const std::string& source) {
  std::string expanded;
  if (expand_env) {
    EnsureHostnameEnv();
    expanded = ExpandEnv(text);
  } else {
    expanded = std::string(text);
  }
  Config cfg;
  cfg.path = source;
  Raw raw;
  const std::string what = source.empty() ? "parse config" : "parse " + source;
  try {
    YAML::Node root = YAML::Load(expanded);
    Decoder decoder(source, &cfg.warnings);
    LITEFS_RETURN_IF_ERROR(Decode(decoder, root, &cfg, &raw));
  } catch (const YAML::Exception& e) {
    // e.what() already reads "yaml-cpp: error at line L, column C: ...".
    return Status::Error(what + ": " + e.what());
  } catch (const std::exception& e) {
    return Status::Error(what + ": " + e.what());
  }
  LITEFS_RETURN_IF_ERROR(Validate(raw, &cfg));
  return cfg;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

Result<Config> LoadConfig(const std::string& path, bool expand_env) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::Error("config file not found: " + path);
    return Status::Error("open config file " + path + ": " + std::strerror(errno));
  }
  std::string text;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Status::Error("read config file " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    text.append(buf, size_t(n));
  }
  ::close(fd);
  return Parse(text, expand_env, path);
}

Result<Config> ParseConfig(std::string_view yaml_text, bool expand_env) {
  return Parse(yaml_text, expand_env, "");
}

Result<std::string> FindConfigFile(std::optional<std::string> explicit_path) {
  if (explicit_path) {
    if (Exists(*explicit_path)) return *explicit_path;
    return Status::Error("config file not found: " + *explicit_path);
  }
  std::vector<std::string> candidates = {"./litefs.yml"};
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] != '\0') candidates.push_back(std::string(home) + "/litefs.yml");
  candidates.push_back("/etc/litefs.yml");
  std::string tried;
  for (const std::string& c : candidates) {
    if (Exists(c)) return c;
    tried += (tried.empty() ? "" : ", ") + c;
  }
  return Status::Error("no config file found (tried " + tried + ")");
}

std::string CheckEtcdEndpoint(std::string_view url) {
  const size_t scheme = url.rfind("https://", 0) == 0 ? 8 : url.rfind("http://", 0) == 0 ? 7 : 0;
  if (scheme == 0) return "must start with http:// or https://";
  std::string_view rest = url.substr(scheme);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty()) return "has no host";
  if (rest.find('/') != std::string_view::npos) return "must not have a path";
  Result<std::pair<std::string, int>> hp = ParseHostPort(rest);
  if (!hp.ok() || hp->first.empty() || hp->second == 0) {
    return "must be http(s)://host:port (e.g. http://127.0.0.1:2379)";
  }
  return "";
}

Result<std::pair<std::string, int>> ParseHostPort(std::string_view addr) {
  auto bad = [&](const std::string& why) {
    return Status::Error("invalid address " + Quote(addr) + ": " + why +
                         " (expected [host]:port)");
  };
  std::string_view host, port;
  if (!addr.empty() && addr[0] == '[') {
    const size_t close = addr.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    host = addr.substr(1, close - 1);
    if (host.empty()) return bad("empty host in brackets");
    if (close + 1 >= addr.size() || addr[close + 1] != ':') return bad("missing port");
    port = addr.substr(close + 2);
  } else {
    const size_t colon = addr.rfind(':');
    if (colon == std::string_view::npos) return bad("missing port");
    host = addr.substr(0, colon);
    port = addr.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return bad("too many colons (write an IPv6 host in brackets)");
    }
  }
  if (host.find_first_of("[]") != std::string_view::npos) return bad("unexpected bracket");
  if (port.empty()) return bad("missing port");
  int value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return bad("port must be a number");
    value = value > 65535 ? value : value * 10 + (c - '0');
  }
  if (value > 65535) return bad("port must be 0..65535");
  return std::pair<std::string, int>(std::string(host), value);
}

}  // namespace litefs
