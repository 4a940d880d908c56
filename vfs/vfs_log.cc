// See vfs_log.h.
#include "vfs/vfs_log.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>


namespace litefs::vfs {
namespace {

void (*g_sqlite_log)(int, const char*, ...) = nullptr;
std::mutex g_mu;
std::string g_last_message;
time_t g_last_time = 0;
constexpr time_t kRepeatSuppressSeconds = 5;

}  // namespace

void SetSqliteLog(void (*log)(int, const char*, ...)) { g_sqlite_log = log; }

void LogWarning(int sqlite_code, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  {
    std::lock_guard<std::mutex> lock(g_mu);
    time_t now = time(nullptr);
    if (g_last_message == buf && now - g_last_time < kRepeatSuppressSeconds) return;
    g_last_message = buf;
    g_last_time = now;
  }
  fprintf(stderr, "litefs: %s\n", buf);
  if (g_sqlite_log) g_sqlite_log(sqlite_code, "litefs: %s", buf);
}

}  // namespace litefs::vfs
