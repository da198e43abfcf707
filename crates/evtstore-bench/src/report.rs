//! The JSON lines of WORKLOAD.md, on stdout.

use serde_json::{Value, json};

/// Who is measured: the system and its provider.
pub(crate) struct Reporter {
    pub(crate) system: &'static str,
    pub(crate) provider: String,
    /// SQLite's synchronous setting, printed beside SQLite figures.
    pub(crate) durability: Option<&'static str>,
    /// The Tokio runtime: "single" or "multi" threaded.
    pub(crate) runtime: &'static str,
    /// The domain's aggregate cache capacity, when it has one.
    pub(crate) aggregate_cache: Option<usize>,
}

impl Reporter {
    /// A throughput line: `n` operations in `ms` milliseconds.
    pub(crate) fn rate(&self, workload: &str, n: usize, ms: f64) {
        let per_s = n as f64 / (ms / 1000.0);
        self.line(
            workload,
            json!({ "n": n, "ms": round(ms), "per_s": round(per_s) }),
        );
    }

    /// A throughput line with `allocations`, those made during the `n` operations, per operation.
    pub(crate) fn rate_allocating(&self, workload: &str, n: usize, ms: f64, allocations: u64) {
        let per_s = n as f64 / (ms / 1000.0);
        let per_op = allocations as f64 / n as f64;
        let fields = json!({
            "n": n, "ms": round(ms), "per_s": round(per_s), "allocs_per_op": round(per_op)
        });
        self.line(workload, fields);
    }

    /// A load line: an aggregate of `events` events loaded in `ms` milliseconds (to the
    /// microsecond: a load from a snapshot takes well under one), making `allocations`.
    pub(crate) fn load(&self, workload: &str, events: usize, ms: f64, allocations: u64) {
        let ms = (ms * 1000.0).round() / 1000.0;
        let fields = json!({ "n": events, "ms": ms, "allocs_per_load": allocations });
        self.line(workload, fields);
    }

    /// A latency line: percentiles of `samples_ms`.
    pub(crate) fn latency(&self, workload: &str, mut samples_ms: Vec<f64>) {
        samples_ms.sort_by(f64::total_cmp);
        let at = |q: f64| samples_ms[((samples_ms.len() - 1) as f64 * q).round() as usize];
        let fields =
            json!({ "n": samples_ms.len(), "p50_ms": round(at(0.5)), "p99_ms": round(at(0.99)) });
        self.line(workload, fields);
    }

    /// A line with fields of the workload's own.
    pub(crate) fn custom(&self, workload: &str, fields: Value) {
        self.line(workload, fields);
    }

    fn line(&self, workload: &str, fields: Value) {
        let mut line =
            json!({ "system": self.system, "provider": self.provider, "workload": workload });
        if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
            line.extend(fields);
            line.insert("runtime".into(), self.runtime.into());
            if let Some(durability) = self.durability {
                line.insert("durability".into(), durability.into());
            }
            if let Some(capacity) = self.aggregate_cache {
                line.insert("aggregate_cache".into(), capacity.into());
            }
        }
        println!("{line}");
    }
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}
