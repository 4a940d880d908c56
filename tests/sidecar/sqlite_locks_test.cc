// Tests of sidecar/sqlite_locks against real SQLite connections living in a
// child process (POSIX locks are per process, so a connection in this
// process would not conflict the way an app's does).
#include "sidecar/sqlite_locks.h"

#include <doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <thread>

#include "sidecar_test_util.h"

namespace litefs::sqlite {
namespace {

using test::Sqlite;
using test::TempDir;

constexpr int kReplyTimeoutMs = 20000;

// A forked child holding one SQLite connection (busy timeout 0), driven by
// one-byte commands over a pipe; it answers each with one byte:
//   'r' BEGIN + SELECT (a read transaction that stays open)
//   'i' BEGIN IMMEDIATE (RESERVED)
//   'c' COMMIT
//   'w' INSERT in autocommit mode
// answers 'k' (ok), 'b' (SQLITE_BUSY) or 'e' (other error). EOF ends it.
class SqliteChild {
 public:
  explicit SqliteChild(const std::string& db_path) {
    test::ForkedChild c = test::ForkChild([&](int in, int out) { Run(db_path, in, out); });
    pid_ = c.pid;
    cmd_ = c.cmd;
    reply_ = c.reply;
  }
  ~SqliteChild() {
    if (cmd_ >= 0) close(cmd_);  // EOF: the child closes its connection and exits
    if (reply_ >= 0) close(reply_);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  SqliteChild(const SqliteChild&) = delete;
  SqliteChild& operator=(const SqliteChild&) = delete;

  char Do(char cmd) {
    REQUIRE(write(cmd_, &cmd, 1) == 1);
    struct pollfd p = {reply_, POLLIN, 0};
    int n = poll(&p, 1, kReplyTimeoutMs);
    if (n != 1) kill(pid_, SIGKILL);
    REQUIRE_MESSAGE(n == 1, "the child did not answer command " << cmd);
    char r = 0;
    REQUIRE(read(reply_, &r, 1) == 1);
    return r;
  }

 private:
  static void Run(const std::string& path, int in, int out) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix") != SQLITE_OK) _exit(2);
    sqlite3_busy_timeout(db, 0);
    auto exec = [&](const char* sql) {
      int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
      return rc == SQLITE_OK ? 'k' : (rc & 0xff) == SQLITE_BUSY ? 'b' : 'e';
    };
    char c;
    while (read(in, &c, 1) == 1) {
      char r = 'e';
      switch (c) {
        case 'r':
          r = exec("BEGIN");
          if (r == 'k') r = exec("SELECT count(*) FROM t");
          if (r != 'k') exec("ROLLBACK");
          break;
        case 'i': r = exec("BEGIN IMMEDIATE"); break;
        case 'c': r = exec("COMMIT"); break;
        case 'w': r = exec("INSERT INTO t(x) VALUES (randomblob(100))"); break;
      }
      if (write(out, &r, 1) != 1) break;
    }
    sqlite3_close(db);
  }

  pid_t pid_ = -1;
  int cmd_ = -1;
  int reply_ = -1;
};

struct LockFixture {
  LockFixture() {
    path = dir / "locks.db";
    Sqlite db(path);
    db.Exec("CREATE TABLE t(x BLOB)");
    db.Exec("INSERT INTO t VALUES (randomblob(10))");
  }
  int OpenFd() {
    int fd = open(path.c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    fds.push_back(fd);
    return fd;
  }
  ~LockFixture() {
    for (int fd : fds) close(fd);
  }
  TempDir dir;
  std::string path;
  std::vector<int> fds;
};

TEST_CASE("ExclusiveLock waits for a reader in another process, then wins") {
  LockFixture f;
  SqliteChild child(f.path);
  REQUIRE(child.Do('r') == 'k');  // a read transaction: SHARED held

  int fd = f.OpenFd();
  int probe = f.OpenFd();  // another open file description: its OFD locks conflict with fd's
  Result<ExclusiveLock> lock = ExclusiveLock::Acquire(fd, std::chrono::milliseconds(200), "locks.db");
  REQUIRE_FALSE(lock.ok());
  CHECK(lock.message().find("timed out after 200 ms") != std::string::npos);
  CHECK(lock.message().find("readers of locks.db to finish") != std::string::npos);
  // The failed attempt gave RESERVED and PENDING back.
  Result<bool> held = IsLocked(probe, F_WRLCK, kPendingByte, 2);
  REQUIRE(held.ok());
  CHECK_FALSE(*held);

  // Waiting with a long timeout succeeds as soon as the reader commits.
  std::optional<Result<ExclusiveLock>> waited;
  std::thread waiter([&] {
    waited.emplace(ExclusiveLock::Acquire(fd, std::chrono::milliseconds(15000), "locks.db"));
  });
  char committed = child.Do('c');
  waiter.join();
  CHECK(committed == 'k');
  REQUIRE(waited.has_value());
  REQUIRE_MESSAGE(waited->ok(), waited->message());

  // While we hold EXCLUSIVE a new reader is turned away, and so is our probe.
  CHECK(child.Do('r') == 'b');
  held = IsLocked(probe, F_RDLCK, kSharedFirst, kSharedSize);
  REQUIRE(held.ok());
  CHECK(*held);
  waited.reset();  // releases
  held = IsLocked(probe, F_WRLCK, kPendingByte, 2 + kSharedSize);
  REQUIRE(held.ok());
  CHECK_FALSE(*held);
  CHECK(child.Do('r') == 'k');
  CHECK(child.Do('c') == 'k');
}

TEST_CASE("ExclusiveLock fails naming RESERVED while a writer holds it") {
  LockFixture f;
  SqliteChild child(f.path);
  REQUIRE(child.Do('i') == 'k');
  int fd = f.OpenFd();
  Result<ExclusiveLock> lock = ExclusiveLock::Acquire(fd, std::chrono::milliseconds(200), "locks.db");
  REQUIRE_FALSE(lock.ok());
  CHECK(lock.message().find("the RESERVED lock of locks.db") != std::string::npos);
  REQUIRE(child.Do('c') == 'k');
  Result<ExclusiveLock> again = ExclusiveLock::Acquire(fd, std::chrono::milliseconds(200), "locks.db");
  REQUIRE_MESSAGE(again.ok(), again.message());
}

TEST_CASE("a second ExclusiveLock is refused at RESERVED") {
  LockFixture f;
  int a = f.OpenFd();
  int b = f.OpenFd();
  Result<ExclusiveLock> first = ExclusiveLock::Acquire(a, std::chrono::milliseconds(200), "locks.db");
  REQUIRE(first.ok());
  Result<ExclusiveLock> second = ExclusiveLock::Acquire(b, std::chrono::milliseconds(100), "locks.db");
  REQUIRE_FALSE(second.ok());
  CHECK(second.message().find("the RESERVED lock of locks.db") != std::string::npos);
}

TEST_CASE("a SharedLock blocks another process's write but not its reads") {
  LockFixture f;
  SqliteChild child(f.path);
  REQUIRE(child.Do('w') == 'k');  // the child can write before we lock

  int fd = f.OpenFd();
  {
    Result<SharedLock> shared = SharedLock::Acquire(fd, std::chrono::milliseconds(1000), "locks.db");
    REQUIRE_MESSAGE(shared.ok(), shared.message());
    CHECK(child.Do('w') == 'b');
    CHECK(child.Do('r') == 'k');
    CHECK(child.Do('c') == 'k');
    // A second SharedLock on another description coexists.
    int fd2 = f.OpenFd();
    Result<SharedLock> again = SharedLock::Acquire(fd2, std::chrono::milliseconds(1000), "locks.db");
    CHECK(again.ok());
  }
  CHECK(child.Do('w') == 'k');
  Sqlite db(f.path, SQLITE_OPEN_READONLY);
  CHECK(db.Int("SELECT count(*) FROM t") == 3);
}

TEST_CASE("SharedLock times out while a writer holds PENDING") {
  LockFixture f;
  int writer_fd = f.OpenFd();
  int fd = f.OpenFd();
  Result<ExclusiveLock> ex = ExclusiveLock::Acquire(writer_fd, std::chrono::milliseconds(1000), "locks.db");
  REQUIRE(ex.ok());
  Result<SharedLock> shared = SharedLock::Acquire(fd, std::chrono::milliseconds(100), "locks.db");
  REQUIRE_FALSE(shared.ok());
  CHECK_MESSAGE(shared.message().find("timed out after 100 ms") != std::string::npos, shared.message());
  CHECK(shared.message().find("read lock on locks.db") != std::string::npos);
}

TEST_CASE("HasHotJournal: a journal with a nonzero first byte and no RESERVED holder") {
  LockFixture f;
  int fd = f.OpenFd();
  const std::string journal = f.path + "-journal";

  Result<bool> hot = HasHotJournal(f.path, fd);
  REQUIRE(hot.ok());
  CHECK_FALSE(*hot);  // no journal

  test::WriteBytes(journal, std::vector<uint8_t>(512, 0));
  hot = HasHotJournal(f.path, fd);
  REQUIRE(hot.ok());
  CHECK_FALSE(*hot);  // zeroed header: a committed PERSIST journal

  test::WriteBytes(journal, {});
  hot = HasHotJournal(f.path, fd);
  REQUIRE(hot.ok());
  CHECK_FALSE(*hot);  // empty: a committed TRUNCATE journal

  {
    SqliteChild child(f.path);
    REQUIRE(child.Do('i') == 'k');  // RESERVED: the journal is that writer's, live
    std::vector<uint8_t> j(512, 0);
    j[0] = 0xd9;
    test::WriteBytes(journal, j);
    hot = HasHotJournal(f.path, fd);
    REQUIRE(hot.ok());
    CHECK_FALSE(*hot);
    REQUIRE(child.Do('c') == 'k');
    hot = HasHotJournal(f.path, fd);
    REQUIRE(hot.ok());
    CHECK(*hot);  // the writer is gone, the journal stays: hot
  }
  hot = HasHotJournal(f.path, fd);
  REQUIRE(hot.ok());
  CHECK(*hot);
  unlink(journal.c_str());
}

TEST_CASE("LockWithin and TryLock on a plain file") {
  LockFixture f;
  int a = f.OpenFd();
  int b = f.OpenFd();
  Result<bool> got = TryLock(a, F_WRLCK, 100, 10);
  REQUIRE(got.ok());
  CHECK(*got);
  got = TryLock(b, F_RDLCK, 105, 1);
  REQUIRE(got.ok());
  CHECK_FALSE(*got);
  Status st = LockWithin(b, F_WRLCK, 100, 1, std::chrono::milliseconds(50), "byte 100");
  REQUIRE_FALSE(st.ok());
  CHECK(st.message() == "timed out after 50 ms waiting for byte 100");
  Unlock(a, 100, 10);
  st = LockWithin(b, F_WRLCK, 100, 1, std::chrono::milliseconds(50), "byte 100");
  CHECK(st.ok());
  got = TryLock(-1, F_WRLCK, 0, 1);
  REQUIRE_FALSE(got.ok());
}

}  // namespace
}  // namespace litefs::sqlite
