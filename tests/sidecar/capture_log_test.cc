// Tests of sidecar/capture_log: copies of unsynced LTX files in a file
// written through once, forgotten by a generation bump.
#include "sidecar/capture_log.h"

#include <doctest.h>
#include <sys/stat.h>

#include <string>

#include "sidecar/fsutil.h"
#include "sidecar_test_util.h"

namespace litefs {
namespace {

using test::TempDir;

std::string WriteFile(const TempDir& dir, const std::string& name, const std::string& content) {
  const std::string path = dir / name;
  REQUIRE(fs::WriteFileAtomic(path, content, /*sync=*/false).ok());
  return path;
}

std::vector<std::string> CopiesIn(const std::string& path, uint64_t capacity) {
  CaptureLog reopened(path, capacity);  // as a restarted sidecar sees it
  Result<std::vector<std::string>> copies = reopened.Copies();
  REQUIRE(copies.ok());
  return *copies;
}

TEST_CASE("copies come back in order after a restart, and are gone once forgotten") {
  TempDir dir;
  const std::string path = dir / "ltx-copies";
  const uint64_t capacity = 64 << 10;
  CaptureLog log(path, capacity);
  CHECK(CopiesIn(path, capacity).empty());  // not even created yet
  CHECK_FALSE(fs::Exists(path));

  REQUIRE(*log.Append(WriteFile(dir, "a", "first copy")));
  REQUIRE(*log.Append(WriteFile(dir, "b", std::string(3001, 'b'))));
  // Created whole on first use: appends only overwrite blocks.
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK(uint64_t(st.st_size) == capacity);
  std::vector<std::string> copies = CopiesIn(path, capacity);
  REQUIRE(copies.size() == 2);
  CHECK(copies[0] == "first copy");
  CHECK(copies[1] == std::string(3001, 'b'));

  REQUIRE(log.Forget().ok());
  CHECK(CopiesIn(path, capacity).empty());
  // The next copy starts over at the beginning, over the forgotten ones.
  REQUIRE(*log.Append(WriteFile(dir, "c", "third")));
  copies = CopiesIn(path, capacity);
  REQUIRE(copies.size() == 1);
  CHECK(copies[0] == "third");

  // A reopened log appends after the copies it holds.
  CaptureLog reopened(path, capacity);
  REQUIRE(*reopened.Append(WriteFile(dir, "d", "fourth")));
  copies = CopiesIn(path, capacity);
  REQUIRE(copies.size() == 2);
  CHECK(copies[1] == "fourth");
}

TEST_CASE("a copy that does not fit is refused without writing anything") {
  TempDir dir;
  const std::string path = dir / "ltx-copies";
  const uint64_t capacity = 16 << 10;
  CaptureLog log(path, capacity);
  REQUIRE(*log.Append(WriteFile(dir, "a", std::string(8000, 'a'))));
  Result<bool> appended = log.Append(WriteFile(dir, "b", std::string(8000, 'b')));
  REQUIRE(appended.ok());
  CHECK_FALSE(*appended);
  CHECK(CopiesIn(path, capacity).size() == 1);
  REQUIRE(log.Forget().ok());
  CHECK(*log.Append(WriteFile(dir, "b", std::string(8000, 'b'))));
  // Larger than the whole log: never fits.
  CHECK_FALSE(*log.Append(WriteFile(dir, "c", std::string(capacity, 'c'))));
}

TEST_CASE("a torn copy ends the list") {
  TempDir dir;
  const std::string path = dir / "ltx-copies";
  const uint64_t capacity = 64 << 10;
  CaptureLog log(path, capacity);
  REQUIRE(*log.Append(WriteFile(dir, "a", std::string(2000, 'a'))));
  REQUIRE(*log.Append(WriteFile(dir, "b", std::string(2000, 'b'))));
  REQUIRE(*log.Append(WriteFile(dir, "c", std::string(2000, 'c'))));
  // The crash tore the second copy's bytes: it and what follows are lost.
  Result<fs::UniqueFd> fd = fs::Open(path, O_WRONLY);
  REQUIRE(fd.ok());
  const uint64_t second = CaptureLog::kHeaderSize + CaptureLog::kEntryHeaderSize + 2000 +
                          CaptureLog::kEntryHeaderSize;
  REQUIRE(fs::PwriteFull(fd->get(), "X", 1, second + 1000).ok());
  std::vector<std::string> copies = CopiesIn(path, capacity);
  REQUIRE(copies.size() == 1);
  CHECK(copies[0] == std::string(2000, 'a'));
}

TEST_CASE("a log whose creation was cut short is created again") {
  TempDir dir;
  const std::string path = dir / "ltx-copies";
  REQUIRE(fs::WriteFileAtomic(path, std::string(100, '\0'), /*sync=*/false).ok());
  CaptureLog log(path, 32 << 10);
  CHECK(CopiesIn(path, 32 << 10).empty());
  REQUIRE(*log.Append(WriteFile(dir, "a", "copy")));
  CHECK(CopiesIn(path, 32 << 10).size() == 1);
}

TEST_CASE("a copy whose flush is deferred is in the log, and Flush makes it durable") {
  TempDir dir;
  const std::string path = dir / "ltx-copies";
  const uint64_t capacity = 64 << 10;
  CaptureLog log(path, capacity);
  REQUIRE(log.Flush().ok());  // nothing to flush yet
  REQUIRE(*log.Append(WriteFile(dir, "a", "flushed"), /*flush=*/true));
  REQUIRE(*log.Append(WriteFile(dir, "b", "deferred"), /*flush=*/false));
  REQUIRE(*log.Append(WriteFile(dir, "c", std::string(5000, 'c')), /*flush=*/false));
  std::vector<std::string> copies = CopiesIn(path, capacity);
  REQUIRE(copies.size() == 3);
  CHECK(copies[1] == "deferred");
  CHECK(copies[2] == std::string(5000, 'c'));
  REQUIRE(log.Flush().ok());
  CHECK(CopiesIn(path, capacity).size() == 3);
}

}  // namespace
}  // namespace litefs
