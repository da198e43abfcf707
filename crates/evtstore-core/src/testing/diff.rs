//! Messages that show expected and actual events side by side.

use std::fmt::{Debug, Write};

use crate::event::StoredEvent;

/// `None` when the lists are equal; otherwise what differs, one event a line: `-` for an
/// expected event, `+` for the actual one in its place, unmarked where both agree.
pub(super) fn events_diff<E: PartialEq + Debug>(expected: &[E], actual: &[E]) -> Option<String> {
    if expected == actual {
        return None;
    }
    let mut message = if expected.len() == actual.len() {
        "gave other events than expected".to_owned()
    } else {
        format!(
            "gave {} where {} were expected",
            count(actual.len()),
            expected.len()
        )
    };
    message.push_str(" (- expected, + actual):");
    for index in 0..expected.len().max(actual.len()) {
        match (expected.get(index), actual.get(index)) {
            (Some(wanted), Some(got)) if wanted == got => line(&mut message, ' ', index, got),
            (wanted, got) => {
                if let Some(event) = wanted {
                    line(&mut message, '-', index, event);
                }
                if let Some(event) = got {
                    line(&mut message, '+', index, event);
                }
            }
        }
    }
    Some(message)
}

fn line(message: &mut String, mark: char, index: usize, event: &impl Debug) {
    let _ = write!(message, "\n  {mark} [{index}] {event:?}");
}

fn count(events: usize) -> String {
    match events {
        1 => "1 event".to_owned(),
        n => format!("{n} events"),
    }
}

/// Stored events as their JSON bodies, for messages about events that should not exist.
pub(super) fn bodies(events: &[StoredEvent]) -> String {
    let bodies: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
    match bodies.len() {
        0 => "no event".to_owned(),
        _ => format!("{}: [{}]", count(bodies.len()), bodies.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_lists_have_no_diff() {
        assert_eq!(events_diff::<i32>(&[], &[]), None);
        assert_eq!(events_diff(&[1, 2], &[1, 2]), None);
    }

    #[test]
    fn a_changed_event_shows_both() {
        let diff = events_diff(&[1, 2], &[1, 3]).expect("a diff");
        let expected = "gave other events than expected (- expected, + actual):\n    \
                        [0] 1\n  - [1] 2\n  + [1] 3";
        assert_eq!(diff, expected);
    }

    #[test]
    fn missing_and_extra_events_are_counted() {
        let missing = events_diff(&[1, 2], &[1]).expect("a diff");
        assert!(
            missing.starts_with("gave 1 event where 2 were expected"),
            "{missing}"
        );
        assert!(missing.ends_with("\n  - [1] 2"), "{missing}");
        let extra = events_diff(&[], &["x"]).expect("a diff");
        assert!(
            extra.starts_with("gave 1 event where 0 were expected"),
            "{extra}"
        );
        assert!(extra.ends_with("\n  + [0] \"x\""), "{extra}");
    }
}
