// See metrics.h.
#include "sidecar/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>

#include "sidecar/store.h"

namespace litefs {
namespace {

void AppendNumber(std::string& out, double v) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.17g", v);
  out += buf;
}

void Family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void Sample(std::string& out, std::string_view name, double v) {
  out += name;
  out += ' ';
  AppendNumber(out, v);
  out += '\n';
}

void Gauge(std::string& out, std::string_view name, std::string_view help, double v) {
  Family(out, name, "gauge", help);
  Sample(out, name, v);
}

// One series per database: name{db="..."} value.
template <typename F>
void PerDb(std::string& out, const std::vector<Database*>& dbs, std::string_view name,
           std::string_view type, std::string_view help, F value) {
  Family(out, name, type, help);
  for (Database* db : dbs) {
    out += name;
    out += "{db=\"";
    out += EscapeLabelValue(db->name());
    out += "\"} ";
    AppendNumber(out, value(*db));
    out += '\n';
  }
}

// Resident set size (bytes) and open descriptors of this process.
uint64_t ResidentBytes() {
  FILE* f = fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  int n = fscanf(f, "%llu %llu", &size, &resident);
  fclose(f);
  return n == 2 ? resident * uint64_t(sysconf(_SC_PAGESIZE)) : 0;
}

size_t OpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return 0;
  size_t n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n > 3 ? n - 3 : 0;  // ".", ".." and the directory's own descriptor
}

}  // namespace

void LatencyHistogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) i++;
  if (i < kBounds.size()) buckets_[i]++;  // above the last bound: only +Inf
  count_++;
  sum_ += seconds;
}

void LatencyHistogram::Render(std::string& out, std::string_view name, std::string_view help) const {
  Family(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); i++) {
    cumulative += buckets_[i];
    out += name;
    out += "_bucket{le=\"";
    char bound[32];
    snprintf(bound, sizeof bound, "%g", kBounds[i]);
    out += bound;
    out += "\"} ";
    out += std::to_string(cumulative);
    out += '\n';
  }
  out += name;
  out += "_bucket{le=\"+Inf\"} ";
  out += std::to_string(count_);
  out += '\n';
  Sample(out, std::string(name) + "_sum", sum_);
  Sample(out, std::string(name) + "_count", double(count_));
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string RenderMetrics(Store& store, const NodeMetrics* metrics, const NodeGauges& gauges) {
  std::string out;
  std::vector<Database*> dbs = store.All();
  Gauge(out, "litefs_db_count", "Number of databases.", double(dbs.size()));
  Gauge(out, "litefs_is_primary", "1 if this node is the primary.", store.is_primary() ? 1 : 0);
  Gauge(out, "litefs_subscriber_count", "Number of connected replication streams.",
        double(gauges.stream_count));
  Gauge(out, "litefs_http_stream_count", "Number of open /stream requests being served.",
        double(gauges.stream_count));
  Gauge(out, "litefs_event_subscriber_count", "Number of open /events responses.",
        double(gauges.event_subscribers));
  Gauge(out, "litefs_lag_seconds", "Replication lag behind the primary, as in <dir>/.lag.",
        gauges.lag_seconds);
  PerDb(out, dbs, "litefs_db_txid", "gauge", "Current transaction ID.",
        [](Database& db) { return double(db.pos().txid); });
  PerDb(out, dbs, "litefs_db_commit_count", "counter", "Transactions committed on this node.",
        [](Database& db) { return double(db.commit_count()); });
  PerDb(out, dbs, "litefs_db_commit_message_count", "counter",
        "Commit messages from apps; async WAL commits made while a capture was already armed "
        "send none.",
        [](Database& db) { return double(db.commit_message_count()); });
  PerDb(out, dbs, "litefs_db_apply_count", "counter", "LTX files applied from the primary.",
        [](Database& db) { return double(db.apply_count()); });
  PerDb(out, dbs, "litefs_db_ltx_count", "gauge", "LTX files in the database's log.",
        [](Database& db) { return double(db.log().size()); });
  PerDb(out, dbs, "litefs_db_lag_seconds", "gauge",
        "Apply time minus the LTX timestamp of the last applied file; 0 after local commits.",
        [](Database& db) { return double(db.last_apply_lag_ms()) / 1000.0; });
  if (metrics) {
    metrics->commit.Render(out, "litefs_commit_duration_seconds",
                           "Sidecar commit path: commit message received to LTX durable and "
                           "position set.");
    metrics->apply.Render(out, "litefs_apply_duration_seconds",
                          "Replica apply path: received LTX complete to applied and position set.");
  }
  Gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
        double(ResidentBytes()));
  Gauge(out, "process_open_fds", "Number of open file descriptors.", double(OpenFds()));
  return out;
}

}  // namespace litefs
