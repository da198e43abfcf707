//! Appends: one statement checks every aggregate's version and inserts every event, or none.

use evtstore_core::provider::{Expectation, append_to, command_records, expectations};
use evtstore_core::{CommandRecord, Error, EventMeta, NewEvent, Result, Uuid};
use tokio_postgres::ToStatement;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use crate::PgProvider;

/// The statement's array parameters: events, then each aggregate's expectation.
struct Params<'a> {
    streams: Vec<&'a str>,
    ids: Vec<&'a str>,
    versions: Vec<i64>,
    data: Vec<&'a str>,
    expected_streams: Vec<&'a str>,
    expected_ids: Vec<&'a str>,
    expected_current: Vec<i64>,
    event_ids: Vec<Uuid>,
    correlation_ids: Vec<Option<Uuid>>,
    causation_ids: Vec<Option<Uuid>>,
    metadata: Vec<Option<&'a str>>,
    revisions: Vec<i32>,
    timestamps: Vec<Option<i64>>,
}

impl<'a> Params<'a> {
    fn new(events: &'a [NewEvent], expected: &[Expectation<'a>]) -> Self {
        Params {
            streams: events.iter().map(|e| e.stream.as_str()).collect(),
            ids: events.iter().map(|e| e.aggregate_id.as_str()).collect(),
            versions: events.iter().map(|e| e.version as i64).collect(),
            data: events.iter().map(|e| e.data.as_str()).collect(),
            expected_streams: expected.iter().map(|x| x.stream).collect(),
            expected_ids: expected.iter().map(|x| x.aggregate_id).collect(),
            expected_current: expected.iter().map(|x| x.current as i64).collect(),
            event_ids: events.iter().map(|e| e.event_id).collect(),
            correlation_ids: events.iter().map(|e| e.correlation_id).collect(),
            causation_ids: events.iter().map(|e| e.causation_id).collect(),
            metadata: events.iter().map(|e| e.metadata.as_deref()).collect(),
            revisions: events.iter().map(|e| e.revision as i32).collect(),
            timestamps: events.iter().map(|e| e.timestamp).collect(),
        }
    }

    fn as_slice(&self) -> [&(dyn ToSql + Sync); 13] {
        [
            &self.streams,
            &self.ids,
            &self.versions,
            &self.data,
            &self.expected_streams,
            &self.expected_ids,
            &self.expected_current,
            &self.event_ids,
            &self.correlation_ids,
            &self.causation_ids,
            &self.metadata,
            &self.revisions,
            &self.timestamps,
        ]
    }
}

/// The parameters of the statement for one event, and its aggregate's expected version.
struct OneParams<'a> {
    texts: [&'a str; 3],
    numbers: [i64; 2],
    ids: (Uuid, Option<Uuid>, Option<Uuid>),
    metadata: Option<&'a str>,
    revision: i32,
    timestamp: Option<i64>,
}

impl<'a> OneParams<'a> {
    fn new(e: &'a NewEvent, x: &Expectation<'a>) -> Self {
        OneParams {
            texts: [e.stream.as_str(), e.aggregate_id.as_str(), e.data.as_str()],
            numbers: [e.version as i64, x.current as i64],
            ids: (e.event_id, e.correlation_id, e.causation_id),
            metadata: e.metadata.as_deref(),
            revision: e.revision as i32,
            timestamp: e.timestamp,
        }
    }

    fn as_slice(&self) -> [&(dyn ToSql + Sync); 11] {
        let [stream, id, data] = &self.texts;
        let [version, current] = &self.numbers;
        let (event_id, correlation_id, causation_id) = &self.ids;
        [
            stream,
            id,
            version,
            data,
            event_id,
            correlation_id,
            causation_id,
            &self.metadata,
            &self.revision,
            &self.timestamp,
            current,
        ]
    }
}

impl PgProvider {
    /// Appends on a pooled connection, in a transaction of its own (one event by the
    /// statement for one).
    pub(crate) async fn append_pooled(&self, events: Vec<NewEvent>) -> Result<Vec<EventMeta>> {
        let client = self.client().await?;
        let one = events.len() == 1;
        let sql = if one {
            &self.sql.append_one
        } else {
            &self.sql.append
        };
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.fail(&append_to(&events), e))?;
        self.append_with(&**client, &statement, &events, one).await
    }

    /// Appends with a client or inside a caller's transaction.
    pub(crate) async fn append_on<C, S>(
        &self,
        client: &C,
        statement: &S,
        events: &[NewEvent],
    ) -> Result<Vec<EventMeta>>
    where
        C: GenericClient + Sync,
        S: ToStatement + Sync + Send + ?Sized,
    {
        self.append_with(client, statement, events, false).await
    }

    /// Appends by the array statement, or by the statement for one event when `one`.
    async fn append_with<C, S>(
        &self,
        client: &C,
        statement: &S,
        events: &[NewEvent],
        one: bool,
    ) -> Result<Vec<EventMeta>>
    where
        C: GenericClient + Sync,
        S: ToStatement + Sync + Send + ?Sized,
    {
        let expected = expectations(events)?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let answer = match (one, events, &*expected) {
            (true, [event], [x]) => {
                let params = OneParams::new(event, x);
                client.query(statement, &params.as_slice()).await
            }
            _ => {
                let params = Params::new(events, &expected);
                client.query(statement, &params.as_slice()).await
            }
        };
        let rows = match answer {
            Ok(rows) => rows,
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                return Err(self.conflict(client, &expected).await);
            }
            Err(e) => return Err(self.fail(&append_to(events), e)),
        };
        if rows.len() != events.len() {
            return Err(self.conflict(client, &expected).await);
        }
        self.record_commands(client, events).await?;
        Ok(metas(events, &rows))
    }

    /// Appends events of commands with ids in a transaction that records the ids.
    pub(crate) async fn append_recorded(&self, events: Vec<NewEvent>) -> Result<Vec<EventMeta>> {
        let what = append_to(&events);
        let mut client = self.client().await?;
        let tx = self.run(&what, client.transaction()).await?;
        let appended = self.append_on(&*tx, self.sql.append.as_str(), &events);
        let metas = self.within(&what, appended).await?;
        self.run(&what, tx.commit()).await?;
        self.notify_appended();
        Ok(metas)
    }

    /// Records the command ids of the events; one recorded already fails the append.
    async fn record_commands<C: GenericClient + Sync>(
        &self,
        client: &C,
        events: &[NewEvent],
    ) -> Result<()> {
        let records = command_records(events);
        let Some((first, _)) = records.first() else {
            return Ok(());
        };
        let ids: Vec<Uuid> = records.iter().map(|(id, _)| *id).collect();
        let streams: Vec<&str> = records.iter().map(|(_, r)| r.stream.as_str()).collect();
        let aggregates: Vec<&str> = records
            .iter()
            .map(|(_, r)| r.aggregate_id.as_str())
            .collect();
        let versions: Vec<i64> = records.iter().map(|(_, r)| r.version as i64).collect();
        let params: [&(dyn ToSql + Sync); 4] = [&ids, &streams, &aggregates, &versions];
        match client.execute(&self.sql.record_commands, &params).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                // "Key (command_id)=(<id>) already exists.": the id recorded already.
                let detail = e.as_db_error().and_then(|d| d.detail()).unwrap_or_default();
                let named = ids.iter().find(|id| detail.contains(&id.to_string()));
                let command_id = *named.unwrap_or(first);
                Err(Error::DuplicateCommand { command_id })
            }
            Err(e) => Err(self.fail(&append_to(events), e)),
        }
    }

    /// What an append recorded of a command.
    pub(crate) async fn read_command(&self, command_id: Uuid) -> Result<Option<CommandRecord>> {
        let what = format!("read command {command_id}");
        let client = self.client().await?;
        let row = self
            .run(&what, client.query_opt(&self.sql.command, &[&command_id]))
            .await?;
        Ok(row.map(|row| CommandRecord {
            stream: row.get(0),
            aggregate_id: row.get(1),
            version: row.get::<_, i64>(2) as u64,
        }))
    }

    /// Why an append wrote nothing: the first aggregate not at its expected version, or whose
    /// last event lies above this transaction's positions.
    async fn conflict<C: GenericClient + Sync>(
        &self,
        client: &C,
        expected: &[Expectation<'_>],
    ) -> Error {
        if let Some(error) = self.version_conflict(client, expected).await {
            return error;
        }
        for x in expected {
            let params: [&(dyn ToSql + Sync); 2] = [&x.stream, &x.aggregate_id];
            let stale = client.query_opt(&self.sql.stale, &params).await;
            if let Ok(Some(row)) = stale
                && row.get::<_, bool>(0)
            {
                return Error::StaleTransaction {
                    stream: x.stream.to_owned(),
                    aggregate_id: x.aggregate_id.to_owned(),
                };
            }
        }
        // Every version was as expected: the transaction ran out of positions.
        Error::backend("PostgreSQL: append", TooManyEvents)
    }

    /// The first aggregate not at its expected version.
    async fn version_conflict<C: GenericClient + Sync>(
        &self,
        client: &C,
        expected: &[Expectation<'_>],
    ) -> Option<Error> {
        for x in expected {
            let found = client
                .query_one(&self.sql.current_version, &[&x.stream, &x.aggregate_id])
                .await;
            // In a caller's aborted transaction the version cannot be read: it is at least one more.
            let actual = found.map_or(x.current + 1, |row| row.get::<_, i64>(0) as u64);
            if actual != x.current {
                return Some(conflict(x, actual));
            }
        }
        None
    }
}

fn conflict(x: &Expectation<'_>, actual: u64) -> Error {
    Error::VersionConflict {
        stream: x.stream.to_owned(),
        aggregate_id: x.aggregate_id.to_owned(),
        expected: x.current,
        actual,
    }
}

fn metas(events: &[NewEvent], rows: &[Row]) -> Vec<EventMeta> {
    let placed = events.iter().zip(rows);
    placed
        .map(|(event, row)| event.meta(row.get::<_, i64>(0) as u64, row.get(1)))
        .collect()
}

/// Why an append that found every version as expected wrote nothing: its transaction would
/// pass its positions (`xid << 20` and the 2^20 - 1 after it). Nothing was stored, so a group
/// that meets it retries each of its appends alone.
#[derive(Debug, thiserror::Error)]
#[error("one transaction may append at most 1,048,575 events")]
pub(crate) struct TooManyEvents;
