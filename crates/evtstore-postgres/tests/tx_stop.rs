//! A transactional handler catching up stops within a page: its background run checks for a
//! stop between pages (transactions), so the bookmark and the read model end on a page
//! boundary, and a later start resumes there.

mod counters;
mod support;

use std::sync::Arc;
use std::time::Duration;

use counters::{admin, applied, connect, create_model, model_handler};
use evtstore_core::{NewEvent, Provider};

const EVENTS: usize = 20_000;
const PAGE: usize = 100;

async fn applied_rows(admin: &tokio_postgres::Client, schema: &str) -> usize {
    let sql = format!("SELECT count(*) FROM \"{schema}\".applied");
    admin.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_handler_stops_within_a_page() {
    let Some(url) = support::url() else { return };
    let (schema, admin) = (support::unique_schema(), admin(&url).await);
    let p = connect(&url, &schema, 4).await;
    create_model(&admin, &schema).await;
    let body = r#"{"type":"Added","by":1}"#;
    let history: Vec<NewEvent> = (0..EVENTS)
        .map(|n| {
            NewEvent::new(
                "counters",
                format!("c{}", n / 1000),
                (n % 1000) as u64 + 1,
                body,
            )
        })
        .collect();
    p.append(history).await.unwrap();

    let handler = model_handler(&p, &schema, PAGE, Arc::default(), None);
    handler.start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while applied_rows(&admin, &schema).await < 10 * PAGE {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ten pages within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at_stop = applied_rows(&admin, &schema).await;
    handler.stop().await;
    let stopped_at = applied_rows(&admin, &schema).await;
    assert!(
        stopped_at <= at_stop + 2 * PAGE,
        "{at_stop} then {stopped_at} rows after stop()"
    );
    assert!(
        stopped_at < EVENTS && stopped_at % PAGE == 0,
        "a page boundary: {stopped_at}"
    );
    let model = applied(&admin, &schema).await;
    let bookmark = handler.position().await.unwrap();
    assert_eq!(
        bookmark,
        model[stopped_at - 1].0,
        "the bookmark after the last page"
    );

    handler.start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while applied_rows(&admin, &schema).await == stopped_at {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handler resumes within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handler.stop().await;
    let model = applied(&admin, &schema).await;
    assert!(
        model.iter().all(|&(_, times)| times <= 1),
        "no event applied twice"
    );
    assert_eq!(model[stopped_at].1, 1, "resumed right after the bookmark");
}
