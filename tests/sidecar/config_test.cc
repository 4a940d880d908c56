// Tests for sidecar/config, sidecar/duration and sidecar/env_expand: strict
// decoding, defaults, validation messages, env expansion, Go durations and
// config file lookup.
#include <doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "sidecar/config.h"
#include "sidecar/duration.h"
#include "sidecar/env_expand.h"

namespace fs = std::filesystem;
using litefs::Config;
using litefs::Duration;
using litefs::ParseConfig;
using litefs::Result;

namespace {

// A fresh temporary directory, removed at scope exit.
struct TempDir {
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "litefs-config-test-XXXXXX").string();
    REQUIRE(mkdtemp(templ.data()) != nullptr);
    path = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

// Restores the working directory and an environment variable at scope exit.
struct CwdGuard {
  CwdGuard() : saved(fs::current_path()) {}
  ~CwdGuard() { fs::current_path(saved); }
  fs::path saved;
};

struct EnvGuard {
  explicit EnvGuard(const char* name) : name(name) {
    if (const char* v = std::getenv(name)) saved = v;
  }
  ~EnvGuard() {
    if (saved) {
      setenv(name, saved->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  const char* name;
  std::optional<std::string> saved;
};

Config MustParse(const std::string& text, bool expand = true) {
  Result<Config> r = ParseConfig(text, expand);
  INFO("error: " << r.message());
  REQUIRE(r.ok());
  return *r;
}

std::string ParseError(const std::string& text) {
  Result<Config> r = ParseConfig(text);
  REQUIRE_FALSE(r.ok());
  return r.message();
}

const char* kMinimal =
    "dir: /litefs\n"
    "lease:\n"
    "  type: static\n";

}  // namespace

TEST_CASE("config: a full file with every key") {
  TempDir tmp;
  const std::string path = tmp.path + "/litefs.yml";
  WriteFile(path,
            "# every key litefs-vfs accepts today\n"
            "dir: /var/lib/app\n"
            "data:\n"
            "  dir: /var/lib/litefs-data/\n"
            "  compress: false\n"
            "fuse:\n"
            "  allow-other: true\n"
            "  debug: false\n"
            "http:\n"
            "  addr: 127.0.0.1:30303\n"
            "lease:\n"
            "  type: static\n"
            "  candidate: false\n"
            "  hostname: primary-0\n"
            "  advertise-url: http://primary-0:30303\n"
            "  reconnect-delay: 2500ms\n"
            "log:\n"
            "  format: json\n"
            "  debug: true\n");
  Result<Config> r = litefs::LoadConfig(path);
  INFO(r.message());
  REQUIRE(r.ok());
  const Config& c = *r;
  CHECK(c.dir == "/var/lib/app");
  CHECK(c.data_dir == "/var/lib/litefs-data");
  CHECK(c.data_compress == false);
  CHECK(c.http_addr == "127.0.0.1:30303");
  CHECK(c.lease.type == "static");
  CHECK(c.lease.candidate == false);
  CHECK(c.lease.hostname == "primary-0");
  CHECK(c.lease.advertise_url == "http://primary-0:30303");
  CHECK(c.lease.reconnect_delay == Duration(2500));
  CHECK(c.log.format == "json");
  CHECK(c.log.debug == true);
  CHECK(c.path == path);
  REQUIRE(c.warnings.size() == 2);
  CHECK(c.warnings[0] == "fuse.allow-other is ignored: litefs-vfs does not use FUSE");
  CHECK(c.warnings[1] == "fuse.debug is ignored: litefs-vfs does not use FUSE");
}

TEST_CASE("config: defaults") {
  Config c = MustParse(kMinimal);
  CHECK(c.dir == "/litefs");
  CHECK(c.data_dir == "/litefs/.litefs");
  CHECK(c.data_compress == true);
  CHECK(c.http_addr == ":20202");
  CHECK(c.lease.type == "static");
  CHECK(c.lease.candidate == true);
  CHECK(c.lease.hostname.empty());
  CHECK(c.lease.advertise_url.empty());
  CHECK(c.lease.reconnect_delay == std::chrono::seconds(1));
  CHECK(c.log.format == "text");
  CHECK(c.log.debug == false);
  CHECK(c.path.empty());
  CHECK(c.warnings.empty());
}

TEST_CASE("config: http.addr forms") {
  CHECK(MustParse(std::string(kMinimal) + "http:\n  addr: :30000\n").http_addr == ":30000");
  CHECK(MustParse(std::string(kMinimal) + "http:\n  addr: \"[::1]:80\"\n").http_addr ==
        "[::1]:80");
}

TEST_CASE("config: null values and empty sections keep defaults") {
  Config c = MustParse("dir: /d\ndata:\nhttp:\n  addr:\nlease:\n  type: static\n  candidate:\n");
  CHECK(c.data_dir == "/d/.litefs");
  CHECK(c.http_addr == ":20202");
  CHECK(c.lease.candidate == true);
}

TEST_CASE("config: fuse.dir is an alias of dir") {
  Config c = MustParse("fuse:\n  dir: /mnt/db\nlease:\n  type: static\n");
  CHECK(c.dir == "/mnt/db");
  CHECK(c.data_dir == "/mnt/db/.litefs");
  CHECK(c.warnings.empty());

  Config same = MustParse("dir: /mnt/db/\nfuse:\n  dir: /mnt//db\nlease:\n  type: static\n");
  CHECK(same.dir == "/mnt/db");

  CHECK(ParseError("dir: /a\nfuse:\n  dir: /b\nlease:\n  type: static\n") ==
        "dir \"/a\" and fuse.dir \"/b\" are both set and differ (fuse.dir is an alias of dir)");
}

TEST_CASE("config: relative paths resolve against the working directory") {
  TempDir tmp;
  CwdGuard cwd;
  fs::current_path(tmp.path);
  const std::string base = fs::current_path().string();
  Config c = MustParse("dir: ./app/../db\ndata:\n  dir: state/\nlease:\n  type: static\n");
  CHECK(c.dir == base + "/db");
  CHECK(c.data_dir == base + "/state");
}

TEST_CASE("config: unknown keys are errors naming the full key and line") {
  TempDir tmp;
  const std::string path = tmp.path + "/litefs.yml";
  WriteFile(path,
            "dir: /litefs\n"
            "data:\n"
            "  dir: /var/lib/litefs\n"
            "lease:\n"
            "  type: static\n"
            "  hostname: a\n"
            "  cnadidate: true\n");
  Result<Config> r = litefs::LoadConfig(path);
  REQUIRE_FALSE(r.ok());
  CHECK(r.message() == "unknown config key \"lease.cnadidate\" in " + path + " line 7");

  CHECK(ParseError("dir: /d\nlease:\n  type: static\nproxy:\n  targte: localhost:8080\n") ==
        "unknown config key \"proxy.targte\" at line 5");
  CHECK(ParseError("dir: /d\nlease:\n  type: static\n  consl:\n    url: http://c:8500\n") ==
        "unknown config key \"lease.consl\" at line 4");
  CHECK(ParseError("dir: /d\ndata:\n  retension: 10m\nlease:\n  type: static\n") ==
        "unknown config key \"data.retension\" at line 3");
  CHECK(ParseError("dir: /d\nexce: app\nlease:\n  type: static\n") ==
        "unknown config key \"exce\" at line 2");
  CHECK(ParseError("dir: /d\nlog:\n  timestmp: true\nlease:\n  type: static\n") ==
        "unknown config key \"log.timestmp\" at line 3");
}

TEST_CASE("config: data.retention and its monitor interval") {
  Result<Config> d = litefs::ParseConfig("dir: /d\nlease:\n  type: static\n", false);
  REQUIRE(d.ok());
  CHECK(d->data_retention == std::chrono::minutes(10));  // LiteFS's defaults
  CHECK(d->data_retention_monitor_interval == std::chrono::minutes(1));
  Result<Config> c = litefs::ParseConfig(
      "dir: /d\ndata:\n  retention: 90s\n  retention-monitor-interval: 500ms\n"
      "lease:\n  type: static\n", false);
  REQUIRE_MESSAGE(c.ok(), c.message());
  CHECK(c->data_retention == std::chrono::seconds(90));
  CHECK(c->data_retention_monitor_interval == std::chrono::milliseconds(500));
  CHECK(ParseError("dir: /d\ndata:\n  retention-monitor-interval: 0s\nlease:\n  type: static\n") ==
        "data.retention-monitor-interval must be positive");
}

TEST_CASE("config: duplicate keys are errors") {
  CHECK(ParseError("dir: /d\nlease:\n  type: static\n  type: static\n") ==
        "duplicate config key \"lease.type\" at line 4");
}

TEST_CASE("config: wrong types name the key") {
  CHECK(ParseError("dir: /d\ndata:\n  compress: yes please\nlease:\n  type: static\n") ==
        "data.compress: expected a boolean, got 'yes please' (at line 3)");
  CHECK(ParseError("dir: [a, b]\nlease:\n  type: static\n") ==
        "dir: expected a string, got a list (at line 1)");
  CHECK(ParseError("dir: /d\nlease: static\n") ==
        "lease: expected a map of keys, got 'static' (at line 2)");
  CHECK(ParseError("- a\n- b\n") == "config must be a map of keys, got a list (at line 1)");
  CHECK(ParseError("dir: /d\nlease:\n  type: static\n  reconnect-delay: 10\n") ==
        "lease.reconnect-delay: missing unit in duration \"10\" (at line 4)");
  CHECK(ParseError("dir: /d\nlease:\n  type: static\n  reconnect-delay: -1s\n") ==
        "lease.reconnect-delay must not be negative");
  // YAML 1.1 booleans that yaml-cpp accepts.
  CHECK(MustParse("dir: /d\ndata:\n  compress: off\nlease:\n  type: static\n").data_compress ==
        false);
}

TEST_CASE("config: YAML syntax errors name the file") {
  const std::string msg = ParseError("dir: /d\nlease: [\n");
  CHECK(msg.rfind("parse config: yaml-cpp: error at line", 0) == 0);
}

TEST_CASE("config: required and validated values") {
  CHECK(ParseError("lease:\n  type: static\n") ==
        "dir is required (fuse.dir is accepted as an alias)");
  CHECK(ParseError("") == "dir is required (fuse.dir is accepted as an alias)");
  CHECK(ParseError("dir: /d\n") == "lease.type is required (supported: static, etcd)");
  CHECK(ParseError("dir: /d\nlease:\n  type: consul\n") ==
        "lease.type \"consul\" is not supported (supported: static, etcd)");
  CHECK(ParseError("dir: /d\nlease:\n  type: static\n  candidate: false\n") ==
        "lease.advertise-url is required on a replica: it names the primary's API URL");
  CHECK(ParseError("dir: /d\nlease:\n  type: static\n  candidate: false\n"
                   "  advertise-url: https://primary:20202\n") ==
        "lease.advertise-url \"https://primary:20202\" must be an http:// URL "
        "(e.g. http://primary:20202)");
  CHECK(ParseError("dir: /d\nhttp:\n  addr: 20202\nlease:\n  type: static\n") ==
        "http.addr: invalid address \"20202\": missing port (expected [host]:port)");
  CHECK(ParseError("dir: /d\nhttp:\n  addr: \":70000\"\nlease:\n  type: static\n") ==
        "http.addr: invalid address \":70000\": port must be 0..65535 (expected [host]:port)");
  CHECK(ParseError("dir: /d\ndata:\n  dir: /d/\nlease:\n  type: static\n") ==
        "data.dir must differ from dir (both are \"/d\")");
  CHECK(ParseError("dir: /d\nlog:\n  format: xml\nlease:\n  type: static\n") ==
        "log.format \"xml\" is not supported (supported: text, json)");
}

TEST_CASE("config: etcd lease keys and their defaults") {
  Config c = MustParse(
      "dir: /d\n"
      "http:\n  addr: \":20300\"\n"
      "lease:\n"
      "  type: etcd\n"
      "  hostname: node-a\n"
      "  promote: true\n"
      "  etcd:\n"
      "    endpoints: [\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379/\"]\n"
      "    key: apps/db/primary\n"
      "    ttl: 5s\n"
      "    lock-delay: 250ms\n",
      false);
  CHECK(c.lease.type == "etcd");
  CHECK(c.lease.promote);
  REQUIRE(c.lease.etcd.endpoints.size() == 2);
  CHECK(c.lease.etcd.endpoints[0] == "http://10.0.0.1:2379");
  CHECK(c.lease.etcd.endpoints[1] == "http://10.0.0.2:2379/");
  CHECK(c.lease.etcd.key == "apps/db/primary");
  CHECK(c.lease.etcd.ttl == std::chrono::seconds(5));
  CHECK(c.lease.etcd.lock_delay == std::chrono::milliseconds(250));
  // This node's advertise URL defaults to its hostname and API port.
  CHECK(c.lease.advertise_url == "http://node-a:20300");

  Config tls = MustParse("dir: /d\nlease:\n  type: etcd\n  etcd:\n    endpoints: [\"https://e:2379\"]\n"
                         "    ca-file: /etc/hostname\n    cert-file: /etc/hostname\n    key-file: /etc/hostname\n", false);
  CHECK(tls.lease.etcd.endpoints == std::vector<std::string>{"https://e:2379"});
  CHECK(tls.lease.etcd.ca_file == "/etc/hostname");
  CHECK(tls.lease.etcd.key_file == "/etc/hostname");

  Config d = MustParse("dir: /d\nlease:\n  type: etcd\n  etcd:\n    endpoints: http://e:2379\n", false);
  CHECK(d.lease.etcd.endpoints == std::vector<std::string>{"http://e:2379"});
  CHECK(d.lease.etcd.key == "litefs/primary");
  CHECK(d.lease.etcd.ttl == std::chrono::seconds(10));
  CHECK(d.lease.etcd.lock_delay == std::chrono::seconds(1));
  CHECK_FALSE(d.lease.promote);
  CHECK_FALSE(d.lease.hostname.empty());  // the OS hostname
  CHECK(d.lease.advertise_url == "http://" + d.lease.hostname + ":20202");
}

TEST_CASE("config: etcd lease errors") {
  const std::string head = "dir: /d\nlease:\n  type: etcd\n";
  CHECK(ParseError(head) ==
        "lease.etcd.endpoints is required with lease.type etcd (e.g. [\"http://127.0.0.1:2379\"])");
  CHECK(ParseError(head + "  etcd:\n    endpoints: [\"127.0.0.1:2379\"]\n") ==
        "lease.etcd.endpoints: \"127.0.0.1:2379\" must start with http:// or https://");
  CHECK(ParseError(head + "  etcd:\n    endpoints: [\"http://e\"]\n") ==
        "lease.etcd.endpoints: \"http://e\" must be http(s)://host:port (e.g. http://127.0.0.1:2379)");
  const std::string tls = "  etcd:\n    endpoints: [\"https://e:2379\"]\n";
  CHECK(ParseError(head + tls + "    password: secret\n") == "lease.etcd.password needs lease.etcd.username");
  CHECK(ParseError(head + tls + "    cert-file: /etc/hostname\n") ==
        "lease.etcd.cert-file and lease.etcd.key-file go together");
  CHECK(ParseError(head + tls + "    ca-file: /nonexistent/ca.pem\n") ==
        "lease.etcd.ca-file: cannot read /nonexistent/ca.pem: No such file or directory");
  CHECK(ParseError(head + "  etcd:\n    endpoints: [\"http://e:2379/v3\"]\n") ==
        "lease.etcd.endpoints: \"http://e:2379/v3\" must not have a path");
  CHECK(ParseError(head + "  etcd:\n    endpoints: {a: b}\n").rfind(
            "lease.etcd.endpoints: expected a list of strings, got a map", 0) == 0);
  const std::string ok = "  etcd:\n    endpoints: [\"http://e:2379\"]\n";
  CHECK(ParseError(head + ok + "    ttl: 1s\n") ==
        "lease.etcd.ttl must be whole seconds, at least 2s (etcd's minimum)");
  CHECK(ParseError(head + ok + "    ttl: 2500ms\n") ==
        "lease.etcd.ttl must be whole seconds, at least 2s (etcd's minimum)");
  CHECK(ParseError(head + ok + "    lock-delay: -1s\n") == "lease.etcd.lock-delay must not be negative");
  CHECK(ParseError(head + ok + "    key: \"\"\n") == "lease.etcd.key must not be empty");
  CHECK(ParseError(head + ok + "    tll: 5s\n").rfind("unknown config key \"lease.etcd.tll\"", 0) == 0);
  CHECK(ParseError(head + "  candidate: false\n  promote: true\n" + ok) ==
        "lease.promote needs lease.candidate: true");
  CHECK(ParseError("dir: /d\nlease:\n  type: static\n  promote: true\n") ==
        "lease.promote needs lease.type etcd");
  CHECK(ParseError("dir: /d\nlease:\n  type: static\n" + ok) ==
        "lease.etcd is only used with lease.type etcd");
}

TEST_CASE("config: LoadConfig on a missing file") {
  TempDir tmp;
  Result<Config> r = litefs::LoadConfig(tmp.path + "/nope.yml");
  REQUIRE_FALSE(r.ok());
  CHECK(r.message() == "config file not found: " + tmp.path + "/nope.yml");
}

TEST_CASE("config: environment expansion in the file") {
  EnvGuard g1("LITEFS_TEST_DIR"), g2("LITEFS_TEST_ROLE"), g3("LITEFS_TEST_PRIMARY"),
      g4("LITEFS_TEST_COMMENT"), g5("LITEFS_TEST_UNSET");
  setenv("LITEFS_TEST_DIR", "/srv/db", 1);
  setenv("LITEFS_TEST_ROLE", "replica", 1);
  setenv("LITEFS_TEST_PRIMARY", "node-a", 1);
  unsetenv("LITEFS_TEST_UNSET");

  Config c = MustParse(
      "dir: ${LITEFS_TEST_DIR}\n"
      "data:\n"
      "  dir: $LITEFS_TEST_DIR/state$LITEFS_TEST_UNSET\n"
      "lease:\n"
      "  type: static\n"
      "  candidate: ${ LITEFS_TEST_ROLE != 'replica' }\n"
      "  hostname: ${LITEFS_TEST_PRIMARY}\n"
      "  advertise-url: http://${LITEFS_TEST_PRIMARY}:20202\n");
  CHECK(c.dir == "/srv/db");
  CHECK(c.data_dir == "/srv/db/state");
  CHECK(c.lease.candidate == false);
  CHECK(c.lease.hostname == "node-a");
  CHECK(c.lease.advertise_url == "http://node-a:20202");

  // Expansion runs on the raw text, comments included: a value with a newline
  // injected through a comment becomes a (here unknown) key.
  setenv("LITEFS_TEST_COMMENT", "harmless\nsurprise: 1", 1);
  CHECK(ParseError(std::string(kMinimal) + "# note: $LITEFS_TEST_COMMENT\n") ==
        "unknown config key \"surprise\" at line 5");

  // Without expansion, '$' stays literal.
  Config raw = MustParse("dir: /x/$LITEFS_TEST_DIR\nlease:\n  type: static\n", false);
  CHECK(raw.dir == "/x/$LITEFS_TEST_DIR");
}

TEST_CASE("config: HOSTNAME is set from the OS when empty") {
  EnvGuard g("HOSTNAME");
  unsetenv("HOSTNAME");
  char name[256] = {};
  REQUIRE(gethostname(name, sizeof(name) - 1) == 0);
  Config c = MustParse(std::string(kMinimal) + "  hostname: ${HOSTNAME}\n");
  CHECK(c.lease.hostname == name);
  setenv("HOSTNAME", "explicit-host", 1);
  Config c2 = MustParse(std::string(kMinimal) + "  hostname: $HOSTNAME\n");
  CHECK(c2.lease.hostname == "explicit-host");
}

TEST_CASE("env expansion: forms and comparisons") {
  const std::map<std::string, std::string> env = {
      {"A", "x"}, {"B", "x"}, {"C", "y"}, {"EMPTY", ""}, {"WITH SPACE", "ws"}};
  auto lookup = [&](const std::string& name) {
    auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  };
  auto expand = [&](std::string_view s) { return litefs::ExpandEnv(s, lookup); };
  CHECK(expand("plain text") == "plain text");
  CHECK(expand("$A") == "x");
  CHECK(expand("${A}") == "x");
  CHECK(expand("a-$A-b") == "a-x-b");
  CHECK(expand("$Ab") == "");  // the name is "Ab": unset
  CHECK(expand("${A}b") == "xb");
  CHECK(expand("$UNSET|${UNSET}") == "|");
  CHECK(expand("${ A }") == "x");
  CHECK(expand("${A == 'x'}") == "true");
  CHECK(expand("${A=='y'}") == "false");
  CHECK(expand("${A != 'x'}") == "false");
  CHECK(expand("${ C != \"x\" }") == "true");
  CHECK(expand("${A == \"x\"}") == "true");
  CHECK(expand("${EMPTY == ''}") == "true");
  CHECK(expand("${UNSET == ''}") == "true");
  CHECK(expand("${A == B}") == "true");
  CHECK(expand("${A == C}") == "false");
  CHECK(expand("${A != C}") == "true");
  CHECK(expand("${A == 'it's'}") == "false");  // greedy quotes, like the regexp
  CHECK(expand("${A == x y}") == "");            // no form matches: lookup of the text
  CHECK(expand("${WITH SPACE}") == "ws");
  CHECK(expand("cost: 5$") == "cost: 5$");  // trailing '$' kept
  CHECK(expand("a $ b") == "a $ b");        // '$' without a name kept
  CHECK(expand("a ${} b") == "a  b");       // bad syntax eaten
  CHECK(expand("a ${A") == "a A");          // unterminated: "${" eaten
  CHECK(expand("$1$$") == "");              // special one-character names
  CHECK(expand("${1}") == "");
}

TEST_CASE("durations: Go syntax") {
  struct Case {
    const char* text;
    int64_t ms;
  };
  const Case ok[] = {
      {"0", 0},           {"-0", 0},         {"+0", 0},          {"10s", 10000},
      {"1m", 60000},      {"500ms", 500},    {"1h30m", 5400000}, {"1.5s", 1500},
      {".5s", 500},       {"1.s", 1000},     {"2h45m30.5s", 9930500},
      {"-2s", -2000},     {"+3m", 180000},   {"1500us", 1},      {"1500\xC2\xB5s", 1},
      {"1500\xCE\xBCs", 1}, {"999999ns", 0}, {"1000000ns", 1},   {"0s", 0},
      {"0.001s", 1},      {"2562047h", 2562047LL * 3600 * 1000},
  };
  for (const Case& c : ok) {
    Result<Duration> d = litefs::ParseGoDuration(c.text);
    INFO(c.text << ": " << d.message());
    REQUIRE(d.ok());
    CHECK(d->count() == c.ms);
  }
  const std::pair<const char*, const char*> bad[] = {
      {"", "invalid duration \"\""},
      {"10", "missing unit in duration \"10\""},
      {"1x", "unknown unit \"x\" in duration \"1x\""},
      {"-", "invalid duration \"-\""},
      {"s", "invalid duration \"s\""},
      {".s", "invalid duration \".s\""},
      {"1.5", "missing unit in duration \"1.5\""},
      {"1s 2s", "unknown unit \"s \" in duration \"1s 2s\""},
      {"3000000h", "invalid duration \"3000000h\""},  // beyond int64 nanoseconds
      {"1S", "unknown unit \"S\" in duration \"1S\""},
  };
  for (const auto& [text, message] : bad) {
    Result<Duration> d = litefs::ParseGoDuration(text);
    INFO(text);
    REQUIRE_FALSE(d.ok());
    CHECK(d.message() == message);
  }
}

TEST_CASE("durations: Go formatting") {
  CHECK(litefs::FormatGoDuration(Duration(0)) == "0s");
  CHECK(litefs::FormatGoDuration(Duration(500)) == "500ms");
  CHECK(litefs::FormatGoDuration(Duration(1500)) == "1.5s");
  CHECK(litefs::FormatGoDuration(Duration(1000)) == "1s");
  CHECK(litefs::FormatGoDuration(Duration(5400000)) == "1h30m0s");
  CHECK(litefs::FormatGoDuration(Duration(61010)) == "1m1.01s");
  CHECK(litefs::FormatGoDuration(Duration(-2000)) == "-2s");
}

TEST_CASE("ParseHostPort") {
  auto ok = [](std::string_view addr, const std::string& host, int port) {
    auto r = litefs::ParseHostPort(addr);
    INFO(addr << ": " << r.message());
    REQUIRE(r.ok());
    CHECK(r->first == host);
    CHECK(r->second == port);
  };
  ok(":20202", "", 20202);
  ok("127.0.0.1:0", "127.0.0.1", 0);
  ok("[::1]:80", "::1", 80);
  ok("localhost:65535", "localhost", 65535);
  ok("0.0.0.0:00080", "0.0.0.0", 80);

  auto bad = [](std::string_view addr, const std::string& why) {
    auto r = litefs::ParseHostPort(addr);
    INFO(addr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.message() ==
          "invalid address \"" + std::string(addr) + "\": " + why + " (expected [host]:port)");
  };
  bad("", "missing port");
  bad("localhost", "missing port");
  bad("localhost:", "missing port");
  bad(":65536", "port must be 0..65535");
  bad(":99999999999999999999", "port must be 0..65535");
  bad(":-1", "port must be a number");
  bad(":http", "port must be a number");
  bad("::1:80", "too many colons (write an IPv6 host in brackets)");
  bad("[::1", "missing ']'");
  bad("[::1]", "missing port");
  bad("[::1]80", "missing port");
  bad("[]:80", "empty host in brackets");
  bad("a]:80", "unexpected bracket");
}

TEST_CASE("FindConfigFile: explicit path, then ./, $HOME, /etc") {
  TempDir work, home;
  CwdGuard cwd;
  EnvGuard home_env("HOME");
  fs::current_path(work.path);
  setenv("HOME", home.path.c_str(), 1);

  auto missing = litefs::FindConfigFile(std::string(work.path + "/custom.yml"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.message() == "config file not found: " + work.path + "/custom.yml");
  WriteFile(work.path + "/custom.yml", kMinimal);
  auto explicit_found = litefs::FindConfigFile(std::string(work.path + "/custom.yml"));
  REQUIRE(explicit_found.ok());
  CHECK(*explicit_found == work.path + "/custom.yml");

  const bool etc_exists = fs::exists("/etc/litefs.yml");
  auto none = litefs::FindConfigFile(std::nullopt);
  if (etc_exists) {
    CHECK(*none == "/etc/litefs.yml");
  } else {
    REQUIRE_FALSE(none.ok());
    CHECK(none.message() == "no config file found (tried ./litefs.yml, " + home.path +
                                "/litefs.yml, /etc/litefs.yml)");
  }

  WriteFile(home.path + "/litefs.yml", kMinimal);
  auto in_home = litefs::FindConfigFile(std::nullopt);
  REQUIRE(in_home.ok());
  CHECK(*in_home == home.path + "/litefs.yml");

  WriteFile(work.path + "/litefs.yml", kMinimal);
  auto in_cwd = litefs::FindConfigFile(std::nullopt);
  REQUIRE(in_cwd.ok());
  CHECK(*in_cwd == "./litefs.yml");
  CHECK(litefs::LoadConfig(*in_cwd).ok());
}

TEST_CASE("config: proxy keys, defaults and validation") {
  Config c = MustParse(std::string(kMinimal) +
                       "proxy:\n"
                       "  addr: \":8080\"\n"
                       "  target: \"localhost:8081\"\n"
                       "  db: app.db\n"
                       "  max-lag: 3s\n"
                       "  debug: true\n"
                       "  passthrough: [\"/static/*\", \"*.png\"]\n"
                       "  always-forward: \"/admin/*\"\n"
                       "  primary-redirect-timeout: 2s\n"
                       "  read-timeout: 1s\n"
                       "  read-header-timeout: 4s\n"
                       "  idle-timeout: 1m\n"
                       "  txid-timeout: 7s\n"
                       "  cookie-expiry: 1h\n"
                       "  mode: fly-replay\n",
                       false);
  CHECK(c.proxy.addr == ":8080");
  CHECK(c.proxy.target == "localhost:8081");
  CHECK(c.proxy.db == "app.db");
  CHECK(c.proxy.max_lag == std::chrono::seconds(3));
  CHECK(c.proxy.debug);
  CHECK(c.proxy.passthrough == std::vector<std::string>{"/static/*", "*.png"});
  CHECK(c.proxy.always_forward == std::vector<std::string>{"/admin/*"});
  CHECK(c.proxy.primary_redirect_timeout == std::chrono::seconds(2));
  CHECK(c.proxy.read_header_timeout == std::chrono::seconds(4));
  CHECK(c.proxy.idle_timeout == std::chrono::minutes(1));
  CHECK(c.proxy.txid_timeout == std::chrono::seconds(7));
  CHECK(c.proxy.cookie_expiry == std::chrono::hours(1));
  CHECK(c.proxy.mode == "fly-replay");
  // Default advertise URL: this host's name with the proxy's port.
  CHECK(c.proxy.advertise_url == "http://localhost:8080");
  CHECK(c.proxy.read_timeout == std::chrono::seconds(1));
  CHECK(c.warnings.empty());

  Config d = MustParse(std::string(kMinimal) + "  hostname: node-a\nproxy:\n  addr: \":9\"\n  target: \"a:1\"\n  db: x\n", false);
  CHECK(d.proxy.advertise_url == "http://node-a:9");
  CHECK(d.proxy.mode == "forward");
  CHECK(d.proxy.max_lag == std::chrono::seconds(10));
  CHECK(d.proxy.txid_timeout == std::chrono::seconds(5));
  CHECK(d.proxy.cookie_expiry == std::chrono::minutes(5));
  CHECK(d.proxy.idle_timeout == std::chrono::seconds(30));

  CHECK(ParseError(std::string(kMinimal) + "proxy:\n  target: \"a:1\"\n  db: x\n") ==
        "proxy.addr is required when proxy.target is set");
  CHECK(ParseError(std::string(kMinimal) + "proxy:\n  addr: \":1\"\n  target: \"a:1\"\n") ==
        "proxy.db is required when proxy.target is set");
  CHECK(ParseError(std::string(kMinimal) + "proxy:\n  addr: \":1\"\n  target: \"nope\"\n  db: x\n").find(
            "proxy.target \"nope\" must be host:port") != std::string::npos);
  CHECK(ParseError(std::string(kMinimal) + "proxy:\n  addr: \":1\"\n  target: \"a:1\"\n  db: x\n  mode: magic\n")
            .find("proxy.mode \"magic\" is not supported") != std::string::npos);
  CHECK(ParseError(std::string(kMinimal) + "proxy:\n  adr: \":1\"\n").find("unknown config key \"proxy.adr\"") !=
        std::string::npos);
  CHECK(ParseError(std::string(kMinimal) + "proxy:\n  addr: \":1\"\n  target: \"a:1\"\n  db: x\n  txid-timeout: -1s\n") ==
        "proxy.txid-timeout must not be negative");
  CHECK(ParseError(std::string(kMinimal) + "proxy:\n  addr: \":1\"\n  target: \"a:1\"\n  db: x\n  max-connections: -1\n")
            .find("proxy.max-connections: expected a positive number") != std::string::npos);
}

TEST_CASE("config: exec as a string or a list with if-candidate; skip-sync") {
  Config a = MustParse(std::string(kMinimal) + "exec: \"myapp -port 8081\"\nskip-sync: true\n", false);
  REQUIRE(a.exec.size() == 1);
  CHECK(a.exec[0].cmd == "myapp -port 8081");
  CHECK_FALSE(a.exec[0].if_candidate);
  CHECK(a.skip_sync);
  Config b = MustParse(std::string(kMinimal) +
                           "exec:\n  - cmd: \"migrate up\"\n    if-candidate: true\n  - \"serve\"\n",
                       false);
  REQUIRE(b.exec.size() == 2);
  CHECK(b.exec[0].cmd == "migrate up");
  CHECK(b.exec[0].if_candidate);
  CHECK(b.exec[1].cmd == "serve");
  CHECK(ParseError(std::string(kMinimal) + "exec:\n  - if-candidate: true\n") == "exec[0].cmd is required");
  CHECK(ParseError(std::string(kMinimal) + "exec:\n  - cmd: x\n    when: y\n").find("unknown config key \"exec[0].when\"") !=
        std::string::npos);
}
