// Prometheus text exposition for GET /metrics (reference §1.10): LiteFS's
// metric families where they apply, plus latency histograms of the
// sidecar's commit path (primary) and apply path (replica). Observations
// happen on the loop thread in completions that run anyway, so recording
// costs two clock reads and an array increment — no locks, no allocation.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace litefs {

class Store;

// A cumulative histogram of durations with fixed buckets from 50 µs to
// 10 s (Prometheus `_bucket{le}`, `_sum`, `_count`). Loop thread only.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 16> kBounds = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,   0.05,   0.1,     0.25,   0.5,   1,     2.5,    10};

  void Observe(double seconds);
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // Appends the family (HELP, TYPE and the series) to `out`.
  void Render(std::string& out, std::string_view name, std::string_view help) const;

 private:
  std::array<uint64_t, kBounds.size()> buckets_{};  // not cumulative
  uint64_t count_ = 0;
  double sum_ = 0;
};

// What the node measures on its hot paths; owned by the node, shared by its
// databases through DatabaseEnv::metrics.
struct NodeMetrics {
  LatencyHistogram commit;  // app's Commit message in -> LTX durable and position set
  LatencyHistogram apply;   // received LTX file complete -> applied and position set
};

// The node-level gauges the store cannot know by itself.
struct NodeGauges {
  size_t stream_count = 0;       // replicas streaming from this node
  size_t event_subscribers = 0;  // open GET /events responses
  double lag_seconds = 0;        // as <dir>/.lag and LiteFS's litefs_lag_seconds
};

// The whole /metrics response body.
std::string RenderMetrics(Store& store, const NodeMetrics* metrics, const NodeGauges& gauges);

// A Prometheus label value with \, " and newlines escaped.
std::string EscapeLabelValue(std::string_view v);

}  // namespace litefs
