//! Run: `cargo run --example service --features postgres -- [store] [address]`
//!
//! The bank of `examples/bank.rs` as an HTTP service: `store` is an SQLite file (default
//! `service.db`) or a `postgres://` URL; `address` defaults to `127.0.0.1:3000`. Start it
//! twice on one store: both serve commands and reads, one runs the audit handler. Ctrl-C
//! stops it and hands its lease over. `tests/service.rs` drives two copies over HTTP.
//!
//! ```text
//! curl -X POST localhost:3000/customers/ann -H 'content-type: application/json' -d '{"name":"Ann"}'
//! curl -X POST localhost:3000/accounts/a1/open -H 'content-type: application/json' -d '{"customer":"ann"}'
//! curl -X POST 'localhost:3000/accounts/a1/deposit?wait=true' -H 'content-type: application/json' -d '{"amount":100}'
//! curl localhost:3000/accounts/a1      # {"balance":100}
//! curl localhost:3000/metrics
//! ```

#[path = "service/app.rs"]
mod app;
#[path = "bank/balances.rs"]
mod balances;
#[allow(dead_code)] // the service uses the commands it routes
#[path = "bank/domain.rs"]
mod domain;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let store = args.next().unwrap_or_else(|| "service.db".into());
    let address = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    serve(&store, &address).await
}

/// Serves until Ctrl-C (or stdin closing, for tests), then stops the handlers.
async fn serve(store: &str, address: &str) -> Result<(), Box<dyn std::error::Error>> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let bank = evtstore::Domain::with_provider(app::store(store).await?);
    let app = app::App::start(bank, metrics)?;
    let listener = tokio::net::TcpListener::bind(address).await?;
    println!("listening on {}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, app::routes(app.clone()))
        .with_graceful_shutdown(shutdown)
        .await?;
    app.stop().await;
    Ok(())
}
