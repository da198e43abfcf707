//! The bank behind HTTP: commands behind POST routes, the balances read model behind GET,
//! read-your-writes, Prometheus metrics and a graceful shutdown that hands leases over.
//! Shared by `examples/service.rs` and `tests/service.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use evtstore::{Command, CommandError, Domain, ErrorKind, Handler, Rejection};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::balances::Balances;
use crate::domain::{Bank, Deposit, OpenAccount, Register, Withdraw};

/// What the routes share: the domain, the balances model, the metrics.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) bank: Domain<Bank>,
    /// In every process: each builds its own copy of the model (an in-memory bookmark).
    pub(crate) balances: Handler<Balances>,
    /// One process at a time runs it (a lease): the bank's audit trail.
    pub(crate) audit: Handler<u64>,
    pub(crate) metrics: PrometheusHandle,
}

impl App {
    /// Starts the handlers on the domain.
    pub(crate) fn start(bank: Domain<Bank>, metrics: PrometheusHandle) -> evtstore::Result<Self> {
        let balances = bank
            .handler_with("balances", Balances::default())
            .in_memory_bookmark();
        let balances = balances
            .on::<crate::domain::Customer>()
            .on::<crate::domain::Account>();
        let balances = balances.poll_interval(Duration::from_millis(200)).build()?;
        let audit = bank
            .handler_with("audit", 0_u64)
            .handle::<crate::domain::Account, _>(|seen, _, _| {
                *seen += 1;
                Ok(())
            })
            .build()?;
        balances.start();
        audit.start();
        Ok(App {
            bank,
            balances,
            audit,
            metrics,
        })
    }

    /// Stops the handlers: the audit lease passes to another process at once.
    pub(crate) async fn stop(&self) {
        self.balances.stop().await;
        self.audit.stop().await;
    }
}

/// The routes.
pub(crate) fn routes(app: App) -> Router {
    Router::new()
        .route("/customers/{id}", post(register))
        .route("/accounts/{id}/open", post(open))
        .route("/accounts/{id}/deposit", post(deposit))
        .route("/accounts/{id}/withdraw", post(withdraw))
        .route("/accounts/{id}", get(balance))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// `?wait=true`: answer once this process's read model has the change.
#[derive(Deserialize)]
struct Wait {
    #[serde(default)]
    wait: bool,
}

type Reply = (StatusCode, Json<Value>);

/// Executes a command: 200 with its version and position; 422 rejected, 409 conflict, 503
/// store unavailable, 500 otherwise.
async fn execute<C>(app: &App, id: &str, command: C, wait: bool) -> Reply
where
    C: Command<Bank>,
    Bank: evtstore::Contains<C::Aggregate>,
{
    match app.bank.execute(id, command).await {
        Ok(done) => {
            if wait {
                app.balances
                    .wait_for(done.position, Duration::from_secs(5))
                    .await;
            }
            let body = json!({ "version": done.version, "position": done.position });
            (StatusCode::OK, Json(body))
        }
        Err(error) => failure(error),
    }
}

fn failure<E: Rejection>(error: CommandError<E>) -> Reply {
    let status = match error.kind() {
        ErrorKind::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(json!({ "error": error.to_string() })))
}

#[derive(Deserialize)]
struct Name {
    name: String,
}

#[derive(Deserialize)]
struct Customer {
    customer: String,
}

#[derive(Deserialize)]
struct Amount {
    amount: u64,
}

async fn register(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(w): Query<Wait>,
    Json(b): Json<Name>,
) -> Reply {
    execute(&app, &id, Register { name: b.name }, w.wait).await
}

async fn open(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(w): Query<Wait>,
    Json(b): Json<Customer>,
) -> Reply {
    execute(&app, &id, OpenAccount::for_customer(&b.customer), w.wait).await
}

async fn deposit(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(w): Query<Wait>,
    Json(b): Json<Amount>,
) -> Reply {
    execute(&app, &id, Deposit { amount: b.amount }, w.wait).await
}

async fn withdraw(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(w): Query<Wait>,
    Json(b): Json<Amount>,
) -> Reply {
    execute(&app, &id, Withdraw { amount: b.amount }, w.wait).await
}

/// The account's balance in this process's read model; 404 when it has none.
async fn balance(State(app): State<App>, Path(id): Path<String>) -> Reply {
    match app.balances.state().await.accounts.get(&id) {
        Some(balance) => (StatusCode::OK, Json(json!({ "balance": balance }))),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such account" })),
        ),
    }
}

async fn metrics(State(app): State<App>) -> String {
    app.metrics.render()
}

/// The store: PostgreSQL when `url` is a `postgres://` URL, else an SQLite file at `url`.
pub(crate) async fn store(url: &str) -> evtstore::Result<Arc<dyn evtstore::Provider>> {
    if url.starts_with("postgres://") {
        return Ok(Arc::new(evtstore::PgProvider::connect(url).await?));
    }
    Ok(Arc::new(evtstore::SqliteProvider::open(url)?))
}
