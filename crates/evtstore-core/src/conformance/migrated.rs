//! What every provider's migration test checks of events stored before the envelope.

use std::collections::HashSet;

use crate::StoredEvent;

/// Checks events stored before the envelope, as a migration left them: each has a distinct
/// UUID v7 (RFC 9562's variant) made of its own timestamp, revision 1, and no correlation,
/// causation or metadata. For each provider's migration test.
pub fn assert_migrated_envelopes(events: &[StoredEvent]) {
    let mut ids = HashSet::new();
    for event in events {
        let m = &event.meta;
        assert_eq!(m.event_id.get_version_num(), 7, "a UUID v7: {m:?}");
        assert_eq!(
            m.event_id.as_bytes()[8] >> 6,
            0b10,
            "RFC 9562's variant: {m:?}"
        );
        let (secs, nanos) = m.event_id.get_timestamp().expect("v7").to_unix();
        let millis = secs as i64 * 1000 + i64::from(nanos / 1_000_000);
        assert_eq!(millis, m.timestamp, "made of its timestamp: {m:?}");
        let envelope = (
            m.correlation_id,
            m.causation_id,
            m.metadata.clone(),
            m.revision,
        );
        assert_eq!(envelope, (None, None, None, 1), "{m:?}");
        ids.insert(m.event_id);
    }
    assert_eq!(ids.len(), events.len(), "distinct ids");
}
