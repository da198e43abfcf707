mod support;

use evtstore_core::{NewEvent, Provider};

#[tokio::test]
async fn append_and_read() {
    let Some(url) = support::url() else { return };
    let p = support::fresh(&url).await;
    let ev = |v| NewEvent {
        stream: "s".into(),
        aggregate_id: "a".into(),
        version: v,
        data: r#"{"type":"x"}"#.into(),
    };
    let metas = p.append(vec![ev(1), ev(2)]).await.unwrap();
    println!("{metas:?}");
    assert!(
        p.append(vec![ev(2)])
            .await
            .unwrap_err()
            .is_version_conflict()
    );
    let all = p.events(&["s".to_owned()], 0, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    let agg = p.aggregate_events("s", "a", 1).await.unwrap();
    assert_eq!(agg.len(), 1);
    p.set_bookmark("b", 5).await.unwrap();
    assert_eq!(p.bookmark("b").await.unwrap(), Some(5));
}
