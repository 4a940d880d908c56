// End-to-end tests of sidecar/wal_apply (sqlite-internals §4.9): LTX files
// captured from a real primary (WalTransaction + WriteCommitLtx, as
// Database::CaptureWal does) are appended to a replica's WAL while a SQLite
// connection in another process reads it. A reader sees each transaction
// whole at its next read transaction and never inside one, crashes never
// surface a partial transaction, and a refused file is never seen.
#include "sidecar/wal_apply.h"

#include <doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "ltx/checksum.h"
#include "ltx/db_file.h"
#include "ltx/decoder.h"
#include "ltx/encoder.h"
#include "ltx/io.h"
#include "sidecar/db_view.h"
#include "sidecar/fsutil.h"
#include "sidecar/ltx_apply.h"
#include "sidecar/ltx_log.h"
#include "sidecar/ltx_writer.h"
#include "sidecar/page_checksums.h"
#include "sidecar/wal_format.h"
#include "sidecar/wal_index.h"
#include "sidecar_test_util.h"
#include "vfs/wal_index_header.h"

namespace litefs {
namespace {

using test::Sqlite;
using test::TempDir;

constexpr int kReplyTimeoutMs = 20000;
constexpr uint32_t kPageSize = 4096;
const char* const kTotalSql = "SELECT count(*) || ':' || sum(v) FROM t";
const char* const kDumpSql =
    "SELECT count(*) || ':' || group_concat(a || '=' || v || '/' || hex(substr(pad, 1, 8)), ',') "
    "FROM (SELECT * FROM t ORDER BY a)";

// ---- a SQLite reader in another process -------------------------------------

// A forked child holding one SQLite connection to the replica (small page
// cache, so pages are read again within a transaction), driven by one-byte
// commands over a pipe; each answer is one line, "k <result>" or "e <error>":
//   'b' BEGIN, then the total (the read transaction stays open)
//   's' the total        'd' the whole table        'q' PRAGMA integrity_check
//   'c' COMMIT           'p' PRAGMA wal_checkpoint(PASSIVE)   't' (TRUNCATE)
// EOF on the command pipe closes the connection and ends the child.
class ReaderChild {
 public:
  explicit ReaderChild(const std::string& db_path) {
    test::ForkedChild c = test::ForkChild([&](int in, int out) { Run(db_path, in, out); });
    pid_ = c.pid;
    cmd_ = c.cmd;
    reply_ = c.reply;
  }
  ~ReaderChild() { Stop(); }
  ReaderChild(const ReaderChild&) = delete;
  ReaderChild& operator=(const ReaderChild&) = delete;

  // Closes the connection (the last one checkpoints and removes the WAL)
  // and waits for the child to exit.
  void Stop() {
    if (pid_ <= 0) return;
    close(cmd_);
    // The child closes its end when it exits: wait for EOF, bounded.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReplyTimeoutMs);
    bool eof = false;
    while (!eof) {
      int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(
                         deadline - std::chrono::steady_clock::now()).count());
      struct pollfd p = {reply_, POLLIN, 0};
      if (left <= 0 || poll(&p, 1, left) != 1) break;
      char buf[256];
      eof = read(reply_, buf, sizeof buf) <= 0;
    }
    if (!eof) kill(pid_, SIGKILL);
    close(reply_);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    CHECK_MESSAGE(eof, "the reader child did not exit");
  }

  std::string Send(char cmd) {
    REQUIRE(write(cmd_, &cmd, 1) == 1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReplyTimeoutMs);
    std::string line;
    for (;;) {
      size_t nl = line.find('\n');
      if (nl != std::string::npos) return line.substr(0, nl);
      int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(
                         deadline - std::chrono::steady_clock::now()).count());
      struct pollfd p = {reply_, POLLIN, 0};
      int n = left > 0 ? poll(&p, 1, left) : 0;
      if (n != 1) kill(pid_, SIGKILL);
      REQUIRE_MESSAGE(n == 1, "the reader child did not answer command " << cmd);
      char buf[65536];
      ssize_t got = read(reply_, buf, sizeof buf);
      REQUIRE_MESSAGE(got > 0, "the reader child died during command " << cmd);
      line.append(buf, size_t(got));
    }
  }
  // The result of a command that must succeed.
  std::string Ok(char cmd) {
    std::string r = Send(cmd);
    REQUIRE_MESSAGE(r.rfind("k", 0) == 0, "command " << cmd << ": " << r);
    return r.size() > 2 ? r.substr(2) : "";
  }

 private:
  static void Run(const std::string& path, int in, int out) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix");
    sqlite3_busy_timeout(db, 5000);
    sqlite3_exec(db, "PRAGMA cache_size=10", nullptr, nullptr, nullptr);
    auto query = [&](const char* sql) -> std::string {
      sqlite3_stmt* stmt = nullptr;
      int r = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
      std::string res;
      while ((r == SQLITE_OK || r == SQLITE_ROW) && (r = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (!res.empty()) res += ";";
        for (int i = 0; i < sqlite3_column_count(stmt); i++) {
          if (i) res += "|";
          const unsigned char* t = sqlite3_column_text(stmt, i);
          res += t ? reinterpret_cast<const char*>(t) : "NULL";
        }
      }
      std::string msg = sqlite3_errmsg(db);
      sqlite3_finalize(stmt);
      if (r != SQLITE_DONE) return "e " + std::to_string(r) + " " + msg;
      return "k " + res;
    };
    auto exec = [&](const char* sql) -> std::string {
      int r = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
      return r == SQLITE_OK ? "k" : "e " + std::to_string(r) + " " + sqlite3_errmsg(db);
    };
    char c;
    while (read(in, &c, 1) == 1) {
      std::string r;
      if (rc != SQLITE_OK) {
        r = "e cannot open " + path;
      } else {
        switch (c) {
          case 'b':
            r = exec("BEGIN");
            if (r == "k") r = query(kTotalSql);
            break;
          case 's': r = query(kTotalSql); break;
          case 'd': r = query(kDumpSql); break;
          case 'q': r = query("PRAGMA integrity_check"); break;
          case 'c': r = exec("COMMIT"); break;
          case 'p': r = query("PRAGMA wal_checkpoint(PASSIVE)"); break;
          case 't': r = query("PRAGMA wal_checkpoint(TRUNCATE)"); break;
          default: r = "e unknown command";
        }
      }
      for (char& ch : r) {
        if (ch == '\n') ch = ' ';
      }
      r += '\n';
      if (write(out, r.data(), r.size()) != ssize_t(r.size())) break;
    }
    sqlite3_close(db);
  }

  pid_t pid_ = -1;
  int cmd_ = -1;
  int reply_ = -1;
};

// Whole-table dumps are long: compare them without printing them all.
bool SameDump(const std::string& got, const std::string& want) {
  if (got == want) return true;
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) i++;
  MESSAGE("dumps differ at byte " << i << ": got ..." << got.substr(i > 20 ? i - 20 : 0, 60)
                                  << "... want ..." << want.substr(i > 20 ? i - 20 : 0, 60) << "...");
  return false;
}

// ---- the primary: real transactions captured as LTX files ----------------

wal::Committed ScanWal(const std::string& wal_path) {
  Result<fs::UniqueFd> fd = fs::Open(wal_path, O_RDONLY);
  if (!fd.ok()) return {};
  Result<wal::Committed> c = wal::ScanCommitted(fd->get());
  REQUIRE_MESSAGE(c.ok(), c.message());
  return std::move(c).value();
}

uint64_t ViewChecksum(const std::string& db_path) {
  Result<DbView> v = DbView::Open(db_path);
  REQUIRE_MESSAGE(v.ok(), v.message());
  PageChecksums cs;
  REQUIRE(cs.LoadFrom(*v).ok());
  return cs.value();
}

// Rebuilds `cs` from the files, as the sidecar does after a failed apply.
void Reload(PageChecksums& cs, const std::string& db_path) {
  Result<DbView> v = DbView::Open(db_path);
  REQUIRE_MESSAGE(v.ok(), v.message());
  REQUIRE(cs.LoadFrom(*v).ok());
}

bool WriteAll(int fd, const std::vector<uint8_t>& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += size_t(n);
  }
  return true;
}

uint64_t FileChecksum(const std::string& db_path) {
  Result<uint64_t> sum = ltx::ChecksumDbPath(db_path);
  REQUIRE_MESSAGE(sum.ok(), sum.message());
  return *sum;
}

struct State {
  ltx::Pos pos;
  std::string total, dump;
  std::string ltx_path;  // the file that leads to this state (none for TXID 1)
  uint32_t pages = 0;    // pages in that file
};

// A WAL-mode primary whose connection stays open (and never checkpoints),
// and a replica made from a copy of its database file at TXID 1.
struct Cluster {
  Cluster() : log(dir / "ltx") {
    REQUIRE(log.Init().ok());
    primary = dir / "primary.db";
    replica = dir / "replica.db";
    {
      Sqlite db(primary);
      db.Exec("PRAGMA page_size=" + std::to_string(kPageSize));
      db.Exec("PRAGMA journal_mode=WAL");
      db.Exec("CREATE TABLE t(a INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad BLOB)");
      db.Exec("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<1200) "
              "INSERT INTO t SELECT x, 100, randomblob(300) FROM c");
    }  // the last connection checkpoints and removes the WAL
    REQUIRE_FALSE(test::FileExists(primary + "-wal"));
    std::filesystem::copy_file(primary, replica);
    Result<DbView> view = DbView::Open(primary);
    REQUIRE(view.ok());
    Result<ltx::Pos> p1 = WriteCommitLtx(*view, nullptr, {}, primary_cs, log, Options());
    REQUIRE_MESSAGE(p1.ok(), p1.message());
    REQUIRE(p1->txid == 1);
    Reload(replica_cs, replica);
    REQUIRE(replica_cs.value() == p1->checksum);

    conn.emplace(primary);
    conn->Exec("PRAGMA wal_autocheckpoint=0");
    conn->Exec("PRAGMA synchronous=OFF");
    states.push_back({});  // index = TXID
    states.push_back({*p1, conn->Text(kTotalSql), conn->Text(kDumpSql), "", 0});
  }

  static LtxWriteOptions Options() {
    LtxWriteOptions o;
    o.compress = true;
    o.node_id = 42;
    o.timestamp_ms = 1700000000000;
    o.sync = false;
    return o;
  }

  // The statements of transaction `txid` on the primary: all change the
  // total and row 1, some grow or shrink the table.
  static std::string StepSql(uint64_t k) {
    std::string s = "BEGIN; UPDATE t SET v = v + " + std::to_string(k) + " WHERE a = 1; ";
    switch (k % 4) {
      case 0: s += "UPDATE t SET v = v + 1 WHERE a % 10 = " + std::to_string(k % 10) + "; "; break;
      case 1: s += "INSERT INTO t(v, pad) SELECT 7, randomblob(300) FROM t WHERE a % 40 = 0; "; break;
      case 2: s += "DELETE FROM t WHERE a > 1 AND a % 13 = " + std::to_string(k % 13) + "; "; break;
      case 3:
        s += "UPDATE t SET v = v - 30 WHERE a = 600; UPDATE t SET v = v + 30 WHERE a = "
             "(SELECT max(a) FROM t); ";
        break;
    }
    return s + "COMMIT";
  }

  // Runs the next transaction on the primary (`sql`, or StepSql) and
  // captures it as an LTX file, as Database::CaptureWal does.
  const State& Next(const std::string& sql = "") {
    const uint64_t txid = states.size();
    const std::string wal_path = primary + "-wal";
    wal::Committed before = ScanWal(wal_path);
    conn->Exec(sql.empty() ? StepSql(txid) : sql);
    wal::Committed after = ScanWal(wal_path);
    REQUIRE(after.last_frame > 0);
    const bool same = before.last_frame > 0 && before.header.salt1 == after.header.salt1 &&
                      before.header.salt2 == after.header.salt2;
    wire::WalFrames f{after.header.salt1, after.header.salt2, same ? before.last_frame + 1 : 1,
                      after.last_frame, after.header.page_size, after.db_pages};
    LtxWriteOptions opts = Options();
    opts.wal_offset = int64_t(wal::FrameOffset(f.first_frame, f.page_size));
    opts.wal_size = int64_t(uint64_t(f.last_frame - f.first_frame + 1) * (wal::kFrameHeaderSize + f.page_size));
    opts.wal_salt1 = f.salt1;
    opts.wal_salt2 = f.salt2;
    Result<WalTransaction> tx = WalTransaction::Read(wal_path, f);
    REQUIRE_MESSAGE(tx.ok(), tx.message());
    Result<ltx::Pos> pos = WriteCommitLtx(*tx, &tx->pages(), states.back().pos, primary_cs, log, opts);
    REQUIRE_MESSAGE(pos.ok(), pos.message());
    REQUIRE(pos->txid == txid);
    REQUIRE(pos->checksum == ViewChecksum(primary));  // the capture is the whole transaction
    State s{*pos, conn->Text(kTotalSql), conn->Text(kDumpSql), log.PathFor({txid, txid}), 0};
    Result<VerifiedLtx> v = ReadAndVerifyLtx(s.ltx_path);
    REQUIRE_MESSAGE(v.ok(), v.message());
    s.pages = uint32_t(v->pgnos.size());
    REQUIRE(s.total != states.back().total);
    states.push_back(s);
    return states.back();
  }

  Result<uint32_t> ApplyFile(const std::string& path) {
    Result<VerifiedLtx> v = ReadAndVerifyLtx(path);
    REQUIRE_MESSAGE(v.ok(), v.message());
    return ApplyLtxToWal(replica, path, *v, replica_cs, ApplyOptions{std::chrono::milliseconds(5000)});
  }
  // Applies the file of TXID `txid`, which must succeed.
  uint32_t Apply(uint64_t txid) {
    Result<uint32_t> n = ApplyFile(states[txid].ltx_path);
    REQUIRE_MESSAGE(n.ok(), n.message());
    CHECK(replica_cs.value() == states[txid].pos.checksum);
    return *n;
  }

  // The replica as a fresh SQLite connection in a new process sees it.
  void CheckReplicaIs(uint64_t txid) {
    ReaderChild r(replica);
    CHECK(r.Ok('s') == states[txid].total);
    CHECK(r.Ok('q') == "ok");
    CHECK(SameDump(r.Ok('d'), states[txid].dump));
  }

  TempDir dir;
  LtxLog log;
  std::string primary, replica;
  PageChecksums primary_cs, replica_cs;
  std::optional<Sqlite> conn;
  std::vector<State> states;
};

wal::Header WalHeaderOf(const std::string& wal_path) {
  std::vector<uint8_t> b = test::ReadBytes(wal_path);
  Result<wal::Header> h = wal::Header::Decode(b);
  REQUIRE_MESSAGE(h.ok(), h.message());
  return *h;
}

WalIndexHeader ShmHeader(const std::string& db_path) {
  std::vector<uint8_t> shm = test::ReadBytes(db_path + "-shm");
  REQUIRE(shm.size() >= 136);
  return WalIndexHeader::Decode(shm.data());
}

std::vector<std::pair<uint32_t, std::vector<uint8_t>>> LtxPages(const std::string& path) {
  Result<fs::UniqueFd> fd = fs::Open(path, O_RDONLY);
  REQUIRE(fd.ok());
  io::FdReader reader(fd->get());
  Result<std::unique_ptr<ltx::Decoder>> dec = ltx::Decoder::Open(reader);
  REQUIRE(dec.ok());
  std::vector<std::pair<uint32_t, std::vector<uint8_t>>> out;
  for (;;) {
    std::vector<uint8_t> page;
    Result<uint32_t> pgno = (*dec)->NextPage(page);
    REQUIRE(pgno.ok());
    if (*pgno == 0) break;
    out.emplace_back(*pgno, std::move(page));
  }
  return out;
}

// Copies the LTX at `from` to `to` with another post-apply checksum.
void RewritePostChecksum(const std::string& from, const std::string& to, uint64_t post) {
  Result<fs::UniqueFd> in = fs::Open(from, O_RDONLY);
  REQUIRE(in.ok());
  io::FdReader reader(in->get());
  Result<std::unique_ptr<ltx::Decoder>> dec = ltx::Decoder::Open(reader);
  REQUIRE(dec.ok());
  Result<fs::UniqueFd> out = fs::Open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(out.ok());
  io::FdWriter writer(out->get());
  Result<std::unique_ptr<ltx::Encoder>> enc = ltx::Encoder::Begin(writer, (*dec)->header());
  REQUIRE(enc.ok());
  std::vector<uint8_t> page;
  for (;;) {
    Result<uint32_t> pgno = (*dec)->NextPage(page);
    REQUIRE(pgno.ok());
    if (*pgno == 0) break;
    REQUIRE((*enc)->EncodePage(*pgno, page).ok());
  }
  REQUIRE((*dec)->Finish().ok());
  REQUIRE((*enc)->Finish(post).ok());
}

// Writes `pages` as frames after the frames readers may see (the published
// mxFrame), with the WAL's salts and a correct checksum chain, the last one
// committing with `commit` (0: none commits) — what an apply that dies
// before publishing the wal-index header leaves behind. With `index`, their
// hash-table entries are added too. Returns the first frame written.
uint32_t WriteUnpublishedFrames(const std::string& db_path,
                                const std::vector<std::pair<uint32_t, std::vector<uint8_t>>>& pages,
                                uint32_t commit, bool index) {
  WalIndexHeader ih = ShmHeader(db_path);
  REQUIRE(ih.mx_frame > 0);
  wal::Header wh = WalHeaderOf(db_path + "-wal");
  REQUIRE(wh.salt1 == ih.salt1());
  Result<fs::UniqueFd> fd = fs::Open(db_path + "-wal", O_RDWR);
  REQUIRE(fd.ok());
  wal::Checksum chain{ih.frame_cksum[0], ih.frame_cksum[1]};
  std::vector<uint8_t> frame(wal::kFrameHeaderSize + kPageSize);
  std::vector<uint32_t> pgnos;
  for (size_t i = 0; i < pages.size(); i++) {
    wal::FrameHeader fh;
    fh.pgno = pages[i].first;
    fh.commit = i + 1 == pages.size() ? commit : 0;
    fh.salt1 = wh.salt1;
    fh.salt2 = wh.salt2;
    fh.Encode(frame.data());
    std::copy(pages[i].second.begin(), pages[i].second.end(), frame.begin() + wal::kFrameHeaderSize);
    chain = wal::Update(chain, {frame.data(), 8}, false);
    chain = wal::Update(chain, pages[i].second, false);
    fh.checksum = chain;
    fh.Encode(frame.data());
    REQUIRE(fs::PwriteFull(fd->get(), frame.data(), frame.size(),
                           wal::FrameOffset(ih.mx_frame + 1 + uint32_t(i), kPageSize)).ok());
    pgnos.push_back(fh.pgno);
  }
  if (index) {
    Result<wal::Index> idx = wal::Index::Open(db_path + "-shm", 0644);
    REQUIRE(idx.ok());
    REQUIRE(idx->Append(ih.mx_frame + 1, pgnos, ih.mx_frame).ok());
  }
  return ih.mx_frame + 1;
}

// ---- tests -------------------------------------------------------------------

TEST_CASE("wal_apply: a live reader sees each transaction at its next read, never inside one") {
  Cluster c;
  for (int i = 0; i < 7; i++) c.Next();
  ReaderChild r(c.replica);
  CHECK(r.Ok('b') == c.states[1].total);
  CHECK(r.Ok('c').empty());

  uint32_t frames = 0;
  uint32_t change = ShmHeader(c.replica).change;
  for (uint64_t txid = 2; txid <= 5; txid++) {
    CAPTURE(txid);
    CHECK(r.Ok('b') == c.states[txid - 1].total);  // a read transaction is open
    frames += c.states[txid].pages;
    CHECK(c.Apply(txid) == frames);  // the apply did not wait for the reader
    CHECK(ShmHeader(c.replica).change == ++change);  // iChange + 1 per transaction
    CHECK(r.Ok('s') == c.states[txid - 1].total);  // still its snapshot
    CHECK(r.Ok('q') == "ok");
    CHECK(r.Ok('s') == c.states[txid - 1].total);
    CHECK(r.Ok('c').empty());
    CHECK(r.Ok('b') == c.states[txid].total);  // the next one sees it all
    CHECK(r.Ok('q') == "ok");
    CHECK(SameDump(r.Ok('d'), c.states[txid].dump));
    CHECK(r.Ok('c').empty());
    CHECK(ViewChecksum(c.replica) == c.states[txid].pos.checksum);
    // Published: the wal-index says so, and the WAL holds exactly that.
    WalIndexHeader ih = ShmHeader(c.replica);
    CHECK(ih.mx_frame == frames);
    CHECK(ih.n_page == ScanWal(c.replica + "-wal").db_pages);
  }
  // Two applies during one read transaction.
  CHECK(r.Ok('b') == c.states[5].total);
  c.Apply(6);
  c.Apply(7);
  CHECK(r.Ok('s') == c.states[5].total);
  CHECK(r.Ok('c').empty());
  CHECK(r.Ok('b') == c.states[7].total);
  CHECK(r.Ok('c').empty());
  // Another process opening the replica now sees the same.
  c.CheckReplicaIs(7);
}

TEST_CASE("wal_apply: a read transaction that begins during an apply sees the state before it") {
  Cluster c;
  for (int i = 0; i < 4; i++) c.Next();
  ReaderChild r(c.replica);
  CHECK(r.Ok('s') == c.states[1].total);
  uint64_t txid = 2;
  c.Apply(txid++);
  c.Apply(txid++);

  SUBCASE("appending to the WAL") {}
  SUBCASE("restarting the WAL after a checkpoint") {
    const uint32_t mx = ShmHeader(c.replica).mx_frame;
    CHECK(r.Ok('p') == "0|" + std::to_string(mx) + "|" + std::to_string(mx));
  }
  REQUIRE(c.states[txid].pages < ShmHeader(c.replica).mx_frame);

  // The apply reads its LTX from a FIFO: it stops after taking its locks
  // (and restarting the WAL, if it does), until the file is written.
  const std::string fifo = c.dir / "ltx.fifo";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  Result<VerifiedLtx> v = ReadAndVerifyLtx(c.states[txid].ltx_path);
  REQUIRE(v.ok());
  std::optional<Result<uint32_t>> result;
  std::atomic<bool> done{false};
  std::thread apply([&] {
    result.emplace(ApplyLtxToWal(c.replica, fifo, *v, c.replica_cs, ApplyOptions{std::chrono::milliseconds(5000)}));
    done = true;
    // If the apply never opened the FIFO, let the writer's open return.
    int fd = open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
    if (fd >= 0) close(fd);
  });
  // Should a REQUIRE below fail, the apply gets EOF and the thread is joined.
  int wfd = -1;
  struct Joiner {
    std::thread& t;
    const std::string& fifo;
    int& wfd;
    ~Joiner() {
      if (wfd >= 0) close(wfd);
      if (!t.joinable()) return;
      int fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) close(fd);
      t.join();
    }
  } joiner{apply, fifo, wfd};
  wfd = open(fifo.c_str(), O_WRONLY);  // returns once the apply opened the FIFO
  if (done) {
    apply.join();
    FAIL("the apply ended before reading its file: " << result->message());
  }
  REQUIRE(wfd >= 0);

  // A read transaction begins in the middle of the apply.
  std::string begun = r.Send('b');

  std::vector<uint8_t> bytes = test::ReadBytes(c.states[txid].ltx_path);
  bool written = WriteAll(wfd, bytes);
  close(wfd);
  wfd = -1;
  apply.join();
  CHECK(written);
  REQUIRE(result.has_value());
  REQUIRE_MESSAGE(result->ok(), result->message());

  CHECK(begun == "k " + c.states[txid - 1].total);
  // The reader keeps its snapshot: the same total, a consistent database.
  CHECK(r.Ok('s') == c.states[txid - 1].total);
  CHECK(r.Ok('q') == "ok");
  CHECK(SameDump(r.Ok('d'), c.states[txid - 1].dump));
  CHECK(r.Ok('c').empty());
  CHECK(r.Ok('b') == c.states[txid].total);
  CHECK(r.Ok('q') == "ok");
  CHECK(r.Ok('c').empty());
}

TEST_CASE("wal_apply: with nobody on the -shm, an apply folds the WAL into the database first") {
  Cluster c;
  for (int i = 0; i < 4; i++) c.Next();
  REQUIRE_FALSE(test::FileExists(c.replica + "-wal"));
  CHECK(c.Apply(2) == c.states[2].pages);
  // The frames are in the WAL, the database file is as it was.
  CHECK(FileChecksum(c.replica) == c.states[1].pos.checksum);
  CHECK(ScanWal(c.replica + "-wal").last_frame == c.states[2].pages);
  const wal::Header first = WalHeaderOf(c.replica + "-wal");

  // Nobody has the -shm open: the next apply checkpoints alone.
  CHECK(c.Apply(3) == c.states[3].pages);  // a new WAL, from frame 1
  CHECK(FileChecksum(c.replica) == c.states[2].pos.checksum);  // TXID 2's frames are in the file
  const wal::Header second = WalHeaderOf(c.replica + "-wal");
  CHECK(second.salt1 == first.salt1 + 1);
  CHECK(second.checkpoint_seq == first.checkpoint_seq + 1);
  CHECK(ScanWal(c.replica + "-wal").last_frame == c.states[3].pages);
  CHECK(ViewChecksum(c.replica) == c.states[3].pos.checksum);

  c.CheckReplicaIs(3);  // the last connection closes: SQLite checkpoints and removes the WAL
  CHECK(FileChecksum(c.replica) == c.states[3].pos.checksum);
  CHECK(c.Apply(4) == c.states[4].pages);
  c.CheckReplicaIs(4);
}

TEST_CASE("wal_apply: frame counts grow, and restart at frame 1 after SQLite checkpoints") {
  Cluster c;
  for (int i = 0; i < 7; i++) c.Next();
  ReaderChild r(c.replica);
  CHECK(r.Ok('s') == c.states[1].total);  // the reader has the -shm open
  uint32_t n2 = c.Apply(2);
  CHECK(n2 == c.states[2].pages);
  uint32_t n3 = c.Apply(3);
  CHECK(n3 == n2 + c.states[3].pages);
  const wal::Header before = WalHeaderOf(c.replica + "-wal");

  // SQLite backfills everything; the next apply starts the WAL over.
  CHECK(r.Ok('p') == "0|" + std::to_string(n3) + "|" + std::to_string(n3));
  uint32_t n4 = c.Apply(4);
  CHECK(n4 == c.states[4].pages);
  const wal::Header after = WalHeaderOf(c.replica + "-wal");
  CHECK(after.salt1 == before.salt1 + 1);
  CHECK(after.salt2 != before.salt2);
  CHECK(after.checkpoint_seq == before.checkpoint_seq + 1);
  CHECK(ShmHeader(c.replica).mx_frame == n4);
  CHECK(r.Ok('b') == c.states[4].total);
  CHECK(r.Ok('q') == "ok");
  CHECK(r.Ok('c').empty());
  uint32_t n5 = c.Apply(5);
  CHECK(n5 == n4 + c.states[5].pages);

  // A reader whose snapshot includes every frame does not stop a full
  // checkpoint, but it still reads those frames: no restart under it.
  CHECK(r.Ok('b') == c.states[5].total);
  {
    ReaderChild checkpointer(c.replica);
    CHECK(checkpointer.Ok('p') == "0|" + std::to_string(n5) + "|" + std::to_string(n5));
    CHECK(c.Apply(6) == n5 + c.states[6].pages);  // appended, not restarted
    CHECK(WalHeaderOf(c.replica + "-wal").salt1 == after.salt1);
    CHECK(r.Ok('s') == c.states[5].total);
    CHECK(r.Ok('q') == "ok");
    CHECK(SameDump(r.Ok('d'), c.states[5].dump));
    CHECK(r.Ok('c').empty());
    CHECK(r.Ok('b') == c.states[6].total);
    CHECK(r.Ok('c').empty());
  }

  // A TRUNCATE checkpoint leaves an empty WAL file.
  CHECK(r.Ok('t') == "0|0|0");
  struct stat st;
  REQUIRE(stat((c.replica + "-wal").c_str(), &st) == 0);
  CHECK(st.st_size == 0);
  CHECK(c.Apply(7) == c.states[7].pages);
  CHECK(WalHeaderOf(c.replica + "-wal").salt1 != after.salt1);
  CHECK(r.Ok('b') == c.states[7].total);
  CHECK(r.Ok('q') == "ok");
  CHECK(SameDump(r.Ok('d'), c.states[7].dump));
  CHECK(r.Ok('c').empty());
}

TEST_CASE("wal_apply: a crash before the header is published shows no partial transaction") {
  Cluster c;
  for (int i = 0; i < 4; i++) c.Next();

  SUBCASE("frames without a commit frame, nobody on the -shm (SQLite recovers the WAL)") {
    c.Apply(2);
    c.Apply(3);
    auto pages = LtxPages(c.states[4].ltx_path);
    REQUIRE(pages.size() >= 3);
    pages.pop_back();  // died before the commit frame
    WriteUnpublishedFrames(c.replica, pages, 0, /*index=*/false);
    {
      ReaderChild r(c.replica);  // first opener: rebuilds the wal-index from the WAL
      CHECK(r.Ok('s') == c.states[3].total);
      CHECK(r.Ok('q') == "ok");
      CHECK(SameDump(r.Ok('d'), c.states[3].dump));
    }
    Reload(c.replica_cs, c.replica);
    CHECK(c.replica_cs.value() == c.states[3].pos.checksum);
    c.Apply(4);
    c.CheckReplicaIs(4);
  }

  SUBCASE("a WAL cut in the middle of the last transaction, nobody on the -shm") {
    c.Apply(2);
    c.Apply(3);
    REQUIRE(c.states[3].pages >= 2);
    const uint32_t first = ShmHeader(c.replica).mx_frame - c.states[3].pages + 1;
    // The header was published, but the frames never reached the disk.
    REQUIRE(truncate((c.replica + "-wal").c_str(), off_t(wal::FrameOffset(first + 1, kPageSize) + 100)) == 0);
    {
      ReaderChild r(c.replica);
      CHECK(r.Ok('s') == c.states[2].total);
      CHECK(r.Ok('q') == "ok");
    }
    // The sidecar reloads its table from the files: TXID 2 again.
    Reload(c.replica_cs, c.replica);
    CHECK(c.replica_cs.value() == c.states[2].pos.checksum);
    c.Apply(3);
    c.Apply(4);
    c.CheckReplicaIs(4);
  }

  SUBCASE("a complete transaction written but never published, a reader on the -shm") {
    // What an apply that dies after syncing its commit frame (TXID 5) and
    // before publishing leaves; its LTX is in the log, so the position may
    // already say 5. The next apply (TXID 6, other pages) must publish it
    // rather than overwrite it, or TXID 5's change is lost for good.
    c.Next("UPDATE t SET v = v + 5 WHERE a = 1150");
    c.Next("UPDATE t SET v = v + 1 WHERE a = 1");
    ReaderChild r(c.replica);
    CHECK(r.Ok('s') == c.states[1].total);
    for (uint64_t t = 2; t <= 4; t++) c.Apply(t);
    auto pages = LtxPages(c.states[5].ltx_path);
    Result<VerifiedLtx> v5 = ReadAndVerifyLtx(c.states[5].ltx_path);
    REQUIRE(v5.ok());
    WriteUnpublishedFrames(c.replica, pages, v5->header.commit, /*index=*/true);
    CHECK(r.Ok('b') == c.states[4].total);  // not visible yet
    CHECK(r.Ok('c').empty());
    // The sidecar restarts: its table comes from the WAL file (TXID 5).
    Reload(c.replica_cs, c.replica);
    CHECK(c.replica_cs.value() == c.states[5].pos.checksum);
    c.Apply(6);
    CHECK(r.Ok('b') == c.states[6].total);
    CHECK(r.Ok('q') == "ok");
    CHECK(SameDump(r.Ok('d'), c.states[6].dump));
    CHECK(r.Ok('c').empty());
    r.Stop();
    c.CheckReplicaIs(6);
  }

  SUBCASE("recovery publishes a complete unpublished transaction for the readers") {
    ReaderChild r(c.replica);
    // A first read maps the -shm and holds it: the reader never becomes the
    // first connection that rebuilds the index from the WAL (which would
    // show it the unpublished transaction on its own).
    CHECK(r.Ok('s') == c.states[1].total);
    c.Apply(2);
    auto pages = LtxPages(c.states[3].ltx_path);
    Result<VerifiedLtx> v3 = ReadAndVerifyLtx(c.states[3].ltx_path);
    REQUIRE(v3.ok());
    WriteUnpublishedFrames(c.replica, pages, v3->header.commit, /*index=*/false);
    CHECK(r.Ok('s') == c.states[2].total);
    REQUIRE(PublishPendingWal(c.replica).ok());
    CHECK(r.Ok('s') == c.states[3].total);  // what the position (3) says
    CHECK(r.Ok('q') == "ok");
    r.Stop();
    c.CheckReplicaIs(3);
  }
}

TEST_CASE("wal_apply: an LTX with a wrong post-apply checksum is refused; nobody ever sees its pages") {
  Cluster c;
  for (int i = 0; i < 3; i++) c.Next();
  const std::string bad = c.dir / "bad.ltx";
  RewritePostChecksum(c.states[3].ltx_path, bad, c.states[3].pos.checksum ^ 0x5a5a);
  std::optional<ReaderChild> r;

  SUBCASE("a reader holds the -shm") {
    r.emplace(c.replica);
    CHECK(r->Ok('s') == c.states[1].total);
  }
  SUBCASE("nobody holds the -shm") {}

  c.Apply(2);
  const uint32_t mx = ShmHeader(c.replica).mx_frame;
  Result<uint32_t> refused = c.ApplyFile(bad);
  REQUIRE_FALSE(refused.ok());
  CHECK_MESSAGE(refused.message().find("checksum after applying TXID") != std::string::npos,
                refused.message());
  // Nothing new was published (alone, the apply first checkpointed TXID 2).
  const uint32_t published = ShmHeader(c.replica).mx_frame;
  CHECK(published == (r ? mx : 0));
  if (!r) CHECK(FileChecksum(c.replica) == c.states[2].pos.checksum);
  if (r) {
    CHECK(r->Ok('b') == c.states[2].total);
    CHECK(r->Ok('q') == "ok");
    CHECK(r->Ok('c').empty());
  }
  // What SQLite's recovery would find in the WAL (no reader on the -shm):
  // no commit of the refused file.
  CHECK(ScanWal(c.replica + "-wal").last_frame == published);
  {
    ReaderChild fresh(c.replica);
    CHECK(fresh.Ok('s') == c.states[2].total);
    CHECK(fresh.Ok('q') == "ok");
  }
  // After a failure the table is reloaded from the files: still TXID 2.
  Reload(c.replica_cs, c.replica);
  CHECK(c.replica_cs.value() == c.states[2].pos.checksum);
  // The right file applies.
  c.Apply(3);
  if (r) {
    CHECK(r->Ok('b') == c.states[3].total);
    CHECK(r->Ok('c').empty());
    r->Stop();
  }
  c.CheckReplicaIs(3);
}

TEST_CASE("wal_apply: ApplyLtxToWal refuses a file without pages and a missing database") {
  Cluster c;
  c.Next();
  Result<VerifiedLtx> v = ReadAndVerifyLtx(c.states[2].ltx_path);
  REQUIRE(v.ok());
  VerifiedLtx empty = *v;
  empty.pgnos.clear();
  Result<uint32_t> n = ApplyLtxToWal(c.replica, c.states[2].ltx_path, empty, c.replica_cs, ApplyOptions{});
  REQUIRE_FALSE(n.ok());
  CHECK(n.message().find("carries no page") != std::string::npos);
  n = ApplyLtxToWal(c.dir / "missing.db", c.states[2].ltx_path, *v, c.replica_cs, ApplyOptions{});
  CHECK_FALSE(n.ok());
  CHECK_FALSE(test::FileExists(c.dir / "missing.db"));
}

TEST_CASE("wal_apply: a batch applies its files as separate transactions, published together") {
  Cluster c;
  for (int i = 0; i < 5; i++) c.Next();
  ReaderChild r(c.replica);
  CHECK(r.Ok('s') == c.states[1].total);
  std::vector<std::string> paths;
  std::vector<VerifiedLtx> verified;
  for (uint64_t t = 2; t <= 4; t++) {
    paths.push_back(c.states[t].ltx_path);
    Result<VerifiedLtx> v = ReadAndVerifyLtx(paths.back());
    REQUIRE(v.ok());
    verified.push_back(*v);
  }

  SUBCASE("all of them") {
    std::vector<LtxApplyItem> items;
    for (size_t k = 0; k < paths.size(); k++) items.push_back({&paths[k], &verified[k]});
    size_t applied = 0;
    Result<uint32_t> frames = ApplyLtxBatchToWal(c.replica, items, c.replica_cs,
                                                 ApplyOptions{std::chrono::milliseconds(5000)}, applied);
    REQUIRE_MESSAGE(frames.ok(), frames.message());
    CHECK(applied == 3);
    CHECK(c.replica_cs.value() == c.states[4].pos.checksum);
    CHECK(r.Ok('b') == c.states[4].total);
    CHECK(r.Ok('c').empty());
    // Three commit frames: SQLite's recovery finds each transaction.
    CHECK(ScanWal(c.replica + "-wal").last_frame == *frames);
    CHECK(*frames == c.states[2].pages + c.states[3].pages + c.states[4].pages);
    c.Apply(5);
    c.CheckReplicaIs(5);
  }
  SUBCASE("a bad file in the middle: those before it are applied and published") {
    const std::string bad = c.dir / "bad.ltx";
    RewritePostChecksum(c.states[3].ltx_path, bad, c.states[3].pos.checksum ^ 0x5a5a);
    Result<VerifiedLtx> vbad = ReadAndVerifyLtx(bad);
    REQUIRE(vbad.ok());
    std::vector<LtxApplyItem> items{{&paths[0], &verified[0]}, {&bad, &*vbad}, {&paths[2], &verified[2]}};
    size_t applied = 0;
    Result<uint32_t> frames = ApplyLtxBatchToWal(c.replica, items, c.replica_cs,
                                                 ApplyOptions{std::chrono::milliseconds(5000)}, applied);
    REQUIRE_FALSE(frames.ok());
    CHECK(frames.message().find("checksum after applying TXID") != std::string::npos);
    CHECK(applied == 1);
    CHECK(ShmHeader(c.replica).mx_frame == c.states[2].pages);
    CHECK(r.Ok('b') == c.states[2].total);
    CHECK(ScanWal(c.replica + "-wal").last_frame == c.states[2].pages);
    Reload(c.replica_cs, c.replica);
    CHECK(c.replica_cs.value() == c.states[2].pos.checksum);
    c.Apply(3);
    c.Apply(4);
    c.CheckReplicaIs(4);
  }
  r.Stop();
}

}  // namespace
}  // namespace litefs
