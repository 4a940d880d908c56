// The sidecar's configuration (litefs.yml): locating the file, environment
// expansion, strict YAML decoding into Config, defaults and validation.
//
// Contract: every function returns errors as values (yaml-cpp exceptions are
// caught inside); an error names the offending key and, for YAML problems, the
// file and line. Unknown keys at any level are errors: only the keys of
// features that exist are accepted (listed at ParseConfig below).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ltx/status.h"
#include "sidecar/duration.h"

namespace litefs {

struct Config {
  std::string dir;        // managed directory (absolute, normalised); `dir` or `fuse.dir`
  std::string data_dir;   // sidecar state; default <dir>/.litefs (absolute, normalised)
  bool data_compress = true;
  // LTX files older than this are deleted (the newest always stays); <= 0
  // keeps everything. Checked every retention-monitor-interval.
  Duration data_retention = std::chrono::minutes(10);
  Duration data_retention_monitor_interval = std::chrono::minutes(1);
  std::string http_addr = ":20202";  // node API bind address, [host]:port

  struct Lease {
    std::string type;            // "static" | "etcd"
    bool candidate = true;       // static: true = this node is the primary
    // static: the primary's hostname and node API URL (on every node);
    // etcd: this node's, published while it holds the lease (defaults: the
    // OS hostname, http://<hostname>:<http.addr port>).
    std::string hostname;
    std::string advertise_url;
    Duration reconnect_delay = std::chrono::seconds(1);
    bool promote = false;        // etcd: after catching up, ask for a handoff

    struct Etcd {
      std::vector<std::string> endpoints;  // http(s)://host:port, tried in turn
      // TLS towards https endpoints (PEM files): the CA that signed etcd's
      // certificate (empty: the system's CAs) and this node's client
      // certificate and key (for etcd's --client-cert-auth).
      std::string ca_file, cert_file, key_file;
      // etcd's user/password authentication (--auth); empty user: none.
      std::string username, password;
      std::string key = "litefs/primary";
      Duration ttl = std::chrono::seconds(10);
      Duration lock_delay = std::chrono::seconds(1);
    } etcd;
  } lease;

  // The reverse proxy in front of the app (proxy/reverse_proxy.h); off
  // unless `target` is set.
  struct Proxy {
    std::string addr;           // bind address, required with target
    std::string target;         // the app, "host:port"
    std::string db;             // database of a plain `__txid` cookie, required with target
    std::string advertise_url;  // how other nodes reach this proxy (default: lease.hostname + port of addr)
    std::string mode = "forward";  // writes on a replica: "forward" | "fly-replay"
    Duration max_lag = std::chrono::seconds(10);
    bool debug = false;
    std::vector<std::string> passthrough;
    std::vector<std::string> always_forward;
    Duration primary_redirect_timeout = std::chrono::seconds(5);
    Duration read_timeout{0};   // a request's head and body (0: none)
    Duration read_header_timeout = std::chrono::seconds(10);
    Duration write_timeout{0};  // end of a request head to end of its response (0: none)
    Duration idle_timeout = std::chrono::seconds(30);
    // Ours: how long a read waits for its TXID, cookie lifetime, and how long
    // a refusing target is redialled before 502.
    Duration txid_timeout = std::chrono::seconds(5);
    Duration cookie_expiry = std::chrono::minutes(5);
    Duration target_retry_timeout = std::chrono::seconds(5);
    size_t max_connections = 4096;
  } proxy;

  // Commands run once the node is ready (LiteFS's `exec`): all but the last
  // run to completion in order; the last is the app, run in the background.
  struct ExecCommand {
    std::string cmd;            // split shell-style, no shell
    bool if_candidate = false;  // only on lease candidates
  };
  std::vector<ExecCommand> exec;
  bool skip_sync = false;  // start proxy and exec without waiting to catch up
  // Ours: where the sidecar's threads run, "auto", "all" or a CPU list
  // (sidecar/cpu_placement.h).
  std::string cpus = "auto";

  struct Log {
    std::string format = "text";  // "text" | "json"
    bool debug = false;
    std::string file;             // ours: log to this file (reopened on SIGHUP); "" = stderr
  } log;

  std::string path;                   // the file it came from ("" from ParseConfig)
  std::vector<std::string> warnings;  // accepted-but-ignored keys, for the log
};

// Reads, expands (unless expand_env is false) and parses the file at `path`.
// Errors name the file: `unknown config key "lease.cnadidate" in litefs.yml line 7`.
Result<Config> LoadConfig(const std::string& path, bool expand_env = true);

// Parses config text. When expand_env is true, HOSTNAME is first set to the OS
// hostname if empty (see EnsureHostnameEnv) and $VARs are expanded on the raw
// text. Accepted keys: dir (alias fuse.dir), data.dir, data.compress, http.addr,
// lease.type, lease.candidate, lease.hostname, lease.advertise-url,
// lease.reconnect-delay, lease.promote, lease.etcd.endpoints, lease.etcd.key,
// lease.etcd.ttl, lease.etcd.lock-delay, log.format, log.debug, log.file,
// data.retention, data.retention-monitor-interval, exec, skip-sync, proxy.*
// (see Config::Proxy); fuse.allow-other and fuse.debug
// are accepted, ignored, and reported in Config::warnings. Relative paths are
// resolved against the current working directory.
Result<Config> ParseConfig(std::string_view yaml_text, bool expand_env = true);

// The config file to load: `explicit_path` if given (it must exist, else
// "config file not found: <path>"); otherwise the first existing of
// ./litefs.yml, $HOME/litefs.yml, /etc/litefs.yml (returned as spelled here,
// with $HOME expanded); none -> an error listing the paths tried.
Result<std::string> FindConfigFile(std::optional<std::string> explicit_path);

// Splits a listen/dial address "[host]:port": ":20202" -> {"", 20202},
// "127.0.0.1:0" -> {"127.0.0.1", 0}, "[::1]:80" -> {"::1", 80}. The port must
// be decimal 0..65535; an unbracketed host must not contain ':'.
Result<std::pair<std::string, int>> ParseHostPort(std::string_view addr);

// "" if `url` is a usable etcd endpoint (http://host:port, no path), else why not.
std::string CheckEtcdEndpoint(std::string_view url);

}  // namespace litefs
