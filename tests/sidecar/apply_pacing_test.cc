// RollbackApplyPacing: the floor on a fast disk, six times a slower apply,
// the ceiling on a very slow one.
#include "sidecar/apply_pacing.h"

#include "doctest/doctest.h"

namespace litefs {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

TEST_CASE("fast applies keep the floor") {
  CHECK(RollbackApplyPacing(microseconds(0)) == milliseconds(4));
  CHECK(RollbackApplyPacing(microseconds(200)) == milliseconds(4));
  CHECK(RollbackApplyPacing(microseconds(666)) == milliseconds(4));
}

TEST_CASE("a slower apply holds the next one back six times as long") {
  CHECK(RollbackApplyPacing(microseconds(1300)) == microseconds(7800));
  CHECK(RollbackApplyPacing(milliseconds(2)) == milliseconds(12));
}

TEST_CASE("a very slow apply is held back no more than the ceiling") {
  CHECK(RollbackApplyPacing(milliseconds(3)) == milliseconds(16));
  CHECK(RollbackApplyPacing(milliseconds(50)) == milliseconds(16));
}

}  // namespace
}  // namespace litefs
