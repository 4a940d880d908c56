// Helpers shared by the ltx unit tests: golden-file paths, whole-file reads,
// a whole-LTX decode, readers that misbehave on purpose, and temp files.
#pragma once

#include <doctest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "ltx/decoder.h"
#include "ltx/io.h"

namespace litefs::ltx::test {

inline std::string GoldenPath(const std::string& name) {
  return std::string(LITEFS_TESTDATA_DIR) + "/ltx/" + name;
}

inline std::vector<uint8_t> ReadFileBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot open " << path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline std::vector<uint8_t> Golden(const std::string& name) {
  return ReadFileBytes(GoldenPath(name));
}

struct DecodedLtx {
  Header header;
  std::vector<std::pair<uint32_t, std::vector<uint8_t>>> pages;
  Trailer trailer;
};

// Decodes a whole LTX file; the error of the first failing step otherwise.
inline Result<DecodedLtx> DecodeAll(io::Reader& in) {
  Result<std::unique_ptr<Decoder>> dec = Decoder::Open(in);
  if (!dec.ok()) return dec.status();
  DecodedLtx out;
  out.header = (*dec)->header();
  std::vector<uint8_t> page;
  for (;;) {
    Result<uint32_t> pgno = (*dec)->NextPage(page);
    if (!pgno.ok()) return pgno.status();
    if (*pgno == 0) break;
    out.pages.emplace_back(*pgno, page);
  }
  Result<Trailer> trailer = (*dec)->Finish();
  if (!trailer.ok()) return trailer.status();
  out.trailer = *trailer;
  return out;
}

inline Result<DecodedLtx> DecodeAll(std::span<const uint8_t> bytes) {
  io::BufferReader r(bytes);
  return DecodeAll(r);
}

// Hands out at most `step` bytes per Read and counts what it handed out.
class TrickleReader final : public io::Reader {
 public:
  TrickleReader(io::Reader& in, size_t step) : in_(in), step_(step) {}
  Result<size_t> Read(std::span<uint8_t> buf) override {
    Result<size_t> n = in_.Read(buf.first(std::min(buf.size(), step_)));
    if (n.ok()) consumed_ += *n;
    return n;
  }
  size_t consumed() const { return consumed_; }

 private:
  io::Reader& in_;
  size_t step_;
  size_t consumed_ = 0;
};

// A file in $TMPDIR (or /tmp) removed when the object goes away.
class TempFile {
 public:
  TempFile() {
    const char* dir = getenv("TMPDIR");
    path_ = std::string(dir && *dir ? dir : "/tmp") + "/ltx_test_XXXXXX";
    fd_ = mkstemp(path_.data());
    REQUIRE_MESSAGE(fd_ >= 0, "mkstemp " << path_);
  }
  ~TempFile() {
    close(fd_);
    unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  void Write(std::span<const uint8_t> bytes) {
    io::FdWriter w(fd_);
    REQUIRE(w.Write(bytes).ok());
  }

 private:
  std::string path_;
  int fd_;
};

}  // namespace litefs::ltx::test
