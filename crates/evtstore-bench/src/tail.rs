//! W7_tail_latency: 64 tasks execute `DoOne` over 1,000 aggregates (`t-0`…) for a while; every
//! command's latency is counted in a histogram of fixed size (so the run's own bookkeeping
//! does not grow), and the process's resident memory is sampled each second, so a stall or a
//! leak shows. Figures: p50, p99 and max latency, and resident memory at the first and last
//! second and at its peak.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use evtstore::{Domain, Result};
use serde_json::json;

use crate::counter::{Bench, DoOne};
use crate::report::Reporter;

const TASKS: usize = 64;
const AGGREGATES: usize = 1000;

/// Runs W7 for `seconds` and prints its line.
pub(crate) async fn run(domain: &Domain<Bench>, seconds: u64, out: &Reporter) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Histogram::new());
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (domain, stop, latencies) = (domain.clone(), stop.clone(), latencies.clone());
            tokio::spawn(commands(domain, task, stop, latencies))
        })
        .collect();
    let mut memory = Vec::with_capacity(seconds as usize);
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        memory.push(resident_mb());
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a W7 task panicked")?;
    }
    eprintln!("W7 resident memory each second (MiB): {memory:?}");
    let peak = memory.iter().copied().fold(0.0, f64::max);
    let fields = json!({
        "n": latencies.count(), "seconds": seconds, "tasks": TASKS,
        "p50_ms": round(latencies.quantile_ms(0.5)), "p99_ms": round(latencies.quantile_ms(0.99)),
        "max_ms": round(latencies.max_ms()),
        "rss_first_mb": round(memory[0]), "rss_last_mb": round(memory[memory.len() - 1]),
        "rss_peak_mb": round(peak),
    });
    out.custom("W7_tail_latency", fields);
    Ok(())
}

/// One task's commands until `stop`, each timed.
async fn commands(
    domain: Domain<Bench>,
    task: usize,
    stop: Arc<AtomicBool>,
    latencies: Arc<Histogram>,
) -> Result<()> {
    let mut next = task;
    while !stop.load(Ordering::Relaxed) {
        let id = format!("t-{}", next % AGGREGATES);
        let start = Instant::now();
        match domain.execute(&id, DoOne { one: 1 }).await {
            Ok(_) => {}
            Err(error) if error.is_conflict() => {} // another task's command on it: timed too
            Err(error) => return Err(error.into()),
        }
        latencies.record(start.elapsed());
        next += TASKS;
    }
    Ok(())
}

/// Latencies counted in buckets of 10 µs up to 100 ms, then of 1 ms up to a minute; the
/// largest kept exactly.
struct Histogram {
    buckets: Vec<AtomicU64>,
    max_ns: AtomicU64,
}

/// Buckets of 10 µs below this many microseconds.
const FINE_US: u64 = 100_000;
const FINE: usize = (FINE_US / 10) as usize;
/// Buckets of 1 ms after them, the last holding everything longer.
const COARSE: usize = 60_000;

impl Histogram {
    fn new() -> Self {
        let buckets = (0..FINE + COARSE).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            buckets,
            max_ns: AtomicU64::new(0),
        }
    }

    fn record(&self, latency: Duration) {
        let us = latency.as_micros() as u64;
        let index = match us < FINE_US {
            true => (us / 10) as usize,
            false => (FINE + ((us - FINE_US) / 1000) as usize).min(FINE + COARSE - 1),
        };
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let ns = latency.as_nanos() as u64;
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The latency at quantile `q` (the sample of rank `(n - 1) * q`, rounded), in ms: the
    /// middle of its bucket.
    fn quantile_ms(&self, q: f64) -> f64 {
        let rank = ((self.count().saturating_sub(1)) as f64 * q).round() as u64;
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen > rank {
                return match index < FINE {
                    true => (index as f64 + 0.5) * 0.01,
                    false => (FINE_US / 1000) as f64 + (index - FINE) as f64 + 0.5,
                };
            }
        }
        0.0
    }

    fn max_ms(&self) -> f64 {
        self.max_ns.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// The process's resident memory, in MiB (Linux; 0 elsewhere).
fn resident_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:"));
    let kib = line.and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_max_come_from_the_recorded_latencies() {
        let latencies = Histogram::new();
        for us in (1..=1000).map(|i| i * 100) {
            latencies.record(Duration::from_micros(us)); // 0.1 ms to 100 ms
        }
        latencies.record(Duration::from_millis(2500));
        assert_eq!(latencies.count(), 1001);
        assert_eq!(round(latencies.quantile_ms(0.5)), 50.1);
        assert_eq!(round(latencies.quantile_ms(0.99)), 99.1);
        assert_eq!(round(latencies.quantile_ms(1.0)), 2500.5);
        assert_eq!(latencies.max_ms(), 2500.0);
    }
}
