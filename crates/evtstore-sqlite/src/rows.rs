//! One aggregate's events as read, in one buffer: a load allocates once (or a few times as it
//! grows), whatever its number of events.

use evtstore_core::provider::Visitor;
use evtstore_core::{EventMeta, Position, SharedStr, StoredEvent, Uuid};

use crate::config::Config;

/// How many events like the first a read makes room for at once.
const ROOM: usize = 16;

/// Per event: version, position, timestamp, revision and the lengths of the body and the
/// metadata (`u64::MAX`: none), 8 bytes each; the event, correlation and causation ids (nil:
/// none), 16 bytes each; then the body and the metadata.
const HEADER: usize = 6 * 8 + 3 * 16;

/// An event's place: version, position, timestamp.
type Place = (u64, Position, i64);

/// The rest of an event's envelope, as read from its row.
pub(crate) struct Envelope<'r> {
    pub(crate) event_id: Uuid,
    pub(crate) correlation_id: Option<Uuid>,
    pub(crate) causation_id: Option<Uuid>,
    pub(crate) metadata: Option<&'r str>,
    pub(crate) revision: u32,
}

/// The events, one after the other in `buffer`.
#[derive(Default)]
pub(crate) struct AggregateRows {
    buffer: Vec<u8>,
}

impl AggregateRows {
    /// Adds an event.
    pub(crate) fn push(
        &mut self,
        (version, position, timestamp): Place,
        e: &Envelope<'_>,
        body: &str,
    ) {
        let metadata = e.metadata.unwrap_or_default();
        if self.buffer.is_empty() {
            self.buffer
                .reserve((HEADER + body.len() + metadata.len()) * ROOM);
        }
        let metadata_length = e.metadata.map_or(u64::MAX, |m| m.len() as u64);
        let fields = [version, position, timestamp as u64, e.revision.into()];
        for field in fields
            .into_iter()
            .chain([body.len() as u64, metadata_length])
        {
            self.buffer.extend_from_slice(&field.to_le_bytes());
        }
        for id in [Some(e.event_id), e.correlation_id, e.causation_id] {
            self.buffer
                .extend_from_slice(id.unwrap_or_default().as_bytes());
        }
        self.buffer.extend_from_slice(body.as_bytes());
        self.buffer.extend_from_slice(metadata.as_bytes());
    }

    /// Calls `visit` with each event, in version order.
    pub(crate) fn visit(
        &self,
        config: &Config,
        stream: &SharedStr,
        id: &SharedStr,
        after_version: u64,
        visit: &mut Visitor<'_>,
    ) -> evtstore_core::Result<()> {
        // One envelope, refilled for each event: its names are shared, never cloned again.
        let mut meta = EventMeta {
            stream: stream.clone(),
            aggregate_id: id.clone(),
            version: after_version,
            position: 0,
            timestamp: 0,
            event_id: Uuid::nil(),
            correlation_id: None,
            causation_id: None,
            metadata: None,
            revision: 0,
        };
        let corrupt = |cause: String| config.other_error(&format!("read {stream}/{id}"), cause);
        let mut rest = &self.buffer[..];
        while !rest.is_empty() {
            let last = meta.version;
            let (body, after) =
                next(rest, &mut meta).ok_or_else(|| corrupt("a row did not read back".into()))?;
            if meta.version <= last {
                return Err(corrupt(format!(
                    "version {} came after {last}",
                    meta.version
                )));
            }
            visit(&meta, body)?;
            rest = after;
        }
        Ok(())
    }

    /// The events, collected.
    pub(crate) fn collect(
        &self,
        config: &Config,
        stream: &SharedStr,
        id: &SharedStr,
        after: u64,
    ) -> evtstore_core::Result<Vec<StoredEvent>> {
        let mut events = Vec::new();
        let mut collect = |meta: &EventMeta, data: &str| {
            let (meta, data) = (meta.clone(), data.to_owned());
            events.push(StoredEvent { meta, data });
            Ok(())
        };
        self.visit(config, stream, id, after, &mut collect)?;
        Ok(events)
    }
}

/// The first event in `rest`: its envelope, its body, and what follows.
fn next<'r>(rest: &'r [u8], meta: &mut EventMeta) -> Option<(&'r str, &'r [u8])> {
    let (header, rest) = rest.split_first_chunk::<HEADER>()?;
    let field =
        |n: usize| u64::from_le_bytes(header[n * 8..n * 8 + 8].try_into().unwrap_or_default());
    let uuid = |n: usize| {
        let bytes: [u8; 16] = header[48 + n * 16..64 + n * 16]
            .try_into()
            .unwrap_or_default();
        Some(Uuid::from_bytes(bytes)).filter(|id| !id.is_nil())
    };
    let (body, rest) = rest.split_at_checked(usize::try_from(field(4)).ok()?)?;
    let (metadata, rest) = match field(5) {
        u64::MAX => (None, rest),
        length => {
            let (metadata, rest) = rest.split_at_checked(usize::try_from(length).ok()?)?;
            (Some(std::str::from_utf8(metadata).ok()?.into()), rest)
        }
    };
    (meta.version, meta.position, meta.timestamp) = (field(0), field(1), field(2) as i64);
    meta.revision = u32::try_from(field(3)).ok()?;
    (meta.event_id, meta.correlation_id) = (uuid(0).unwrap_or_default(), uuid(1));
    (meta.causation_id, meta.metadata) = (uuid(2), metadata);
    Some((std::str::from_utf8(body).ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_what_was_read_and_refuses_versions_out_of_order() {
        let config = Config::new("rows.db".as_ref(), Default::default()).unwrap();
        let (stream, id) = (SharedStr::from("s"), SharedStr::from("a"));
        let mut rows = AggregateRows::default();
        let (first, cause) = (Uuid::now_v7(), Uuid::now_v7());
        let envelope = |event_id, causation_id, metadata| Envelope {
            event_id,
            correlation_id: None,
            causation_id,
            metadata,
            revision: 2,
        };
        rows.push(
            (3, 10, -1),
            &envelope(first, Some(cause), Some("{}")),
            r#"{"type":"x"}"#,
        );
        rows.push((4, 12, 7), &envelope(cause, None, None), "");
        let events = rows.collect(&config, &stream, &id, 2).unwrap();
        let read: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.meta.version,
                    e.meta.position,
                    e.meta.timestamp,
                    e.data.as_str(),
                )
            })
            .collect();
        assert_eq!(read, [(3, 10, -1, r#"{"type":"x"}"#), (4, 12, 7, "")]);
        let envelopes: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.meta.event_id,
                    e.meta.causation_id,
                    e.meta.metadata.as_deref(),
                    e.meta.revision,
                )
            })
            .collect();
        assert_eq!(
            envelopes,
            [(first, Some(cause), Some("{}"), 2), (cause, None, None, 2)]
        );
        assert!(
            events
                .iter()
                .all(|e| e.meta.stream == "s" && e.meta.aggregate_id == "a")
        );
        let error = rows
            .collect(&config, &stream, &id, 3)
            .unwrap_err()
            .to_string();
        assert!(error.contains("version 3 came after 3"), "{error}");
    }
}
