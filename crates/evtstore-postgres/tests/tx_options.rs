//! The transactional handler's options and hooks on PostgreSQL (the cases are evtstore-core's
//! `conformance::tx`): continue on error with each failing event rolled back to its savepoint
//! (a refused statement included, which aborts a PostgreSQL transaction), a failed page rolled
//! back, unknown event types, tailing, hooks.

mod counters;
mod support;

use std::sync::Arc;

use evtstore_core::conformance::tx::TxModel;
use evtstore_core::provider::TxProvider;
use evtstore_core::{BoxError, Position};
use evtstore_postgres::PgProvider;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

/// Table `applied` in the store's schema, one row per write.
struct Applied {
    admin: tokio_postgres::Client,
    insert: Arc<str>,
    refused: Arc<str>,
    rows: String,
    /// Turns the refusal of bookmark saves on and off (see `make`).
    refuse: [String; 2],
}

impl TxModel<PgProvider> for Applied {
    fn write<'a>(
        &self,
        tx: <PgProvider as TxProvider>::Arg<'a>,
        position: Position,
        fail: bool,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        let (insert, refused) = (self.insert.clone(), self.refused.clone());
        async move {
            tx.execute(&*insert, &[&(position as i64)]).await?;
            if fail {
                tx.execute(&*refused, &[]).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn rows(&self) -> BoxFuture<'_, Vec<Position>> {
        async move {
            let rows = self.admin.query(&self.rows, &[]).await.unwrap();
            rows.iter()
                .map(|r| r.get::<_, i64>(0) as Position)
                .collect()
        }
        .boxed()
    }

    fn refuse_bookmark_saves(&self, refuse: bool) -> BoxFuture<'_, ()> {
        let sql = &self.refuse[usize::from(refuse)];
        async move { self.admin.batch_execute(sql).await.unwrap() }.boxed()
    }
}

async fn make() -> Option<(Arc<PgProvider>, Applied)> {
    let url = support::url()?;
    let (schema, admin) = (support::unique_schema(), counters::admin(&url).await);
    let provider = counters::connect(&url, &schema, 4).await;
    counters::create_model(&admin, &schema).await;
    // Bookmark saves fail while table `refuse` holds a row.
    let trigger = format!(
        "CREATE TABLE \"{schema}\".refuse ();
         CREATE FUNCTION \"{schema}\".refuse_save() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF EXISTS (SELECT FROM \"{schema}\".refuse) THEN
             RAISE EXCEPTION 'bookmark save refused';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_save BEFORE INSERT OR UPDATE ON \"{schema}\".bookmarks
           FOR EACH ROW EXECUTE FUNCTION \"{schema}\".refuse_save();"
    );
    admin.batch_execute(&trigger).await.unwrap();
    let model = Applied {
        admin,
        insert: format!("INSERT INTO \"{schema}\".applied (position) VALUES ($1)").into(),
        refused: format!("SELECT * FROM \"{schema}\".no_such_table").into(),
        rows: format!("SELECT position FROM \"{schema}\".applied ORDER BY position"),
        refuse: [
            format!("DELETE FROM \"{schema}\".refuse"),
            format!("INSERT INTO \"{schema}\".refuse DEFAULT VALUES"),
        ],
    };
    Some((provider, model))
}

evtstore_core::tx_conformance_tests!(make);
