// See hot_journal.h.
#include "sidecar/hot_journal.h"

#include <sqlite3.h>

namespace litefs {

Status RollBackHotJournal(const std::string& db_path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix");
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    rc = sqlite3_exec(db, "PRAGMA schema_version", nullptr, nullptr, nullptr);
  }
  Status st;
  if (rc != SQLITE_OK) {
    st = Status::Error("roll back the hot journal of " + db_path + ": " +
                       (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
  }
  sqlite3_close(db);
  return st;
}

}  // namespace litefs
