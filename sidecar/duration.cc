// Go-compatible duration parsing: a transcription of time.ParseDuration.
#include "sidecar/duration.h"

#include <cstdint>
#include <cstdlib>

namespace litefs {
namespace {

constexpr uint64_t kMaxNanos = uint64_t{1} << 63;  // magnitude of INT64_MIN

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

Status Invalid(std::string_view orig) {
  return Status::Error("invalid duration " + Quote(orig));
}

// Consumes leading decimal digits into *v; false on uint64/int64 overflow.
bool LeadingInt(std::string_view& s, uint64_t* v) {
  size_t i = 0;
  uint64_t x = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; i++) {
    if (x > kMaxNanos / 10) return false;
    x = x * 10 + uint64_t(s[i] - '0');
    if (x > kMaxNanos) return false;
  }
  *v = x;
  s.remove_prefix(i);
  return true;
}

// Consumes leading digits as a fraction: value *f / *scale. Digits that would
// overflow are consumed but ignored (as Go does).
void LeadingFraction(std::string_view& s, uint64_t* f, double* scale) {
  size_t i = 0;
  uint64_t x = 0;
  double sc = 1;
  bool overflow = false;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; i++) {
    if (overflow) continue;
    if (x > (kMaxNanos - 1) / 10) {
      overflow = true;
      continue;
    }
    uint64_t y = x * 10 + uint64_t(s[i] - '0');
    if (y > kMaxNanos) {
      overflow = true;
      continue;
    }
    x = y;
    sc *= 10;
  }
  *f = x;
  *scale = sc;
  s.remove_prefix(i);
}

bool UnitNanos(std::string_view u, uint64_t* out) {
  static constexpr struct {
    std::string_view name;
    uint64_t nanos;
  } kUnits[] = {
      {"ns", 1},
      {"us", 1000},
      {"\xC2\xB5s", 1000},  // U+00B5 micro sign
      {"\xCE\xBCs", 1000},  // U+03BC Greek small letter mu
      {"ms", 1000000},
      {"s", 1000000000ull},
      {"m", 60ull * 1000000000ull},
      {"h", 3600ull * 1000000000ull},
  };
  for (const auto& unit : kUnits) {
    if (unit.name == u) {
      *out = unit.nanos;
      return true;
    }
  }
  return false;
}

}  // namespace

Result<Duration> ParseGoDuration(std::string_view text) {
  const std::string_view orig = text;
  std::string_view s = text;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return Duration(0);
  if (s.empty()) return Invalid(orig);

  uint64_t d = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || (s[0] >= '0' && s[0] <= '9'))) return Invalid(orig);
    uint64_t v = 0, f = 0;
    double scale = 1;
    size_t before = s.size();
    if (!LeadingInt(s, &v)) return Invalid(orig);
    const bool pre = before != s.size();
    bool post = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      before = s.size();
      LeadingFraction(s, &f, &scale);
      post = before != s.size();
    }
    if (!pre && !post) return Invalid(orig);

    size_t i = 0;
    while (i < s.size() && s[i] != '.' && !(s[i] >= '0' && s[i] <= '9')) i++;
    if (i == 0) return Status::Error("missing unit in duration " + Quote(orig));
    std::string_view u = s.substr(0, i);
    s.remove_prefix(i);
    uint64_t unit = 0;
    if (!UnitNanos(u, &unit)) {
      return Status::Error("unknown unit " + Quote(u) + " in duration " + Quote(orig));
    }
    if (v > kMaxNanos / unit) return Invalid(orig);
    v *= unit;
    if (f > 0) {
      v += uint64_t(double(f) * (double(unit) / scale));
      if (v > kMaxNanos) return Invalid(orig);
    }
    d += v;
    if (d > kMaxNanos) return Invalid(orig);
  }
  if (!neg && d > kMaxNanos - 1) return Invalid(orig);

  // Truncate toward zero to milliseconds.
  const int64_t ms = int64_t(d / 1000000);
  return Duration(neg ? -ms : ms);
}

std::string FormatGoDuration(Duration d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string sign;
  uint64_t u = ms < 0 ? uint64_t(0) - uint64_t(ms) : uint64_t(ms);
  if (ms < 0) sign = "-";
  if (u < 1000) return sign + std::to_string(u) + "ms";

  std::string out = sign;
  const uint64_t hours = u / 3600000;
  const uint64_t minutes = (u / 60000) % 60;
  const uint64_t secs = (u / 1000) % 60;
  const uint64_t frac = u % 1000;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (hours > 0 || minutes > 0) out += std::to_string(minutes) + "m";
  out += std::to_string(secs);
  if (frac > 0) {
    std::string f = std::to_string(frac);
    f.insert(0, 3 - f.size(), '0');
    while (f.back() == '0') f.pop_back();
    out += "." + f;
  }
  return out + "s";
}

}  // namespace litefs
