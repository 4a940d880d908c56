// CommitRate: judged only over whole windows; slow and fast streams; a
// stream that slows down stops being fast at the next window.
#include "sidecar/commit_rate.h"

#include "doctest/doctest.h"

namespace litefs {
namespace {

constexpr uint64_t kMs = 1'000'000;

// Adds one commit every `gap_ns` from `start_ns` for `count` commits, with
// empty looks in between every 300 µs, as the lingering capture sees them.
uint64_t Feed(CommitRate& rate, uint64_t start_ns, uint64_t gap_ns, int count) {
  uint64_t now = start_ns, next_commit = start_ns + gap_ns;
  for (int seen = 0; seen < count;) {
    now += 300'000;
    uint64_t found = 0;
    while (next_commit <= now && seen + int(found) < count) {
      found++;
      next_commit += gap_ns;
    }
    seen += int(found);
    rate.Add(found, now);
  }
  return now;
}

TEST_CASE("a single commit in a short look is not a fast stream") {
  CommitRate rate(2000, 2 * kMs);
  rate.Add(1, 0);
  rate.Add(1, 300'000);
  CHECK_FALSE(rate.fast());  // the window is not over
}

TEST_CASE("1,000 commits a second are not fast; 4,000 are") {
  CommitRate slow(2000, 2 * kMs);
  Feed(slow, 0, kMs, 100);
  CHECK_FALSE(slow.fast());

  CommitRate fast(2000, 2 * kMs);
  Feed(fast, 0, kMs / 4, 100);
  CHECK(fast.fast());
}

TEST_CASE("a fast stream that slows down is no longer fast after a window") {
  CommitRate rate(2000, 2 * kMs);
  uint64_t now = Feed(rate, 0, kMs / 5, 50);
  REQUIRE(rate.fast());
  Feed(rate, now, kMs, 10);
  CHECK_FALSE(rate.fast());
}

TEST_CASE("paced looks at a steady 1,000 a second stay slow") {
  // Looks 2 ms apart, each finding the two commits made meanwhile.
  CommitRate rate(2000, 2 * kMs);
  for (uint64_t now = 2 * kMs; now <= 40 * kMs; now += 2 * kMs) rate.Add(2, now);
  CHECK_FALSE(rate.fast());
}

TEST_CASE("Reset forgets the verdict") {
  CommitRate rate(2000, 2 * kMs);
  Feed(rate, 0, kMs / 5, 50);
  REQUIRE(rate.fast());
  rate.Reset();
  CHECK_FALSE(rate.fast());
}

}  // namespace
}  // namespace litefs
