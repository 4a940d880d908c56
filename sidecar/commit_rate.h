// Whether commits are coming faster than a threshold, judged over windows of
// at least a given length: a short window says little (one commit in 300 µs
// reads as 3,333 a second at any rate up to that), a window of a few
// milliseconds holds several commits at the rates that matter.
#pragma once

#include <cstdint>

namespace litefs {

class CommitRate {
 public:
  CommitRate(uint64_t threshold_per_s, uint64_t window_ns)
      : threshold_per_s_(threshold_per_s), window_ns_(window_ns) {}

  // `commits` seen at `now_ns` (0 for a look that found none). A window
  // that reached its length decides `fast()` until the next one does.
  void Add(uint64_t commits, uint64_t now_ns) {
    if (!started_) {  // those commits came over an unknown time before
      started_ = true;
      window_start_ns_ = now_ns;
      return;
    }
    window_commits_ += commits;
    const uint64_t elapsed = now_ns - window_start_ns_;
    if (elapsed < window_ns_) return;
    fast_ = window_commits_ * 1'000'000'000 >= threshold_per_s_ * elapsed;
    window_start_ns_ = now_ns;
    window_commits_ = 0;
  }

  bool fast() const { return fast_; }

  // Forgets everything: the next window starts at the next Add.
  void Reset() { *this = CommitRate(threshold_per_s_, window_ns_); }

 private:
  uint64_t threshold_per_s_;
  uint64_t window_ns_;
  bool started_ = false;
  uint64_t window_start_ns_ = 0;
  uint64_t window_commits_ = 0;
  bool fast_ = false;
};

}  // namespace litefs
