// Byte sinks and sources used by the LTX encoder and decoder.
//
// Encoding and decoding stream through these interfaces so that a large LTX
// file (a 1 GiB snapshot) never has to sit in memory: a FileWriter/FileReader
// works on a file descriptor, a BufferWriter/BufferReader on memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ltx/status.h"

namespace litefs::io {

class Writer {
 public:
  virtual ~Writer() = default;
  // Writes all of `data` or fails.
  virtual Status Write(std::span<const uint8_t> data) = 0;
};

class Reader {
 public:
  virtual ~Reader() = default;
  // Reads up to `buf.size()` bytes; returns 0 only at end of input.
  virtual Result<size_t> Read(std::span<uint8_t> buf) = 0;
};

// Reads exactly buf.size() bytes; a short read is an error naming `what`.
Status ReadFull(Reader& r, std::span<uint8_t> buf, const char* what);

class BufferWriter final : public Writer {
 public:
  Status Write(std::span<const uint8_t> data) override;
  const std::vector<uint8_t>& data() const { return data_; }
  std::vector<uint8_t>& data() { return data_; }

 private:
  std::vector<uint8_t> data_;
};

class BufferReader final : public Reader {
 public:
  explicit BufferReader(std::span<const uint8_t> data) : data_(data) {}
  Result<size_t> Read(std::span<uint8_t> buf) override;
  size_t offset() const { return offset_; }

 private:
  std::span<const uint8_t> data_;
  size_t offset_ = 0;
};

// Coalesces small writes into writes of up to `capacity` bytes to `out` (not
// owned); larger writes go straight through. Flush() writes what is pending;
// nothing reaches `out` otherwise until the buffer fills. Added for the LTX
// encoder, which would otherwise issue two writes per page.
class BufferedWriter final : public Writer {
 public:
  BufferedWriter(Writer& out, size_t capacity) : out_(out), capacity_(capacity) {
    buf_.reserve(capacity);
  }
  Status Write(std::span<const uint8_t> data) override;
  Status Flush();

 private:
  Writer& out_;
  size_t capacity_;
  std::vector<uint8_t> buf_;
};

// Writes to a file descriptor (not owned); retries short writes and EINTR.
class FdWriter final : public Writer {
 public:
  explicit FdWriter(int fd) : fd_(fd) {}
  Status Write(std::span<const uint8_t> data) override;
  uint64_t bytes_written() const { return written_; }

 private:
  int fd_;
  uint64_t written_ = 0;
};

// Reads from a file descriptor (not owned) through a small internal buffer.
class FdReader final : public Reader {
 public:
  explicit FdReader(int fd) : fd_(fd), buf_(64 * 1024) {}
  Result<size_t> Read(std::span<uint8_t> buf) override;

 private:
  int fd_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0, len_ = 0;
};

// Big-endian helpers shared by every binary format in the project.
inline uint16_t LoadBE16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline uint32_t LoadBE32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}
inline uint64_t LoadBE64(const uint8_t* p) {
  return uint64_t(LoadBE32(p)) << 32 | LoadBE32(p + 4);
}
inline void StoreBE16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v >> 8); p[1] = uint8_t(v); }
inline void StoreBE32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24); p[1] = uint8_t(v >> 16); p[2] = uint8_t(v >> 8); p[3] = uint8_t(v);
}
inline void StoreBE64(uint8_t* p, uint64_t v) {
  StoreBE32(p, uint32_t(v >> 32));
  StoreBE32(p + 4, uint32_t(v));
}

}  // namespace litefs::io
