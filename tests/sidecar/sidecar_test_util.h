// Helpers shared by the sidecar unit tests: a temporary directory removed at
// the end of a test, whole-file reads and writes, thin wrappers over the
// sqlite3 C API that fail the test with SQLite's message, and page diffs.
#pragma once

#include <doctest.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "vfs/commit_protocol.h"

namespace litefs::test {

class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/sidecar_test_XXXXXX";
    const char* made = mkdtemp(templ);
    REQUIRE_MESSAGE(made != nullptr, "mkdtemp failed");
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

inline std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot open " << path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline std::string ReadText(const std::string& path) {
  std::vector<uint8_t> bytes = ReadBytes(path);
  return std::string(bytes.begin(), bytes.end());
}

inline void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  REQUIRE_MESSAGE(f.good(), "cannot create " << path);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  REQUIRE(f.good());
}

// Writes `bytes` at `offset` of an existing file, like a torn apply would.
inline void PwriteAt(const std::string& path, const std::vector<uint8_t>& bytes, uint64_t offset) {
  int fd = open(path.c_str(), O_WRONLY);
  REQUIRE_MESSAGE(fd >= 0, "open " << path);
  ssize_t n = pwrite(fd, bytes.data(), bytes.size(), off_t(offset));
  close(fd);
  REQUIRE(n == ssize_t(bytes.size()));
}

// A connection through the plain "unix" VFS, closed at scope exit.
class Sqlite {
 public:
  explicit Sqlite(const std::string& path, int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, "unix");
    REQUIRE_MESSAGE(rc == SQLITE_OK, "open " << path << ": " << sqlite3_errstr(rc));
  }
  ~Sqlite() { sqlite3_close(db_); }
  Sqlite(const Sqlite&) = delete;
  Sqlite& operator=(const Sqlite&) = delete;

  sqlite3* get() const { return db_; }

  void Exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    REQUIRE_MESSAGE(rc == SQLITE_OK, sql << ": " << msg);
  }

  // The first column of the first row, as text ("" when there is no row).
  std::string Text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr);
    REQUIRE_MESSAGE(rc == SQLITE_OK, sql << ": " << sqlite3_errmsg(db_));
    rc = sqlite3_step(stmt);
    std::string out;
    if (rc == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(stmt, 0);
      if (t) out = reinterpret_cast<const char*>(t);
      rc = sqlite3_step(stmt);
    }
    std::string msg = sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    REQUIRE_MESSAGE(rc == SQLITE_DONE, sql << ": " << msg);
    return out;
  }

  int64_t Int(const std::string& sql) { return std::stoll(Text(sql)); }

 private:
  sqlite3* db_ = nullptr;
};

// Inserts `rows` deterministic rows of about `width` bytes into `table`
// (created if missing), numbering them from `first`.
inline void FillTable(Sqlite& db, const std::string& table, int first, int rows, int width) {
  db.Exec("CREATE TABLE IF NOT EXISTS " + table + "(a INTEGER PRIMARY KEY, b TEXT)");
  db.Exec("WITH RECURSIVE c(x) AS (SELECT " + std::to_string(first) + " UNION ALL SELECT x+1 FROM c WHERE x<" +
          std::to_string(first + rows - 1) + ") INSERT INTO " + table +
          " SELECT x, printf('%s-%d-%." + std::to_string(width) + "c', '" + table +
          "', x, char(65 + x % 26)) FROM c");
}

// Everything `table` holds, as one string.
inline std::string Dump(Sqlite& db, const std::string& table) {
  return db.Text("SELECT count(*) || ':' || coalesce(group_concat(a || '=' || b, ','), '') FROM (SELECT * FROM " +
                 table + " ORDER BY a)");
}

// Byte ranges (in whole pages) where `after` differs from `before`,
// including every page past the end of `before`; adjacent pages coalesce.
inline std::vector<wire::ByteRange> ChangedRanges(const std::vector<uint8_t>& before,
                                                  const std::vector<uint8_t>& after,
                                                  uint32_t page_size) {
  std::vector<wire::ByteRange> out;
  for (size_t off = 0; off < after.size(); off += page_size) {
    size_t n = std::min<size_t>(page_size, after.size() - off);
    bool changed = off + n > before.size() ||
                   !std::equal(after.begin() + ptrdiff_t(off), after.begin() + ptrdiff_t(off + n),
                               before.begin() + ptrdiff_t(off));
    if (!changed) continue;
    if (!out.empty() && out.back().offset + out.back().length == off) {
      out.back().length += n;
    } else {
      out.push_back({off, n});
    }
  }
  return out;
}

// A forked child running `run(in, out)` with a command pipe (parent → child)
// and a reply pipe (child → parent); the child closes every other
// descriptor it inherited (other children's pipes, the parent's files) and
// exits when `run` returns.
struct ForkedChild {
  pid_t pid = -1;
  int cmd = -1;    // parent's write end
  int reply = -1;  // parent's read end
};
inline ForkedChild ForkChild(const std::function<void(int in, int out)>& run) {
  int to_child[2], from_child[2];
  REQUIRE(pipe(to_child) == 0);
  REQUIRE(pipe(from_child) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    for (int fd = 3; fd < 1024; fd++) {
      if (fd != to_child[0] && fd != from_child[1]) close(fd);
    }
    run(to_child[0], from_child[1]);
    _exit(0);
  }
  close(to_child[0]);
  close(from_child[1]);
  return {pid, to_child[1], from_child[0]};
}

// A WAL-mode database that never checkpoints; the connection stays open.
struct WalDb {
  explicit WalDb(const std::string& p, int page_size = 4096) : path(p), db(p) {
    db.Exec("PRAGMA page_size=" + std::to_string(page_size));
    db.Exec("PRAGMA journal_mode=WAL");
    db.Exec("PRAGMA wal_autocheckpoint=0");
    db.Exec("PRAGMA synchronous=OFF");
  }
  std::string path;
  Sqlite db;
};

}  // namespace litefs::test
