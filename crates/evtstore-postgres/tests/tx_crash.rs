//! A transactional handler killed (SIGKILL) in the middle of a page, in another process, loses
//! no event and applies none twice: the killed page rolls back with its bookmark, and the next
//! run applies it once.

mod counters;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use counters::{Counters, add, admin, applied, connect, create_model, model_handler};
use evtstore_core::Domain;

/// The child process, killed (SIGKILL) when dropped, also when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CHILD: &str = "EVTSTORE_PG_TX_CHILD_SCHEMA";

#[tokio::test]
async fn tx_handler_killed_mid_page_loses_nothing_and_applies_nothing_twice() {
    let Some(url) = support::url() else { return };
    if let Ok(schema) = std::env::var(CHILD) {
        let p = connect(&url, &schema, 2).await;
        model_handler(&p, &schema, 10, Arc::default(), Some(23))
            .run_once()
            .await
            .unwrap();
        return;
    }
    let (schema, admin) = (support::unique_schema(), admin(&url).await);
    let p = connect(&url, &schema, 4).await;
    create_model(&admin, &schema).await;
    let domain = Domain::<Counters>::with_provider(p.clone());
    let ids: Vec<String> = (0..40).map(|n| format!("agg-{}", n % 7)).collect();
    add(&domain, &ids.iter().map(String::as_str).collect::<Vec<_>>()).await;

    let name = "tx_handler_killed_mid_page_loses_nothing_and_applies_nothing_twice";
    let mut child = KillOnDrop(
        Process::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(CHILD, &schema)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (lines, received) = std::sync::mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("applied ") && lines.send(()).is_err() {
                return;
            }
        }
    });
    // Pages of 10: the child hangs on the 23rd event, in its third page, until killed.
    for n in 0..23 {
        let got = received.recv_timeout(Duration::from_secs(30));
        assert!(got.is_ok(), "the child applied only {n} events");
    }
    drop(child); // SIGKILL, mid-page

    let model = applied(&admin, &schema).await;
    let committed: Vec<i64> = model.iter().map(|&(_, n)| n).collect();
    let expected: Vec<i64> = (0..40).map(|i| i64::from(i < 20)).collect();
    assert_eq!(
        committed, expected,
        "two whole pages committed, the killed page rolled back"
    );

    let handler = model_handler(&p, &schema, 10, Arc::default(), None);
    assert_eq!(
        handler.position().await.unwrap(),
        model[19].0,
        "the bookmark after page two"
    );
    assert_eq!(handler.run_once().await.unwrap(), 20);
    let model = applied(&admin, &schema).await;
    assert!(
        model.len() == 40 && model.iter().all(|&(_, n)| n == 1),
        "{model:?}"
    );
}
