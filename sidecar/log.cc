// See log.h.
#include "sidecar/log.h"

#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

#include <nlohmann/json.hpp>

namespace litefs::log {
namespace {

std::atomic<bool> g_json{false};
std::atomic<bool> g_debug{false};
std::mutex g_mu;
FILE* g_out = stderr;     // guarded by g_mu
std::string g_path;       // log.file, "" for stderr

const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO";
    case Level::kWarn: return "WARN";
    case Level::kError: return "ERROR";
  }
  return "?";
}

std::string Timestamp() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char buf[64];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(tv.tv_usec / 1000));
  return buf;
}

bool NeedsQuotes(const std::string& v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c < 0x20) return true;
  }
  return false;
}

}  // namespace

void Configure(bool json, bool debug) {
  g_json = json;
  g_debug = debug;
}

bool DebugEnabled() { return g_debug; }

Status SetFile(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_path = path;
  if (path.empty()) {
    if (g_out != stderr) fclose(g_out);
    g_out = stderr;
    return Status();
  }
  FILE* f = fopen(path.c_str(), "ae");
  if (f == nullptr) return Status::Error("open log file " + path + ": " + std::strerror(errno));
  if (g_out != stderr) fclose(g_out);
  g_out = f;
  return Status();
}

Status Reopen() {
  std::string path;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    path = g_path;
  }
  if (path.empty()) return Status();  // stderr belongs to whoever started us
  return SetFile(path);
}

void Write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  std::string line;
  if (g_json) {
    nlohmann::json j;
    j["time"] = Timestamp();
    j["level"] = LevelName(level);
    j["msg"] = std::string(msg);
    for (const Field& f : fields) j[std::string(f.first)] = f.second;
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    char head[64];
    snprintf(head, sizeof head, "%s %-5s ", Timestamp().c_str(), LevelName(level));
    line = head;
    line.append(msg);
    for (const Field& f : fields) {
      line += ' ';
      line.append(f.first);
      line += '=';
      if (NeedsQuotes(f.second)) {
        line += nlohmann::json(f.second).dump(-1, ' ', false,
                                              nlohmann::json::error_handler_t::replace);
      } else {
        line += f.second;
      }
    }
  }
  line += '\n';
  std::lock_guard<std::mutex> lock(g_mu);
  fwrite(line.data(), 1, line.size(), g_out);
  fflush(g_out);
}

}  // namespace litefs::log
