// Diagnostics from liblitefs.so: one line on stderr prefixed "litefs: ",
// also passed to sqlite3_log so apps with an SQLite log callback see it.
// Repeats of the same message are suppressed for a few seconds so that a
// retrying app does not flood its own stderr.
#pragma once

namespace litefs::vfs {

// Also send messages to this sqlite3_log (of the SQLite the VFS serves).
void SetSqliteLog(void (*log)(int, const char*, ...));
void LogWarning(int sqlite_code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace litefs::vfs
