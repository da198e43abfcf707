//! TLS to PostgreSQL: verify-full with the server's CA, require, verify-ca (the chain but not
//! the host name), a wrong CA refused with the certificate problem named, push delivery over
//! TLS, and proof from the server (`pg_stat_ssl`) that each connection is encrypted.
//!
//! Needs `EVTSTORE_PG_TLS_CA`, the CA of the server's certificate (`.ci/services` makes it).

mod counters;
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use counters::{Add, Counter, Counters, with_application_name};
use evtstore_core::{Domain, ErrorKind};
use evtstore_postgres::{PgOptions, PgProvider, PgSslMode};

/// The server's URL and the CA of its certificate, or `None` when either is not set.
fn server() -> Option<(String, String)> {
    let url = support::url()?;
    let Ok(ca) = std::env::var("EVTSTORE_PG_TLS_CA") else {
        eprintln!("skipped: EVTSTORE_PG_TLS_CA is not set");
        return None;
    };
    Some((url, ca))
}

/// `url` with more query parameters.
fn with(url: &str, parameters: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameters}")
}

fn options() -> PgOptions {
    PgOptions {
        schema: support::unique_schema(),
        pool_size: 2,
        ..PgOptions::default()
    }
}

/// Whether the server says a pooled connection of `provider` is encrypted.
async fn encrypted(provider: &PgProvider) -> bool {
    let client = provider.pool().get().await.unwrap();
    let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Appends through a domain on `provider` and loads the aggregate back.
async fn round_trip(provider: PgProvider) {
    let domain = Domain::<Counters>::with_provider(Arc::new(provider));
    domain.execute("tls", Add(2)).await.unwrap();
    let loaded = domain.load::<Counter>("tls").await.unwrap();
    assert_eq!((loaded.version, loaded.state.total), (1, 2));
}

#[tokio::test]
async fn verify_full_with_the_servers_ca_connects_appends_and_loads() {
    let Some((url, ca)) = server() else { return };
    let url = with(&url, &format!("sslmode=verify-full&sslrootcert={ca}"));
    let provider = PgProvider::connect_with(&url, options()).await.unwrap();
    assert!(encrypted(&provider).await, "the connection is TLS");
    round_trip(provider).await;
}

#[tokio::test]
async fn verify_full_through_the_options() {
    let Some((url, ca)) = server() else { return };
    let options = PgOptions {
        ssl_mode: Some(PgSslMode::VerifyFull),
        ssl_root_cert: Some(ca.into()),
        ..options()
    };
    let provider = PgProvider::connect_with(&url, options).await.unwrap();
    assert!(encrypted(&provider).await, "the connection is TLS");
}

#[tokio::test]
async fn require_encrypts_and_disable_does_not() {
    let Some((url, _)) = server() else { return };
    let (require, disable) = (with(&url, "sslmode=require"), with(&url, "sslmode=disable"));
    let required = PgProvider::connect_with(&require, options()).await.unwrap();
    assert!(encrypted(&required).await, "require: the connection is TLS");
    round_trip(required).await;
    let disabled = PgProvider::connect_with(&disable, options()).await.unwrap();
    assert!(!encrypted(&disabled).await, "disable: plain");
}

/// The server's URL with a host name its certificate does not name (the address stays).
fn misnamed(url: &str) -> String {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap();
    let database = config.get_dbname().unwrap();
    format!("postgres://{user}@wrong.invalid:{port}/{database}?hostaddr=127.0.0.1")
}

#[tokio::test]
async fn verify_ca_checks_the_chain_but_not_the_host_name() {
    let Some((url, ca)) = server() else { return };
    let url = misnamed(&url);
    let verify_ca = with(&url, &format!("sslmode=verify-ca&sslrootcert={ca}"));
    let provider = PgProvider::connect_with(&verify_ca, options()).await;
    assert!(
        encrypted(&provider.unwrap()).await,
        "verify-ca: the connection is TLS"
    );

    let verify_full = with(&url, &format!("sslmode=verify-full&sslrootcert={ca}"));
    let refused = PgProvider::connect_with(&verify_full, options()).await;
    let message = refused
        .err()
        .expect("verify-full checks the name")
        .to_string();
    assert!(
        message.contains("not valid for name \"wrong.invalid\""),
        "names the problem: {message}"
    );
}

/// A CA of its own, in a fresh folder, that signed nothing the server has.
fn throwaway_ca() -> PathBuf {
    let folder = std::env::temp_dir().join(support::unique_schema());
    std::fs::create_dir_all(&folder).unwrap();
    let (key, ca) = (folder.join("ca.key"), folder.join("ca.crt"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=not the server's CA",
            "-keyout",
        ])
        .args([&key, &PathBuf::from("-out"), &ca])
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    ca
}

#[tokio::test]
async fn a_wrong_ca_is_refused_naming_the_certificate_problem() {
    let Some((url, _)) = server() else { return };
    let wrong = throwaway_ca();
    for mode in ["verify-full", "verify-ca"] {
        let url = with(
            &url,
            &format!("sslmode={mode}&sslrootcert={}", wrong.display()),
        );
        let refused = PgProvider::connect_with(&url, options()).await;
        let error = refused
            .err()
            .expect("a certificate of another CA is refused");
        let message = error.to_string();
        assert!(
            message.contains("invalid peer certificate: UnknownIssuer"),
            "{mode}: names the problem: {message}"
        );
        assert_eq!(error.kind(), ErrorKind::Backend, "{mode}: no retry helps");
    }
    std::fs::remove_dir_all(wrong.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn a_missing_ca_file_is_named() {
    let Some((url, _)) = server() else { return };
    let url = with(&url, "sslmode=verify-full&sslrootcert=/nonexistent/ca.crt");
    let refused = PgProvider::connect_with(&url, options()).await;
    let message = refused.err().expect("no CA, no connection").to_string();
    assert!(
        message.contains("sslrootcert /nonexistent/ca.crt"),
        "{message}"
    );
}

/// Whether the server says the LISTEN connection of `application_name` is encrypted, once
/// there is one.
async fn listener_is_tls(admin: &tokio_postgres::Client, application_name: &str) -> bool {
    let sql = "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
               WHERE a.application_name = $1 AND a.query LIKE 'LISTEN%'";
    for _ in 0..100 {
        if let Some(row) = admin.query_opt(sql, &[&application_name]).await.unwrap() {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no LISTEN connection within 5 s");
}

#[tokio::test]
async fn push_delivery_works_over_tls() {
    let Some((url, ca)) = server() else { return };
    let url = with(&url, &format!("sslmode=verify-full&sslrootcert={ca}"));
    let schema = support::unique_schema();
    let name = format!("evt_tls_{schema}");
    let listening = counters::connect(&with_application_name(&url, &name), &schema, 2).await;
    let writer = counters::connect(&url, &schema, 2).await;
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let handler = Domain::<Counters>::with_provider(listening)
        .handler("push")
        .poll_interval(Duration::from_secs(60))
        .handle::<Counter, _>(move |_, _, meta| {
            let id = meta.aggregate_id.to_string();
            let _ = sender.send(id);
            Ok(())
        })
        .build()
        .unwrap();
    handler.start();
    let admin = counters::admin(&support::url().unwrap()).await;
    assert!(
        listener_is_tls(&admin, &name).await,
        "the LISTEN connection is TLS"
    );
    // Kept until the end: dropping a provider stops its NOTIFY task.
    let writer = Domain::<Counters>::with_provider(writer);
    writer.execute("pushed", Add(1)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), received.recv()).await;
    assert_eq!(
        got.ok().flatten().as_deref(),
        Some("pushed"),
        "pushed within 10 s"
    );
    handler.stop().await;
}
