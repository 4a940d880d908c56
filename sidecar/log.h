// The sidecar's log: one line per event on stderr (or log.file), as text
// ("2026-11-26T04:00:00.123Z INFO  message key=value") or as JSON objects
// ({"time":...,"level":"INFO","msg":...,"key":"value"}). Thread-safe.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "ltx/status.h"

namespace litefs::log {

enum class Level { kDebug, kInfo, kWarn, kError };

void Configure(bool json, bool debug);
bool DebugEnabled();
// Logs go to `path` (appended) instead of stderr; "" returns to stderr.
Status SetFile(const std::string& path);
// Opens log.file again (after logrotate moved it); SIGHUP calls this.
Status Reopen();

using Field = std::pair<std::string_view, std::string>;
void Write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});

inline void Debug(std::string_view msg, std::initializer_list<Field> f = {}) {
  if (DebugEnabled()) Write(Level::kDebug, msg, f);
}
inline void Info(std::string_view msg, std::initializer_list<Field> f = {}) {
  Write(Level::kInfo, msg, f);
}
inline void Warn(std::string_view msg, std::initializer_list<Field> f = {}) {
  Write(Level::kWarn, msg, f);
}
inline void Error(std::string_view msg, std::initializer_list<Field> f = {}) {
  Write(Level::kError, msg, f);
}

}  // namespace litefs::log
