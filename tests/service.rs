//! `examples/service.rs`, two copies on one SQLite file as real processes, driven over HTTP.

#[path = "../examples/service/app.rs"]
mod app;
#[path = "../examples/bank/balances.rs"]
mod balances;
#[allow(dead_code)]
#[path = "../examples/bank/domain.rs"]
mod domain;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command as Process, Stdio};

use serde_json::{Value, json};

/// Set in a child: the store it serves.
const CHILD: &str = "EVTSTORE_SERVICE_CHILD";
const TEST: &str = "two_copies_serve_one_store_over_http";

/// In a child: serves on a free port, prints it, and stops (handing its lease over) when its
/// stdin closes.
async fn serve_as_child(store: &str) {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder();
    let bank = evtstore::Domain::with_provider(app::store(store).await.unwrap());
    let app = app::App::start(bank, metrics.unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::stdin().lines().count();
        let _ = closed.send(());
    });
    let shutdown = async {
        let _ = stdin_closed.await;
    };
    let routes = app::routes(app.clone());
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown)
        .await
        .unwrap();
    app.stop().await;
}

/// A copy of the service, and its address.
fn start_copy(store: &std::path::Path) -> (Child, String) {
    let mut child = Process::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture"])
        .env(CHILD, store)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let address = lines
        .find_map(|l| l.ok()?.strip_prefix("listening on ").map(str::to_owned))
        .expect("the service says where it listens");
    std::thread::spawn(move || lines.for_each(drop));
    (child, format!("http://{address}"))
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_serve_one_store_over_http() {
    if let Ok(store) = std::env::var(CHILD) {
        return serve_as_child(&store).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("service.db");
    let (mut first, a) = start_copy(&store);
    let (mut second, b) = start_copy(&store);
    let client = reqwest::Client::new();

    let (status, _) = post(
        &client,
        format!("{a}/customers/ann"),
        json!({"name": "Ann"}),
    )
    .await;
    assert_eq!(status, 200, "register through the first copy");
    let (status, _) = post(
        &client,
        format!("{b}/accounts/a1/open"),
        json!({"customer": "ann"}),
    )
    .await;
    assert_eq!(
        status, 200,
        "open through the second copy, which reads the customer"
    );
    let deposit = format!("{a}/accounts/a1/deposit?wait=true");
    let (status, _) = post(&client, deposit, json!({"amount": 100})).await;
    assert_eq!(status, 200);
    let read = client.get(format!("{a}/accounts/a1")).send().await.unwrap();
    let balance: Value = read.json().await.unwrap();
    assert_eq!(
        balance,
        json!({"balance": 100}),
        "read-your-writes: the model has the deposit"
    );

    let (status, body) = post(
        &client,
        format!("{b}/accounts/a1/withdraw"),
        json!({"amount": 500}),
    )
    .await;
    assert_eq!(status, 422, "a rejected command: {body}");
    let (status, _) = post(
        &client,
        format!("{b}/accounts/a2/open"),
        json!({"customer": "bob"}),
    )
    .await;
    assert_eq!(status, 422, "an unknown customer");

    let metrics = client
        .get(format!("{a}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("evtstore_events_appended_total"),
        "{metrics}"
    );

    drop(first.stdin.take()); // a graceful shutdown
    assert!(
        first.wait().unwrap().success(),
        "the first copy stops cleanly"
    );
    let (status, _) = post(
        &client,
        format!("{b}/accounts/a1/deposit?wait=true"),
        json!({"amount": 5}),
    )
    .await;
    assert_eq!(status, 200, "the second copy serves on");
    let read = client.get(format!("{b}/accounts/a1")).send().await.unwrap();
    assert_eq!(read.json::<Value>().await.unwrap(), json!({"balance": 105}));
    drop(second.stdin.take());
    assert!(second.wait().unwrap().success());
}
