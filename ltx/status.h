// Status and Result<T>: errors as values with a message a user can act on.
//
// Used by every C++ component of litefs-vfs (ltx, sidecar, proxy). The VFS
// library converts a failed Status into an SQLite result code at its C ABI;
// nothing here throws.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace litefs {

class [[nodiscard]] Status {
 public:
  Status() = default;  // success

  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !message_.has_value(); }
  const std::string& message() const {
    static const std::string kOk = "ok";
    return message_ ? *message_ : kOk;
  }

  // Prefixes the message with context ("open foo.ltx: <message>").
  Status Context(const std::string& what) const {
    if (ok()) return *this;
    return Status(what + ": " + *message_);
  }

 private:
  explicit Status(std::string message) : message_(std::move(message)) {}
  std::optional<std::string> message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.ok());
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  const std::string& message() const { return status_.message(); }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace litefs

// Returns early from the enclosing function when `expr` yields a failed Status.
#define LITEFS_RETURN_IF_ERROR(expr)           \
  do {                                         \
    ::litefs::Status _litefs_status = (expr);  \
    if (!_litefs_status.ok()) return _litefs_status; \
  } while (0)
