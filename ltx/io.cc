// Memory and file-descriptor implementations of io::Writer / io::Reader.
#include "ltx/io.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace litefs::io {

Status ReadFull(Reader& r, std::span<uint8_t> buf, const char* what) {
  size_t got = 0;
  while (got < buf.size()) {
    Result<size_t> n = r.Read(buf.subspan(got));
    if (!n.ok()) return n.status().Context(std::string("read ") + what);
    if (*n == 0) {
      return Status::Error("unexpected end of input reading " + std::string(what) + " (got " +
                           std::to_string(got) + " of " + std::to_string(buf.size()) + " bytes)");
    }
    got += *n;
  }
  return Status();
}

Status BufferWriter::Write(std::span<const uint8_t> data) {
  data_.insert(data_.end(), data.begin(), data.end());
  return Status();
}

Result<size_t> BufferReader::Read(std::span<uint8_t> buf) {
  size_t n = std::min(buf.size(), data_.size() - offset_);
  if (n > 0) std::memcpy(buf.data(), data_.data() + offset_, n);
  offset_ += n;
  return n;
}

Status BufferedWriter::Write(std::span<const uint8_t> data) {
  if (buf_.size() + data.size() > capacity_) LITEFS_RETURN_IF_ERROR(Flush());
  if (data.size() >= capacity_) return out_.Write(data);
  buf_.insert(buf_.end(), data.begin(), data.end());
  return Status();
}

Status BufferedWriter::Flush() {
  if (buf_.empty()) return Status();
  Status s = out_.Write(buf_);
  buf_.clear();
  return s;
}

Status FdWriter::Write(std::span<const uint8_t> data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Error(std::string("write: ") + std::strerror(errno));
    }
    if (n == 0) return Status::Error("write: wrote 0 bytes");
    data = data.subspan(size_t(n));
    written_ += uint64_t(n);
  }
  return Status();
}

Result<size_t> FdReader::Read(std::span<uint8_t> buf) {
  if (buf.empty()) return size_t(0);
  if (pos_ == len_) {
    // Large reads bypass the buffer; small ones refill it.
    bool direct = buf.size() >= buf_.size();
    uint8_t* dst = direct ? buf.data() : buf_.data();
    size_t cap = direct ? buf.size() : buf_.size();
    ssize_t n;
    do {
      n = ::read(fd_, dst, cap);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return Status::Error(std::string("read: ") + std::strerror(errno));
    if (direct || n == 0) return size_t(n);
    pos_ = 0;
    len_ = size_t(n);
  }
  size_t n = std::min(buf.size(), len_ - pos_);
  std::memcpy(buf.data(), buf_.data() + pos_, n);
  pos_ += n;
  return n;
}

}  // namespace litefs::io
