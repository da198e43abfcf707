//! One aggregate's events as read, in one buffer: a load allocates once (or a few times as it
//! grows), whatever its number of events.

use evtstore_core::provider::Visitor;
use evtstore_core::{EventMeta, Position, SharedStr, StoredEvent};

use crate::config::Config;

/// How many events like the first a read makes room for at once.
const ROOM: usize = 16;

/// Per event: version, position, timestamp and the body's length, 8 bytes each; then the body.
const HEADER: usize = 32;

/// An event's place: version, position, timestamp.
type Place = (u64, Position, i64);

/// The events, one after the other in `buffer`.
#[derive(Default)]
pub(crate) struct AggregateRows {
    buffer: Vec<u8>,
}

impl AggregateRows {
    /// Adds an event.
    pub(crate) fn push(&mut self, (version, position, timestamp): Place, body: &str) {
        if self.buffer.is_empty() {
            self.buffer.reserve((HEADER + body.len()) * ROOM);
        }
        let length = body.len() as u64;
        for field in [version, position, timestamp as u64, length] {
            self.buffer.extend_from_slice(&field.to_le_bytes());
        }
        self.buffer.extend_from_slice(body.as_bytes());
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
        let mut meta = EventMeta {
            stream: stream.clone(),
            aggregate_id: id.clone(),
            version: after_version,
            position: 0,
            timestamp: 0,
        };
        let corrupt = |cause: String| config.other_error(&format!("read {stream}/{id}"), cause);
        let mut rest = &self.buffer[..];
        while !rest.is_empty() {
            let ((version, position, timestamp), body, after) =
                next(rest).ok_or_else(|| corrupt("a row did not read back".into()))?;
            if version <= meta.version {
                return Err(corrupt(format!(
                    "version {version} came after {}",
                    meta.version
                )));
            }
            (meta.version, meta.position, meta.timestamp) = (version, position, timestamp);
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

/// The first event in `rest`: its place, its body, and what follows.
fn next(rest: &[u8]) -> Option<(Place, &str, &[u8])> {
    let (header, rest) = rest.split_first_chunk::<HEADER>()?;
    let field = |n: usize| {
        let bytes: [u8; 8] = header[n * 8..n * 8 + 8].try_into().unwrap_or_default();
        u64::from_le_bytes(bytes)
    };
    let length = usize::try_from(field(3)).ok()?;
    let (body, rest) = rest.split_at_checked(length)?;
    let body = std::str::from_utf8(body).ok()?;
    Some(((field(0), field(1), field(2) as i64), body, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_what_was_read_and_refuses_versions_out_of_order() {
        let config = Config::new("rows.db".as_ref(), Default::default()).unwrap();
        let (stream, id) = (SharedStr::from("s"), SharedStr::from("a"));
        let mut rows = AggregateRows::default();
        rows.push((3, 10, -1), r#"{"type":"x"}"#);
        rows.push((4, 12, 7), "");
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
