//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Counters live in memory and reset when the process restarts, as
//! Prometheus expects. The queue depth is read from the store when scraped,
//! so an unscraped idle server reads nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::engine::executor::ExecutionReport;
use crate::engine::queue::QueueDepth;

/// Upper bounds of the node duration histogram, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default)]
pub struct Metrics(Mutex<Counters>);

#[derive(Debug, Default)]
struct Counters {
    executions: BTreeMap<&'static str, u64>,
    /// Count per bucket of `BUCKETS`, then +Inf.
    node_buckets: [u64; BUCKETS.len() + 1],
    node_sum_seconds: f64,
    node_count: u64,
    egress_refusals: u64,
    deliveries_accepted: u64,
    deliveries_refused: u64,
    /// (route, method, status) → count.
    requests: BTreeMap<(String, String, u16), u64>,
}

impl Metrics {
    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn execution_finished(&self, report: &ExecutionReport) {
        let mut c = self.counters();
        *c.executions.entry(report.status.as_str()).or_default() += 1;
        for node in &report.nodes {
            let seconds = node.duration_ms.max(0) as f64 / 1000.0;
            let bucket = BUCKETS
                .iter()
                .position(|b| seconds <= *b)
                .unwrap_or(BUCKETS.len());
            c.node_buckets[bucket] += 1;
            c.node_sum_seconds += seconds;
            c.node_count += 1;
            c.egress_refusals += node.egress_refused as u64;
        }
    }

    /// An execution that ended without a report (the engine refused it).
    pub fn execution_failed(&self) {
        *self.counters().executions.entry("failed").or_default() += 1;
    }

    /// A trigger delivery that verified and was queued (or found its run).
    pub fn webhook_accepted(&self) {
        self.counters().deliveries_accepted += 1;
    }

    /// A trigger delivery refused before it was queued.
    pub fn webhook_refused(&self) {
        self.counters().deliveries_refused += 1;
    }

    pub fn request(&self, route: &str, method: &str, status: u16) {
        *self
            .counters()
            .requests
            .entry((route.to_owned(), method.to_owned(), status))
            .or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self, depth: QueueDepth) -> String {
        let c = self.counters();
        let mut out = String::new();
        out.push_str("# HELP narakim_executions_total Executions finished, by status.\n");
        out.push_str("# TYPE narakim_executions_total counter\n");
        for status in ["succeeded", "failed"] {
            let n = c.executions.get(status).copied().unwrap_or(0);
            let _ = writeln!(out, "narakim_executions_total{{status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP narakim_queue_depth Runs in the queue, by state.\n");
        out.push_str("# TYPE narakim_queue_depth gauge\n");
        let _ = writeln!(
            out,
            "narakim_queue_depth{{state=\"waiting\"}} {}",
            depth.waiting
        );
        let _ = writeln!(
            out,
            "narakim_queue_depth{{state=\"running\"}} {}",
            depth.running
        );
        out.push_str("# HELP narakim_node_duration_seconds How long each node took.\n");
        out.push_str("# TYPE narakim_node_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += c.node_buckets[i];
            let _ = writeln!(
                out,
                "narakim_node_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += c.node_buckets[BUCKETS.len()];
        let _ = writeln!(
            out,
            "narakim_node_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "narakim_node_duration_seconds_sum {}",
            c.node_sum_seconds
        );
        let _ = writeln!(out, "narakim_node_duration_seconds_count {}", c.node_count);
        out.push_str("# HELP narakim_egress_refusals_total Requests of nodes that the egress check refused.\n");
        out.push_str("# TYPE narakim_egress_refusals_total counter\n");
        let _ = writeln!(out, "narakim_egress_refusals_total {}", c.egress_refusals);
        out.push_str(
            "# HELP narakim_trigger_deliveries_total Trigger deliveries, accepted or refused.\n",
        );
        out.push_str("# TYPE narakim_trigger_deliveries_total counter\n");
        let _ = writeln!(
            out,
            "narakim_trigger_deliveries_total{{outcome=\"accepted\"}} {}",
            c.deliveries_accepted
        );
        let _ = writeln!(
            out,
            "narakim_trigger_deliveries_total{{outcome=\"refused\"}} {}",
            c.deliveries_refused
        );
        out.push_str(
            "# HELP narakim_api_requests_total API requests, by route, method and status.\n",
        );
        out.push_str("# TYPE narakim_api_requests_total counter\n");
        for ((route, method, status), n) in &c.requests {
            let _ = writeln!(
                out,
                "narakim_api_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                label(route),
                label(method)
            );
        }
        out
    }
}

/// A label value escaped as the format requires.
fn label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
