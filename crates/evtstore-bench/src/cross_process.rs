//! W6: from before a command to its event's callback in a handler of another process on the
//! same store. Both processes read the machine's monotonic clock.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use evtstore::Domain;
use tokio::sync::mpsc;

use crate::counter::{Bench, Counter, DoOne};
use crate::report::Reporter;

const COMMANDS: usize = 100;

/// The machine's monotonic clock, in nanoseconds: the same in every process.
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// The child's part: a handler at the end of the store's history printing `id ns` for each
/// event it gets, after a `ready` line. Runs until killed.
pub(crate) async fn serve_handler(domain: Domain<Bench>) -> Result<(), String> {
    let handler = domain
        .handler("w6")
        .in_memory_bookmark()
        .tail_stream(true)
        .handle::<Counter, _>(|_, _, meta| {
            println!("{} {}", meta.aggregate_id, monotonic_ns());
            Ok(())
        })
        .build()
        .map_err(|e| e.to_string())?;
    handler.run_once().await.map_err(|e| e.to_string())?;
    handler.start();
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}

/// The parent's part: starts the child with `child_args`, executes the commands 20 ms apart,
/// and reports the latencies the child saw.
pub(crate) async fn latency(
    domain: &Domain<Bench>,
    child_args: &[String],
    out: &Reporter,
) -> Result<(), String> {
    let (mut child, mut lines) = start_child(child_args)?;
    let outcome = measure(domain, &mut lines).await;
    let _ = child.kill();
    let _ = child.wait();
    out.latency("W6_cross_process_latency", outcome?);
    Ok(())
}

async fn measure(
    domain: &Domain<Bench>,
    lines: &mut mpsc::UnboundedReceiver<String>,
) -> Result<Vec<f64>, String> {
    while next_line(lines).await? != "ready" {}
    let mut sent = HashMap::new();
    for i in 0..COMMANDS {
        let id = format!("w6-{i}");
        sent.insert(id.clone(), monotonic_ns());
        let done = domain.execute(&id, DoOne { one: 1 }).await;
        done.map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut samples = Vec::with_capacity(COMMANDS);
    while samples.len() < COMMANDS {
        let line = next_line(lines).await?;
        let (id, at) = line.split_once(' ').unwrap_or_default();
        let at: u64 = at.parse().unwrap_or_default();
        if let Some(before) = sent.get(id) {
            samples.push(at.saturating_sub(*before) as f64 / 1e6);
        }
    }
    Ok(samples)
}

async fn next_line(lines: &mut mpsc::UnboundedReceiver<String>) -> Result<String, String> {
    let wait = tokio::time::timeout(Duration::from_secs(30), lines.recv());
    wait.await
        .map_err(|_| "W6: the handler process went silent".to_owned())?
        .ok_or("W6: the handler process ended".to_owned())
}

/// Starts this program as the handler process; its stdout lines arrive on the receiver.
fn start_child(args: &[String]) -> Result<(Child, mpsc::UnboundedReceiver<String>), String> {
    let program = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Process::new(program)
        .args(args)
        .arg("--w6-handler")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("W6: cannot start the handler process: {e}"))?;
    let stdout = child.stdout.take().ok_or("W6: no stdout")?;
    let (send, receive) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    Ok((child, receive))
}
