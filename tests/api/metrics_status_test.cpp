// Metrics::snapshot (GET /v1/status) and render (GET /metrics) report the same numbers: counters,
// labelled gauges read at call time, the deployment.
#include <gtest/gtest.h>

#include <atomic>
#include <string>

#include "api/metrics.h"

namespace apilake {
namespace {

TEST(MetricsStatus, SnapshotAndExpositionAgree) {
  Metrics m;
  m.set_deployment("sqlite", "local");
  std::atomic<int> backlog{7};
  m.add_gauge("apilake_bus_backlog_messages", "Messages waiting.", "subscription", [&] {
    return Metrics::Samples{{"archive", 0}, {"curate", static_cast<double>(backlog.load())}};
  });
  m.add_pages_published(3);
  m.observe_batch("curate", 3, 40, 2, 0.01);
  m.observe_batch("curate", 1, 5, 0, 0.01);
  m.observe_batch("archive", 4, 4, 0, 0.01);

  auto s = m.snapshot();
  EXPECT_EQ(s.bus, "sqlite");
  EXPECT_EQ(s.lake, "local");
  EXPECT_GE(s.uptime_seconds, 0.0);
  EXPECT_EQ(s.pages_published, 3u);
  EXPECT_EQ(s.curate.batches, 2u);
  EXPECT_EQ(s.curate.messages, 4u);
  EXPECT_EQ(s.curate.rows, 45u);
  EXPECT_EQ(s.curate.deadlettered, 2u);
  EXPECT_EQ(s.archive.rows, 4u);
  ASSERT_EQ(s.gauges.count("apilake_bus_backlog_messages"), 1u);
  const auto& g = s.gauges.at("apilake_bus_backlog_messages");
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[1].first, "curate");
  EXPECT_EQ(g[1].second, 7.0);

  // Gauges are read at each call, not cached.
  backlog = 2;
  EXPECT_EQ(m.snapshot().gauges.at("apilake_bus_backlog_messages")[1].second, 2.0);
  const std::string text = m.render();
  EXPECT_NE(text.find("# TYPE apilake_bus_backlog_messages gauge\n"), std::string::npos);
  EXPECT_NE(text.find("apilake_bus_backlog_messages{subscription=\"curate\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("apilake_records_committed_total{consumer=\"curate\"} 45\n"), std::string::npos);
  EXPECT_NE(text.find("apilake_info{bus=\"sqlite\",lake=\"local\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("apilake_uptime_seconds "), std::string::npos);
}

TEST(MetricsStatus, DashboardRoutesHaveTheirOwnTemplates) {
  EXPECT_EQ(Metrics::route_of("/v1/status"), "/v1/status");
  EXPECT_EQ(Metrics::route_of("/"), "/");
  EXPECT_EQ(Metrics::route_of("/ui/app.js"), "/ui/{file}");
  EXPECT_EQ(Metrics::route_of("/assets/chart.js"), "/assets/chart.js");
  EXPECT_EQ(Metrics::route_of("/nope"), "other");
  Metrics m;
  m.observe_request("/ui/app.js", 200, 0.001);
  EXPECT_NE(m.render().find("apilake_http_requests_total{route=\"/ui/{file}\",status=\"200\"} 1\n"), std::string::npos);
}

}  // namespace
}  // namespace apilake
