//! W7_tail_latency: 64 tasks execute `DoOne` over 1,000 aggregates (`t-0`…) for a while; every
//! command's latency is kept, and the process's resident memory is sampled each second, so a
//! stall or a leak shows. Figures: p50, p99 and max latency, and resident memory at the first
//! and last second and at its peak.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(commands(domain.clone(), task, stop.clone())))
        .collect();
    let mut memory = Vec::new();
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        memory.push(resident_mb());
    }
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.expect("a W7 task panicked")?);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let peak = memory.iter().copied().fold(0.0, f64::max);
    let fields = json!({
        "n": samples.len(), "seconds": seconds, "tasks": TASKS,
        "p50_ms": round(at(0.5)), "p99_ms": round(at(0.99)), "max_ms": round(at(1.0)),
        "rss_first_mb": round(memory[0]), "rss_last_mb": round(memory[memory.len() - 1]),
        "rss_peak_mb": round(peak),
    });
    out.custom("W7_tail_latency", fields);
    Ok(())
}

/// One task's commands until `stop`, each timed.
async fn commands(domain: Domain<Bench>, task: usize, stop: Arc<AtomicBool>) -> Result<Vec<f64>> {
    let mut times = Vec::new();
    let mut next = task;
    while !stop.load(Ordering::Relaxed) {
        let id = format!("t-{}", next % AGGREGATES);
        let start = Instant::now();
        match domain.execute(&id, DoOne { one: 1 }).await {
            Ok(_) => {}
            Err(error) if error.is_conflict() => {} // another task's command on it: timed too
            Err(error) => return Err(error.into()),
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        next += TASKS;
    }
    Ok(times)
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
