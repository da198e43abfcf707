//! Positions never go backwards when a store moves to another server: a store that a handler
//! has read is dumped, restored into a second, throwaway cluster whose transaction counter is
//! far behind, and written there; the handler, its bookmark carried over, handles the new
//! events. The control, an event placed as positions were placed before the offset, is lost.

mod counters;
mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use counters::{Add, Counter, Counters, admin, connect};
use evtstore_core::{Domain, Handler};
use evtstore_postgres::{PgOptions, PgProvider};

/// A PostgreSQL cluster in a temporary folder, on a port of its own, stopped on drop.
struct Cluster {
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        run(Command::new("chown").args(["postgres:", path(dir.path())]));
        let data = dir.path().join("data");
        let socket = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            path(dir.path())
        );
        run(as_postgres("initdb").args(["-A", "trust", "-U", "postgres", "-D", path(&data)]));
        let log = dir.path().join("log");
        let start = [
            "-D",
            path(&data),
            "-o",
            &socket,
            "-l",
            path(&log),
            "-w",
            "start",
        ];
        run(as_postgres("pg_ctl").args(start));
        Cluster {
            data,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stop = ["-D", path(&self.data), "-m", "immediate", "-w", "stop"];
        let _ = as_postgres("pg_ctl")
            .args(stop)
            .stdout(Stdio::null())
            .status();
    }
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A PostgreSQL tool, run as the `postgres` user when this test runs as root (the server
/// refuses to run as root).
fn as_postgres(tool: &str) -> Command {
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if !root {
        return Command::new(tool);
    }
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--", tool]);
    command
}

fn run(command: &mut Command) {
    let output = command.stdout(Stdio::null()).output().unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{command:?} failed: {error}");
}

/// A stored-bookmark handler that records the aggregate id of every counter event.
fn recorder(domain: &Domain<Counters>) -> (Handler, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let handler = domain
        .handler("model")
        .handle::<Counter, _>(move |_, _, meta| {
            let id = meta.aggregate_id.to_string();
            record.lock().unwrap().push(id);
            Ok(())
        })
        .build()
        .unwrap();
    (handler, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_store_on_a_server_with_a_lower_counter_loses_no_event() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let old = Domain::<Counters>::with_provider(connect(&url, &schema, 2).await);
    for id in ["a", "a", "b"] {
        old.execute(id, Add(1)).await.unwrap();
    }
    let (handler, _) = recorder(&old);
    assert_eq!(handler.run_once().await.unwrap(), 3);
    let bookmark = handler.position().await.unwrap() as i64;

    let cluster = Cluster::start();
    let dump = Command::new("pg_dump")
        .args(["--no-owner", "-n", &schema, "-d", &url])
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let restore = tokio::task::spawn_blocking({
        let url = cluster.url();
        move || {
            let mut psql = Command::new("psql")
                .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", &url])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut psql.stdin.take().unwrap(), &dump.stdout).unwrap();
            psql.wait().unwrap()
        }
    });
    assert!(restore.await.unwrap().success(), "the dump restores");

    // The control: a position from the new server's bare transaction id (what positions were
    // before the offset) lies below the bookmark, so the handler never reads that event.
    let control = admin(&cluster.url()).await;
    let bare: i64 = control
        .query_one("SELECT pg_current_xact_id()::text::bigint << 20", &[])
        .await
        .unwrap()
        .get(0);
    assert!(bare < bookmark, "the new server's counter is behind");
    let insert = format!(
        "INSERT INTO \"{schema}\".events (position, stream, aggregate_id, version, data)
         VALUES (pg_current_xact_id()::text::bigint << 20, 'counters', 'lost', 1, '{{\"type\":\"Added\",\"by\":1}}')"
    );
    control.execute(&insert, &[]).await.unwrap();

    // A role that may not raise the offset is refused rather than writing below the bookmark.
    let grants = format!(
        "CREATE ROLE limited LOGIN; GRANT USAGE ON SCHEMA \"{schema}\" TO limited;
         GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA \"{schema}\" TO limited"
    );
    control.batch_execute(&grants).await.unwrap();
    let limited = cluster.url().replace("postgres@", "limited@");
    let options = PgOptions {
        schema: schema.clone(),
        ..PgOptions::default()
    };
    let refused = PgProvider::connect_with(&limited, options)
        .await
        .err()
        .expect("refused");
    assert!(
        refused.to_string().contains("new positions lie above"),
        "{refused}"
    );

    let new = Domain::<Counters>::with_provider(connect(&cluster.url(), &schema, 2).await);
    let a = new.execute("a", Add(1)).await.unwrap();
    assert_eq!(a.version, 3, "the restored history loads");
    new.execute("c", Add(1)).await.unwrap();
    let (handler, seen) = recorder(&new);
    assert_eq!(
        handler.position().await.unwrap() as i64,
        bookmark,
        "the bookmark carried over"
    );
    assert_eq!(handler.run_once().await.unwrap(), 2);
    assert_eq!(
        *seen.lock().unwrap(),
        ["a", "c"],
        "the new events, and not the control"
    );
}
