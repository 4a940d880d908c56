// Tests of ValidateDbName (sidecar/database.h).
#include <doctest.h>

#include <string>
#include <vector>

#include "sidecar/database.h"

namespace litefs {
namespace {

void CheckRejected(std::string_view name, const std::string& problem) {
  CAPTURE(std::string(name));
  Status st = ValidateDbName(name);
  REQUIRE_FALSE(st.ok());
  CHECK(st.message().find("invalid database name") != std::string::npos);
  CHECK_MESSAGE(st.message().find(problem) != std::string::npos, st.message());
}

TEST_CASE("ValidateDbName accepts plain file names") {
  for (std::string name : std::vector<std::string>{"app.db", "x", "my-data_1.sqlite3", "x-journal.db", "wal", "a..b",
                           "db-journalx", std::string(255, 'n')}) {
    CAPTURE(name);
    Status st = ValidateDbName(name);
    CHECK_MESSAGE(st.ok(), st.message());
  }
}

TEST_CASE("ValidateDbName rejects names that are not a plain, visible, non-side file") {
  CheckRejected("", "empty");
  CheckRejected(".", "not a file name");
  CheckRejected("..", "not a file name");
  CheckRejected("a/b", "contains '/'");
  CheckRejected("/abs.db", "contains '/'");
  CheckRejected("dir/", "contains '/'");
  CheckRejected(std::string_view("a\0b", 3), "contains NUL");
  CheckRejected(std::string_view("\0", 1), "contains NUL");
  CheckRejected(".hidden", "hidden");
  CheckRejected(".litefs.sock", "hidden");
  for (const char* suffix : {"-journal", "-wal", "-shm", "-pos", "-lock"}) {
    CheckRejected(std::string("x") + suffix, "reserved suffix");
    CheckRejected(std::string("app.db") + suffix, "reserved suffix");
  }
  CheckRejected(std::string(256, 'n'), "longer than 255 bytes");
  CheckRejected(std::string(10000, 'n'), "longer than 255 bytes");
}

}  // namespace
}  // namespace litefs
