// Go duration strings ("10s", "1m", "500ms", "1h30m", "1.5s", "-2s", "0") parsed
// exactly like Go's time.ParseDuration, then truncated toward zero to whole
// milliseconds. Errors use Go's wording: `invalid duration "-"`,
// `missing unit in duration "10"`, `unknown unit "x" in duration "1x"`.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "ltx/status.h"

namespace litefs {

using Duration = std::chrono::milliseconds;

// Accepted units: ns, us, µs (U+00B5), μs (U+03BC), ms, s, m, h. A sign is
// allowed; "0" is the only number accepted without a unit. Values beyond
// Go's int64 nanosecond range are errors.
Result<Duration> ParseGoDuration(std::string_view text);

// Formats a duration the way Go prints it ("1h30m0s", "1.5s", "500ms", "0s").
std::string FormatGoDuration(Duration d);

}  // namespace litefs
