//! What the transaction, push and fault tests share: a counter aggregate, connections (to a
//! given schema, under an `application_name` to terminate), and a transactional read model
//! with one row per application of an event, so that a second application shows.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use evtstore_core::{Aggregate, Command, Decision, Domain, EventMeta, Loaded};
use evtstore_postgres::{PgOptions, PgProvider, TxHandler};
use serde::{Deserialize, Serialize};

/// The counter's one event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Added {
    Added { by: i64 },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counter {
    pub total: i64,
}

impl Aggregate for Counter {
    const STREAM: &'static str = "counters";
    type Event = Added;
    fn fold(&mut self, Added::Added { by }: &Added, _: &EventMeta) {
        self.total += by;
    }
}

evtstore_core::domain!(pub Counters { Counter });

/// Adds to a counter.
pub struct Add(pub i64);

impl<D> Command<D> for Add {
    type Aggregate = Counter;
    type Error = std::convert::Infallible;
    async fn handle(self, _: &Loaded<Counter>, _: &Domain<D>) -> Decision<Self, D> {
        Ok(vec![Added::Added { by: self.0 }])
    }
}

/// Executes `Add(1)` on each id in turn.
pub async fn add(domain: &Domain<Counters>, ids: &[&str]) {
    for id in ids {
        domain.execute(id, Add(1)).await.unwrap();
    }
}

/// A provider on `schema` (created when missing).
pub async fn connect(url: &str, schema: &str, pool_size: usize) -> Arc<PgProvider> {
    let options = PgOptions {
        schema: schema.to_owned(),
        pool_size,
        ..PgOptions::default()
    };
    Arc::new(
        PgProvider::connect_with(url, options)
            .await
            .expect("connect to PostgreSQL"),
    )
}

/// The URL with an `application_name`, so that the test can find (and terminate) its backends.
pub fn with_application_name(url: &str, name: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}

/// A plain connection outside every provider: to set up, watch, terminate and check.
pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Terminates every backend of `application_name`; returns how many.
pub async fn terminate(admin: &tokio_postgres::Client, application_name: &str) -> i64 {
    let sql =
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1";
    admin
        .query_one(sql, &[&application_name])
        .await
        .unwrap()
        .get(0)
}

/// Creates the read model of [`model_handler`] in `schema`.
pub async fn create_model(admin: &tokio_postgres::Client, schema: &str) {
    let sql = format!("CREATE TABLE \"{schema}\".applied (position BIGINT NOT NULL)");
    admin.batch_execute(&sql).await.unwrap();
}

/// A transactional handler "model" that adds a row per event it applies. With `fail` set,
/// the callback fails (after its write) on aggregate "bad"; with `hang_at`, it prints each
/// event it applies, and hangs on that one (for the test to kill the process).
pub fn model_handler(
    p: &Arc<PgProvider>,
    schema: &str,
    page: usize,
    fail: Arc<AtomicBool>,
    hang_at: Option<usize>,
) -> TxHandler {
    let sql = format!("INSERT INTO \"{schema}\".applied (position) VALUES ($1)");
    let count = Arc::new(AtomicUsize::new(0));
    p.tx_handler::<Counters>("model")
        .page_size(page)
        .handle::<Counter, _>(move |tx, _event, meta| {
            let (sql, fail) = (sql.clone(), fail.load(Ordering::SeqCst));
            let nth = count.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                tx.execute(&sql, &[&(meta.position as i64)]).await?;
                if fail && meta.aggregate_id == "bad" {
                    return Err("the read model refuses aggregate bad".into());
                }
                if let Some(hang_at) = hang_at {
                    println!("applied {nth}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    if nth == hang_at {
                        tokio::time::sleep(Duration::from_secs(20)).await;
                    }
                }
                Ok(())
            })
        })
        .build()
        .unwrap()
}

/// (position, times applied) of every stored event, in position order.
pub async fn applied(admin: &tokio_postgres::Client, schema: &str) -> Vec<(u64, i64)> {
    let sql = format!(
        "SELECT e.position, (SELECT count(*) FROM \"{schema}\".applied a WHERE a.position = e.position)
         FROM \"{schema}\".events e ORDER BY e.position"
    );
    let rows = admin.query(&sql, &[]).await.unwrap();
    rows.iter()
        .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
        .collect()
}
