//! A transactional handler killed (SIGKILL) in the middle of a page, in another process, loses
//! no event and applies none twice: the killed page rolls back with its bookmark, and the next
//! run applies it once. Its callbacks write a read model in the handler's transaction.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use evtstore_core::{Aggregate, EventMeta, NewEvent, Provider};
use evtstore_mysql::{MysqlOptions, MysqlProvider, TxHandler};
use serde::{Deserialize, Serialize};
use sqlx::Executor;

const CHILD: &str = "EVTSTORE_MYSQL_TX_CHILD_DB";
const NAME: &str = "tx_handler_killed_mid_page_loses_nothing_and_applies_nothing_twice";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Tick {
    Tick,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Clock;

impl Aggregate for Clock {
    const STREAM: &'static str = "clock";
    type Event = Tick;
    fn fold(&mut self, _: &Tick, _: &EventMeta) {}
}

evtstore_core::domain!(Clocks { Clock });

/// Counts each position it applies in `applied`; hangs on position `hang_at`, once applied.
fn model_handler(provider: &Arc<MysqlProvider>, hang_at: Option<u64>) -> TxHandler {
    provider
        .tx_handler::<Clocks>("model")
        .page_size(10)
        .handle::<Clock, _>(move |conn, _, meta| {
            Box::pin(async move {
                let sql = "INSERT INTO applied VALUES (?, 1) ON DUPLICATE KEY UPDATE n = n + 1";
                let position = meta.position as i64;
                sqlx::query(sql).bind(position).execute(conn).await?;
                println!("applied {position}");
                if Some(meta.position) == hang_at {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok(())
            })
        })
        .build()
        .unwrap()
}

async fn applied(db: &support::TestDb) -> Vec<(i64, i64)> {
    let mut conn = db.connection().await;
    let sql = "SELECT position, n FROM applied ORDER BY position";
    sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
}

/// The child process, killed (SIGKILL) when dropped, also when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the handler in another process; returns once it has applied `count` events.
fn run_child_until(database: &str, count: usize) -> KillOnDrop {
    let mut child = Process::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, database)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let applied = lines
        .map_while(Result::ok)
        .filter(|l| l.contains("applied "));
    assert_eq!(
        applied.take(count).count(),
        count,
        "the child stopped early"
    );
    KillOnDrop(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_handler_killed_mid_page_loses_nothing_and_applies_nothing_twice() {
    let Some(url) = support::url() else { return };
    if let Ok(database) = std::env::var(CHILD) {
        let config = support::connect_options(&url, &database);
        let p = MysqlProvider::connect_config(config, MysqlOptions::default()).await;
        model_handler(&Arc::new(p.unwrap()), Some(23))
            .run_once()
            .await
            .unwrap();
        return;
    }
    let (provider, db) = support::fresh(&url).await;
    let create = "CREATE TABLE applied (position BIGINT PRIMARY KEY, n INT NOT NULL)";
    db.connection().await.execute(create).await.unwrap();
    for n in 0..40u64 {
        let event = NewEvent::new(
            "clock",
            format!("agg-{}", n % 7),
            n / 7 + 1,
            r#"{"type":"Tick"}"#,
        );
        provider.append(vec![event]).await.unwrap();
    }

    // Pages of 10: the child hangs on the 23rd event, in its third page, until killed.
    drop(run_child_until(&db.name, 23));

    let model = applied(&db).await;
    let pages: Vec<(i64, i64)> = (1..=20).map(|p| (p, 1)).collect();
    assert_eq!(
        model, pages,
        "two whole pages committed, the killed page rolled back"
    );
    let handler = model_handler(&provider, None);
    assert_eq!(
        handler.position().await.unwrap(),
        20,
        "the bookmark after page two"
    );
    assert_eq!(handler.run_once().await.unwrap(), 20);
    let all: Vec<(i64, i64)> = (1..=40).map(|p| (p, 1)).collect();
    assert_eq!(applied(&db).await, all, "each event applied exactly once");
    assert_eq!(provider.bookmark("model").await.unwrap(), Some(40));
}
