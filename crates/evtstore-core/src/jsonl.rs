//! Moving a store: its events as JSON Lines, one event with its whole envelope a line, written
//! from any provider and read into any other.
//!
//! A line holds, in this order: `stream`, `aggregate_id`, `version`, `position` (where the
//! event was: informational, the target gives its own), `timestamp` (milliseconds since the
//! Unix epoch), `event_id`, `correlation_id`, `causation_id`, `metadata` (the JSON given with
//! the command), `revision` and `data` (the body). `correlation_id`, `causation_id` and
//! `metadata` are left out when the event has none (`"metadata":null` is metadata that is JSON
//! `null`).
//!
//! ```text
//! {"stream":"accounts","aggregate_id":"a1","version":1,"position":7,"timestamp":1764223078000,"event_id":"019ac3b1-…","correlation_id":"019ac3b1-…","metadata":{"user":"alice"},"revision":1,"data":{"type":"opened","owner":"ann"}}
//! ```
//!
//! An import keeps every field but the position, and is idempotent by event id: an event whose
//! aggregate holds its version already is skipped when the stored event has the same id (so a
//! file imported twice, or files that overlap, append nothing twice), and refused when another
//! event holds that place. Events are appended in the order of the file, so the target's
//! positions keep the source's order.

use std::io::{BufRead, Write};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::{NewEvent, StoredEvent};
use crate::names::{check_aggregate_id, check_stream};
use crate::provider::Provider;
use crate::retire::{Marker, marker};

/// Events read per page by an export, and at most appended at once by an import.
const BATCH: usize = 1_000;

/// How far an export or an import has got; given to its `progress` callback after each page
/// of events read or batch appended (1,000 events at most), and once at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Events read: from the store (export) or from the file (import).
    pub read: u64,
    /// Events written: lines (export) or events appended (import).
    pub written: u64,
    /// Events the store held already, with the same id (import): not appended again.
    pub skipped: u64,
    /// True in the last report, when everything was read and written.
    pub done: bool,
}

/// One line: an event and its envelope.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    stream: String,
    aggregate_id: String,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
    timestamp: i64,
    event_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    causation_id: Option<Uuid>,
    /// Present, even as `null`, when the event has metadata.
    #[serde(default, deserialize_with = "present")]
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Box<RawValue>>,
    revision: u32,
    data: Box<RawValue>,
}

fn present<'de, D: Deserializer<'de>>(json: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(json).map(Some)
}

/// Writes the events of `streams` (of every stream when it is empty) to `out` as JSON Lines,
/// in store order, reading them in pages; returns the counts.
///
/// The events are read as they are: ones appended while the export runs may be included. A
/// whole store's streams come from [`Provider::streams`]. `out` is written to directly: give
/// it a [`BufWriter`](std::io::BufWriter).
///
/// # Errors
/// The provider's errors, a failure to write (as [`Error::Backend`]), and [`Error::Decode`] for
/// a stored body or metadata that is not JSON.
///
/// ```
/// # use evtstore_core::{MemoryProvider, NewEvent, Provider, jsonl};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> evtstore_core::Result<()> {
/// let store = MemoryProvider::new();
/// store.append(vec![NewEvent::new("users", "u1", 1, r#"{"type":"created"}"#)]).await?;
/// let mut file = Vec::new(); // or a BufWriter on a file
/// let report = |p: jsonl::Progress| eprintln!("{} events written", p.written);
/// let done = jsonl::export(&store, &[], &mut file, report).await?;
/// assert_eq!(done.written, 1);
/// assert!(String::from_utf8_lossy(&file).contains(r#""data":{"type":"created"}"#));
/// # Ok(()) }
/// ```
pub async fn export(
    provider: &dyn Provider,
    streams: &[String],
    mut out: impl Write,
    mut progress: impl FnMut(Progress),
) -> Result<Progress> {
    let listed = match streams {
        [] => provider.streams().await?,
        _ => Vec::new(),
    };
    let streams = if streams.is_empty() { &listed } else { streams };
    let mut done = Progress::default();
    let mut after = 0;
    while !streams.is_empty() {
        let page = provider.events(streams, after, BATCH).await?;
        let Some(last) = page.last() else { break };
        after = last.meta.position;
        for event in &page {
            for event in with_archived(provider, event).await? {
                serde_json::to_writer(&mut out, &line(&event)?).map_err(write_failed)?;
                out.write_all(b"\n").map_err(write_failed)?;
            }
        }
        done.read += page.len() as u64;
        done.written = done.read;
        progress(done);
    }
    out.flush().map_err(write_failed)?;
    done.done = true;
    progress(done);
    Ok(done)
}

/// What an export writes of a stored event: the event; an archiving marker after the events
/// it archived (so that the aggregate imports whole, and hot); nothing of a deletion's
/// tombstone (its aggregate's events are gone: it would stand alone).
async fn with_archived(provider: &dyn Provider, event: &StoredEvent) -> Result<Vec<StoredEvent>> {
    let meta = &event.meta;
    match marker(meta, &event.data) {
        Some(Marker::Deleted) => Ok(Vec::new()),
        Some(Marker::Archived) => {
            let archived =
                provider.archived_events(&meta.stream, &meta.aggregate_id, 0, meta.version);
            let mut events = archived.await?;
            events.push(event.clone());
            Ok(events)
        }
        _ => Ok(vec![event.clone()]),
    }
}

/// The line of a stored event.
fn line(event: &StoredEvent) -> Result<Line> {
    let meta = &event.meta;
    let json = |text: &str| {
        // A line break in JSON text is whitespace between tokens: a space does as well.
        RawValue::from_string(text.replace(['\n', '\r'], " ")).map_err(|source| Error::Decode {
            stream: meta.stream.to_string(),
            aggregate_id: meta.aggregate_id.to_string(),
            version: meta.version,
            position: meta.position,
            source,
        })
    };
    Ok(Line {
        stream: meta.stream.to_string(),
        aggregate_id: meta.aggregate_id.to_string(),
        version: meta.version,
        position: Some(meta.position),
        timestamp: meta.timestamp,
        event_id: meta.event_id,
        correlation_id: meta.correlation_id,
        causation_id: meta.causation_id,
        metadata: meta.metadata.as_deref().map(json).transpose()?,
        revision: meta.revision,
        data: json(&event.data)?,
    })
}

fn write_failed(error: impl Into<crate::error::BoxError>) -> Error {
    Error::backend("JSON Lines export: write", error)
}

/// Appends the events of the JSON Lines of `input` (as [`export`] writes them) to `provider`,
/// in the file's order, a batch at a time; returns the counts. Blank lines are ignored.
///
/// Each event keeps its version, id, timestamp, revision, correlation and causation ids and
/// metadata; the provider gives it a new position. An event whose aggregate holds its version
/// already is skipped when the stored event has the same id, so importing a file again, or
/// one that overlaps what was imported, appends nothing twice.
///
/// # Errors
/// [`Error::Import`], naming the line, for a line that is not an event, an event whose version
/// another event holds in the store, or one that would leave a gap in its aggregate's
/// versions: the lines before it are imported, none from it on. The provider's errors, and a
/// failure to read (as [`Error::Backend`]): what was appended before stays.
///
/// ```
/// # use evtstore_core::{MemoryProvider, jsonl};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> evtstore_core::Result<()> {
/// let file = r#"{"stream":"users","aggregate_id":"u1","version":1,"timestamp":1764223078000,"event_id":"019ac3b1-0000-7000-8000-000000000001","revision":1,"data":{"type":"created"}}"#;
/// let store = MemoryProvider::new();
/// let done = jsonl::import(&store, file.as_bytes(), |_| {}).await?; // or a BufReader on a file
/// assert_eq!((done.written, done.skipped), (1, 0));
/// let again = jsonl::import(&store, file.as_bytes(), |_| {}).await?;
/// assert_eq!((again.written, again.skipped), (0, 1));
/// # Ok(()) }
/// ```
pub async fn import(
    provider: &dyn Provider,
    input: impl BufRead,
    progress: impl FnMut(Progress),
) -> Result<Progress> {
    let mut import = Import {
        provider,
        batch: Vec::new(),
        done: Progress::default(),
        progress,
    };
    let mut failure = None;
    for (index, text) in input.lines().enumerate() {
        match pending(text, index as u64 + 1) {
            Ok(None) => {}
            Ok(Some(pending)) => import.push(pending).await?,
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    import.flush().await?;
    if let Some(error) = failure {
        return Err(error);
    }
    import.done.done = true;
    (import.progress)(import.done);
    Ok(import.done)
}

/// The event of a line as read, with its number; none for a blank line.
fn pending(text: std::io::Result<String>, number: u64) -> Result<Option<Pending>> {
    let refused = |reason| Error::Import {
        line: number,
        reason,
    };
    let text = match text {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(refused("not UTF-8 text".into()));
        }
        Err(e) => {
            return Err(Error::backend(
                format!("JSON Lines import: read line {number}"),
                e,
            ));
        }
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let event = parse(&text).map_err(refused)?;
    Ok(Some(Pending { event, number }))
}

/// The event of a line, or what is wrong with it.
fn parse(text: &str) -> Result<NewEvent, String> {
    let line: Line = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let place = format!(" at line {} column {}", e.line(), e.column());
        let message = message.strip_suffix(&place).unwrap_or(&message);
        format!("not an event: {message} (at column {})", e.column())
    })?;
    check_stream(&line.stream).map_err(|e| e.to_string())?;
    check_aggregate_id(&line.aggregate_id).map_err(|e| e.to_string())?;
    crate::body::check(line.data.get())?;
    if line.version == 0 {
        return Err("version 0: versions start at 1".into());
    }
    Ok(NewEvent {
        stream: line.stream.into(),
        aggregate_id: line.aggregate_id.into(),
        version: line.version,
        data: line.data.get().to_owned(),
        event_id: line.event_id,
        correlation_id: line.correlation_id,
        causation_id: line.causation_id,
        metadata: line.metadata.map(|m| m.get().into()),
        revision: line.revision,
        timestamp: Some(line.timestamp),
        command_id: None,
    })
}

/// An event read, and the number of its line.
struct Pending {
    event: NewEvent,
    number: u64,
}

impl Pending {
    /// The error that refuses this event.
    fn refused(&self, why: &str) -> Error {
        let e = &self.event;
        Error::Import {
            line: self.number,
            reason: format!(
                "event {} ({}/{} version {}): {why}",
                e.event_id, e.stream, e.aggregate_id, e.version
            ),
        }
    }
}

fn same_aggregate(a: &NewEvent, b: &NewEvent) -> bool {
    a.stream == b.stream && a.aggregate_id == b.aggregate_id
}

/// An import under way: the events read and not yet appended.
struct Import<'p, P> {
    provider: &'p dyn Provider,
    /// In file order; each aggregate's events adjacent, with consecutive versions, so that
    /// they make one append.
    batch: Vec<Pending>,
    done: Progress,
    progress: P,
}

impl<P: FnMut(Progress)> Import<'_, P> {
    /// Adds an event to the batch, appending the batch first when the event cannot join it.
    async fn push(&mut self, next: Pending) -> Result<()> {
        self.done.read += 1;
        let joins = match self.batch.last() {
            Some(last) if same_aggregate(&last.event, &next.event) => {
                last.event.version + 1 == next.event.version
            }
            _ => !self
                .batch
                .iter()
                .any(|p| same_aggregate(&p.event, &next.event)),
        };
        if !joins {
            self.flush().await?;
        }
        self.batch.push(next);
        if self.batch.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Appends the batch as one append; when an aggregate in it is not at the version before
    /// its events (part of them were imported already), settles it event by event.
    async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let events = batch.iter().map(|p| p.event.clone()).collect();
        match self.provider.append(events).await {
            Ok(appended) => self.done.written += appended.len() as u64,
            Err(Error::VersionConflict { .. }) => self.settle(&batch).await?,
            Err(error) => return Err(error),
        }
        (self.progress)(self.done);
        Ok(())
    }

    /// Skips the events the store holds already (with the same ids) and appends the others;
    /// at an event that cannot be imported, appends those before it and fails.
    async fn settle(&mut self, batch: &[Pending]) -> Result<()> {
        let mut fresh = Vec::new();
        let mut failure = None;
        for group in batch.chunk_by(|a, b| same_aggregate(&a.event, &b.event)) {
            let first = &group[0].event;
            let (stream, id) = (&first.stream, &first.aggregate_id);
            let after = first.version.saturating_sub(2);
            let stored = self.provider.aggregate_events(stream, id, after).await?;
            if let Err(error) = self.sort(group, &stored, &mut fresh) {
                failure = Some(error);
                break;
            }
        }
        if !fresh.is_empty() {
            self.done.written += self.provider.append(fresh).await?.len() as u64;
        }
        failure.map_or(Ok(()), Err)
    }

    /// Sorts an aggregate's events into those `stored` holds already and those to append.
    /// `stored` holds its events from the version before the first one on.
    fn sort(
        &mut self,
        group: &[Pending],
        stored: &[StoredEvent],
        fresh: &mut Vec<NewEvent>,
    ) -> Result<()> {
        let first = &group[0];
        let mut stored = stored.iter();
        if first.event.version > 1 {
            let before = stored.next().map(|e| e.meta.version);
            if before != Some(first.event.version - 1) {
                let gap = "the store does not hold the version before it, so it would leave a gap";
                return Err(first.refused(gap));
            }
        }
        for pending in group {
            match stored.next() {
                None => fresh.push(pending.event.clone()),
                Some(held) if held.meta.event_id == pending.event.event_id => {
                    self.done.skipped += 1
                }
                Some(held) => {
                    let why = format!(
                        "event {} holds that version in the store",
                        held.meta.event_id
                    );
                    return Err(pending.refused(&why));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
