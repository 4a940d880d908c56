// How far apart a replica starts its rollback-mode applies under a steady
// stream of commits. Each such apply syncs a journal and the database: two
// flushes of the disk the replica's apps (or, on one machine, the primary's)
// sync on too. The files arriving while the next apply is held back go in
// together, under one journal and its two flushes.
//
// The hold grows with the time an apply took — mostly its two flushes, so
// a slow or contended disk — to keep the replica's share of that disk
// near a sixth; a fast disk keeps the floor, a very slow one the ceiling,
// which also bounds the lag the hold adds under load.
#pragma once

#include <algorithm>
#include <chrono>

namespace litefs {

inline constexpr std::chrono::nanoseconds kMinRollbackApplyPacing = std::chrono::milliseconds(4);
inline constexpr std::chrono::nanoseconds kMaxRollbackApplyPacing = std::chrono::milliseconds(16);
inline constexpr int kRollbackApplyDutyFactor = 6;

// Time from the start of one rollback-mode apply to the start of the next,
// given how long the first took.
constexpr std::chrono::nanoseconds RollbackApplyPacing(std::chrono::nanoseconds apply_took) {
  return std::clamp(apply_took * kRollbackApplyDutyFactor, kMinRollbackApplyPacing,
                    kMaxRollbackApplyPacing);
}

}  // namespace litefs
