//! The standard evtstore workload (`shared/bench/WORKLOAD.md`), printed as JSON lines.
//!
//! Run: `cargo run --release -p evtstore-bench -- --provider memory|sqlite|postgres|mysql
//! [--scale K] [--durability full|normal] [--raw] [--runtime single|multi]
//! [--aggregate-cache CAPACITY] [--snapshots]` (`--help` says what each does).
//! `--snapshots` runs the snapshot workloads instead of W1..W6 (`snapshots.rs`).
//! W6 (not on memory) starts this program again as its handler process, with `--w6-handler`.
//! `--raw` adds the raw SQLite or MariaDB ceiling for W1. Postgres: the server of
//! `EVTSTORE_PG_URL` (default `postgres://root@127.0.0.1:5432/postgres?sslmode=disable`, plain
//! TCP as the original's node-postgres); MariaDB: the server of `EVTSTORE_MYSQL_URL`
//! (default `mysql://root@127.0.0.1:3306/test`); on each, database `evtbench`, dropped and
//! created by the run. Each line names its Tokio runtime. W1 to W4 add `allocs_per_op`: the
//! allocations made in the whole process (every thread) during the workload, per command (W1,
//! W2), per event loaded (W3) or per event handled (W4).

mod allocs;
mod counter;
mod cross_process;
mod growth;
mod mysql;
mod postgres;
mod raw;
mod report;
mod snapshots;
mod tail;
mod upcast;
mod workloads;

use std::path::{Path, PathBuf};

use evtstore::sqlite::{Durability, SqliteOptions};
use evtstore::{Domain, MemoryProvider, SqliteProvider};

use counter::Bench;
use report::Reporter;
use workloads::Sizes;

#[global_allocator]
static ALLOCATOR: allocs::Counting = allocs::Counting;

const USAGE: &str = "\
usage: evtstore-bench [OPTIONS]   (one JSON line per workload on stdout)
  --provider memory|sqlite|postgres|mysql   the store (default memory); postgres and mysql use
                                            EVTSTORE_PG_URL / EVTSTORE_MYSQL_URL, database evtbench
  --scale K                  multiplies the aggregate and event counts (default 1)
  --durability full|normal   SQLite's synchronous setting (default full)
  --raw                      adds the raw SQLite, PostgreSQL or MariaDB ceilings for W1
  --runtime single|multi     Tokio's runtime (default single on postgres and mysql, else multi)
  --aggregate-cache CAPACITY the domain keeps up to CAPACITY aggregates in memory
  --snapshots                instead of W1..W6, the snapshot workloads:
                               W1_sequential_commands (no snapshots, for reference),
                               W1_snapshot_every_1 and W1_snapshot_every_100 (W1 on a counter
                               with snapshots, stored every event or when a version crosses a
                               multiple of 100), W3_100k_no_snapshot and W3_100k_snapshot (one
                               counter of 100,000 events loaded without, then with, a snapshot)
  --growth                   instead of W1..W6, W3 and W4 on a store filled in batches with
                               as many events as W1 and W2 leave: run at --scale 1, 10, 100
  --tail SECONDS             instead of W1..W6, W7_tail_latency: 64 tasks executing commands
                               over 1,000 aggregates for SECONDS (the standard run is 20);
                               p50, p99 and max latency, resident memory each second
  --help                     this text";

struct Args {
    provider: String,
    scale: usize,
    durability: Durability,
    raw: bool,
    /// Tokio's single-threaded runtime instead of the multi-threaded one.
    single_thread: Option<bool>,
    /// The domain's aggregate cache, holding up to this many aggregates.
    aggregate_cache: Option<usize>,
    /// W6's second process: a handler on the store another run made (`--w6-handler`).
    w6_handler: bool,
    /// The SQLite file of that store (`--path`).
    path: Option<PathBuf>,
    /// The snapshot workloads instead of W1..W6 (`--snapshots`).
    snapshots: bool,
    /// W7 for this many seconds instead of W1..W6 (`--tail`).
    tail: Option<u64>,
    /// W3 and W4 on a store filled in batches, instead of W1..W6 (`--growth`).
    growth: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        provider: "memory".into(),
        scale: 1,
        durability: Durability::Full,
        raw: false,
        single_thread: None,
        aggregate_cache: None,
        w6_handler: false,
        path: None,
        snapshots: false,
        tail: None,
        growth: false,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--provider" => args.provider = value()?,
            "--scale" => args.scale = value()?.parse().map_err(|e| format!("--scale: {e}"))?,
            "--durability" => {
                args.durability = match value()?.as_str() {
                    "full" => Durability::Full,
                    "normal" => Durability::Normal,
                    other => return Err(format!("--durability: {other:?} is not full or normal")),
                }
            }
            "--raw" => args.raw = true,
            "--aggregate-cache" => {
                let capacity = value()?
                    .parse()
                    .map_err(|e| format!("--aggregate-cache: {e}"))?;
                args.aggregate_cache = Some(capacity);
            }
            "--w6-handler" => args.w6_handler = true,
            "--snapshots" => args.snapshots = true,
            "--growth" => args.growth = true,
            "--tail" => args.tail = Some(value()?.parse().map_err(|e| format!("--tail: {e}"))?),
            "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--path" => args.path = Some(value()?.into()),
            "--runtime" => {
                args.single_thread = match value()?.as_str() {
                    "single" => Some(true),
                    "multi" => Some(false),
                    other => return Err(format!("--runtime: {other:?} is not single or multi")),
                }
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn fresh_file(name: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("evtstore-bench-{}-{name}.db", std::process::id()));
    remove_database(&path);
    path
}

async fn domain(args: &Args) -> Result<(Domain<Bench>, Option<PathBuf>), String> {
    match args.provider.as_str() {
        "memory" => Ok((Domain::new(MemoryProvider::new()), None)),
        "sqlite" => {
            let path = fresh_file("store");
            let options = SqliteOptions {
                durability: args.durability,
                ..SqliteOptions::default()
            };
            let provider = SqliteProvider::open_with(&path, options).map_err(|e| e.to_string())?;
            Ok((Domain::new(provider), Some(path)))
        }
        "postgres" => Ok((Domain::new(postgres::fresh_database().await?), None)),
        "mysql" => Ok((Domain::new(mysql::fresh_database().await?), None)),
        other => Err(format!(
            "unknown provider {other:?}: memory, sqlite, postgres or mysql"
        )),
    }
}

/// The store a W6 parent made, for its handler process.
async fn existing_domain(args: &Args) -> Result<Domain<Bench>, String> {
    match args.provider.as_str() {
        "sqlite" => {
            let path = args
                .path
                .as_ref()
                .ok_or("--w6-handler on sqlite needs --path")?;
            let options = SqliteOptions {
                durability: args.durability,
                ..SqliteOptions::default()
            };
            let provider = SqliteProvider::open_with(path, options).map_err(|e| e.to_string())?;
            Ok(Domain::new(provider))
        }
        "postgres" => Ok(Domain::new(postgres::existing_database().await?)),
        "mysql" => Ok(Domain::new(mysql::existing_database().await?)),
        other => Err(format!(
            "W6 needs a store two processes share, not {other:?}"
        )),
    }
}

/// What W6's handler process is started with: the same provider and store.
fn w6_child_args(args: &Args, file: Option<&Path>) -> Vec<String> {
    let mut child = vec!["--provider".to_owned(), args.provider.clone()];
    child.extend([
        "--durability".to_owned(),
        synchronous(args.durability).to_lowercase(),
    ]);
    if let Some(path) = file {
        child.extend(["--path".to_owned(), path.display().to_string()]);
    }
    child
}

async fn run(args: Args) -> Result<(), String> {
    if args.w6_handler {
        return cross_process::serve_handler(existing_domain(&args).await?).await;
    }
    let out = Reporter {
        system: "evtstore-rs",
        provider: args.provider.clone(),
        durability: (args.provider == "sqlite").then(|| synchronous(args.durability)),
        runtime: runtime_name(&args),
        aggregate_cache: args.aggregate_cache,
    };
    let sizes = Sizes::at(args.scale);
    let (mut domain, file) = domain(&args).await?;
    if let Some(capacity) = args.aggregate_cache {
        domain = domain.with_aggregate_cache(capacity);
    }
    if args.snapshots {
        eprintln!("running the snapshot workloads on {}", args.provider);
        let ran = snapshots::run(&domain, &sizes, &out).await;
        if let Some(path) = file {
            remove_database(&path);
        }
        return ran.map_err(|e| e.to_string());
    }
    if args.growth {
        eprintln!(
            "running W3 and W4 on {} at scale {}",
            args.provider, args.scale
        );
        let ran = growth::run(&domain, &sizes, &out).await;
        if let Some(path) = file {
            remove_database(&path);
        }
        return ran.map_err(|e| e.to_string());
    }
    if let Some(seconds) = args.tail {
        eprintln!("running W7 on {} for {seconds} s", args.provider);
        let ran = tail::run(&domain, seconds, &out).await;
        if let Some(path) = file {
            remove_database(&path);
        }
        return ran.map_err(|e| e.to_string());
    }
    eprintln!(
        "running W1..W6 on {} at scale {}",
        args.provider, args.scale
    );
    raw_ceiling(&args).await?; // before and after W1, to bracket the machine's noise
    workloads::sequential(&domain, &sizes, &out)
        .await
        .map_err(|e| e.to_string())?;
    workloads::sequential_cached(&domain, &sizes, &out)
        .await
        .map_err(|e| e.to_string())?;
    raw_ceiling(&args).await?;
    workloads::concurrent(&domain, &sizes, &out)
        .await
        .map_err(|e| e.to_string())?;
    workloads::hydrate(&domain, &sizes, &out)
        .await
        .map_err(|e| e.to_string())?;
    upcast::hydrate(&domain, &sizes, &out)
        .await
        .map_err(|e| e.to_string())?;
    workloads::catch_up(&domain, &sizes, &out)
        .await
        .map_err(|e| e.to_string())?;
    if args.raw && args.provider == "postgres" {
        postgres::raw_scans(&raw_reporter(&args, "raw-postgres")).await?;
    }
    workloads::latency(&domain, &out)
        .await
        .map_err(|e| e.to_string())?;
    if args.provider != "memory" {
        let child = w6_child_args(&args, file.as_deref());
        cross_process::latency(&domain, &child, &out).await?;
    }

    if let Some(path) = file {
        remove_database(&path);
    }
    Ok(())
}

/// The reporter of a raw ceiling.
fn raw_reporter(args: &Args, system: &'static str) -> Reporter {
    Reporter {
        system,
        provider: args.provider.clone(),
        durability: None,
        runtime: runtime_name(args),
        aggregate_cache: None,
    }
}

/// With `--raw` on SQLite: W1's ceiling, the raw database on a fresh file beside the store's;
/// on MariaDB, on a table of its own in the same database.
async fn raw_ceiling(args: &Args) -> Result<(), String> {
    if args.raw && args.provider == "postgres" {
        return postgres::single_inserts(5000 * args.scale, &raw_reporter(args, "raw-postgres"))
            .await;
    }
    if args.raw && args.provider == "mysql" {
        let raw = Reporter {
            system: "raw-mysql",
            provider: "mysql".into(),
            durability: None,
            runtime: runtime_name(args),
            aggregate_cache: None,
        };
        return mysql::single_inserts(5000 * args.scale, &raw).await;
    }
    if !args.raw || args.provider != "sqlite" {
        return Ok(());
    }
    let synchronous = synchronous(args.durability);
    let raw = Reporter {
        system: "raw-sqlite",
        provider: "sqlite".into(),
        durability: Some(synchronous),
        runtime: runtime_name(args),
        aggregate_cache: None,
    };
    for store_table in [false, true] {
        let path = fresh_file("raw");
        raw::sqlite_single_inserts(&path, store_table, synchronous, 5000 * args.scale, &raw);
        remove_database(&path);
    }
    Ok(())
}

fn synchronous(durability: Durability) -> &'static str {
    match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    }
}

fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// The runtime: by default single-threaded for PostgreSQL and MariaDB, whose drivers only
/// wait on the network (cross-thread wake-ups cost more than they bring on a small machine), and
/// multi-threaded for SQLite, whose blocking commits let other tasks queue their writes.
fn runtime(args: &Args) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if single_thread(args) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

fn single_thread(args: &Args) -> bool {
    let networked = matches!(args.provider.as_str(), "postgres" | "mysql");
    args.single_thread.unwrap_or(networked)
}

fn runtime_name(args: &Args) -> &'static str {
    if single_thread(args) {
        "single"
    } else {
        "multi"
    }
}

fn main() {
    let outcome = parse_args().and_then(|args| {
        let runtime = runtime(&args).map_err(|e| format!("cannot start Tokio: {e}"))?;
        runtime.block_on(run(args))
    });
    if let Err(message) = outcome {
        eprintln!("evtstore-bench: {message}");
        std::process::exit(1);
    }
}
