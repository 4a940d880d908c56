// MicroTimer: fires once, not before its delay; a restart replaces the
// pending start; a stopped timer stays quiet.
#include "sidecar/micro_timer.h"

#include <uv.h>

#include <chrono>

#include "doctest/doctest.h"

namespace litefs {
namespace {

using std::chrono::microseconds;

// Runs `loop` until uv_stop or `bound_ms`, whichever comes first (a
// referenced timer keeps the loop running: MicroTimer does not).
void RunFor(uv_loop_t* loop, uint64_t bound_ms) {
  uv_timer_t bound;
  uv_timer_init(loop, &bound);
  uv_timer_start(&bound, [](uv_timer_t* t) { uv_stop(t->loop); }, bound_ms, 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close(reinterpret_cast<uv_handle_t*>(&bound), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
}

}  // namespace

TEST_CASE("a micro timer fires once, no sooner than asked") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  MicroTimer* timer = MicroTimer::Create(&loop);
  REQUIRE(timer != nullptr);
  int fired = 0;
  const uint64_t start = uv_hrtime();
  uint64_t at = 0;
  timer->Start(microseconds(300), [&] {
    fired++;
    at = uv_hrtime();
    uv_stop(&loop);
  });
  CHECK(timer->active());
  RunFor(&loop, 5000);
  CHECK(fired == 1);
  CHECK(at - start >= 300 * 1000);
  CHECK_FALSE(timer->active());

  SUBCASE("a restart replaces the pending start") {
    int first = 0, second = 0;
    timer->Start(microseconds(200000), [&] { first++; });
    timer->Start(microseconds(100), [&] {
      second++;
      uv_stop(&loop);
    });
    RunFor(&loop, 5000);
    CHECK(second == 1);
    CHECK(first == 0);
  }
  SUBCASE("a stopped timer stays quiet") {
    int calls = 0;
    timer->Start(microseconds(100), [&] { calls++; });
    timer->Stop();
    RunFor(&loop, 20);
    CHECK(calls == 0);
  }
  SUBCASE("it may start itself again from its callback") {
    int calls = 0;
    std::function<void()> again = [&] {
      if (++calls < 3) return timer->Start(microseconds(100), again);
      uv_stop(&loop);
    };
    timer->Start(microseconds(100), again);
    RunFor(&loop, 5000);
    CHECK(calls == 3);
  }
  MicroTimer::Destroy(timer);
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(uv_loop_close(&loop) == 0);
}

}  // namespace litefs
