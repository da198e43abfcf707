//! Checks on the names given to evtstore: streams, aggregate ids, bookmarks, tables.

use std::sync::{Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::shared_str::SharedStr;

/// Longest accepted stream or bookmark name, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Longest accepted aggregate id, in bytes.
pub const MAX_ID_LEN: usize = 255;

/// A stream name: 1 to 200 ASCII letters, digits, `_`, `-` or `.`.
///
/// # Errors
/// [`Error::InvalidName`] naming the stream and why.
pub fn check_stream(name: &str) -> Result<()> {
    check_identifier("stream", name, MAX_NAME_LEN, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
    })
}

/// An aggregate kind's stream name, checked when the program is compiled: an invalid
/// [`Aggregate::STREAM`](crate::Aggregate::STREAM) fails the build wherever the kind is used.
///
/// ```compile_fail
/// use evtstore_core::{Aggregate, Domain, EventMeta, MemoryProvider};
/// #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
/// struct Bad;
/// impl Aggregate for Bad {
///     const STREAM: &'static str = "not a name"; // a space: refused when compiled
///     type Event = ();
///     fn fold(&mut self, _: &(), _: &EventMeta) {}
/// }
/// evtstore_core::domain!(Bads { Bad });
/// let bads: Domain<Bads> = Domain::new(MemoryProvider::new());
/// let handler = bads.handler("h").handle::<Bad, _>(|_, _, _| Ok(()));
/// ```
pub fn stream_of<A: crate::Aggregate>() -> &'static str {
    const {
        assert!(
            is_stream_name(A::STREAM),
            "Aggregate::STREAM must be 1 to 200 ASCII letters, digits, `_`, `-` or `.`"
        );
    }
    A::STREAM
}

/// An aggregate kind's stream name, shared: every envelope the domain makes for the kind holds
/// the same string, made once per process.
pub(crate) fn shared_stream<A: crate::Aggregate>() -> SharedStr {
    /// The names made so far: one per aggregate kind used.
    static SHARED: Mutex<Vec<SharedStr>> = Mutex::new(Vec::new());
    let name = stream_of::<A>();
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(made) = shared.iter().find(|made| *made == name) {
        return made.clone();
    }
    let made = SharedStr::from(name);
    shared.push(made.clone());
    made
}

/// The rule of [`check_stream`], usable in constants.
const fn is_stream_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME_LEN {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.') {
            return false;
        }
        i += 1;
    }
    true
}

/// A table or schema name: 1 to 63 ASCII letters, digits or `_`, not starting with a digit.
///
/// Providers check every configurable table name with this before using it in SQL.
///
/// # Errors
/// [`Error::InvalidName`] naming the table and why.
pub fn check_table(name: &str) -> Result<()> {
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(invalid("table", name, "must not start with a digit"));
    }
    check_identifier("table", name, 63, |c| c.is_ascii_alphanumeric() || c == '_')
}

/// An aggregate id: 1 to 255 bytes of text without control characters.
///
/// # Errors
/// [`Error::InvalidName`] naming the aggregate id and why.
pub fn check_aggregate_id(id: &str) -> Result<()> {
    check_text("aggregate id", id, MAX_ID_LEN)
}

/// A bookmark name: 1 to 200 bytes of text without control characters.
///
/// # Errors
/// [`Error::InvalidName`] naming the bookmark and why.
pub fn check_bookmark(name: &str) -> Result<()> {
    check_text("bookmark", name, MAX_NAME_LEN)
}

fn check_text(what: &'static str, value: &str, max: usize) -> Result<()> {
    check_identifier(what, value, max, |c| !c.is_control())
}

fn check_identifier(
    what: &'static str,
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<()> {
    if value.is_empty() {
        return Err(invalid(what, value, "must not be empty"));
    }
    if value.len() > max {
        return Err(invalid(what, value, "is too long"));
    }
    if !value.chars().all(allowed) {
        return Err(invalid(
            what,
            value,
            "contains a character that is not allowed",
        ));
    }
    Ok(())
}

fn invalid(what: &'static str, value: &str, reason: &'static str) -> Error {
    Error::InvalidName {
        what,
        value: shorten(value),
        reason,
    }
}

/// Longest part of a user's input that an error message repeats, in bytes.
const MAX_ECHO: usize = 100;

/// The input as an error message may repeat it: whole when short, else its start and its size.
///
/// ```
/// let long = "x".repeat(1 << 20);
/// assert!(evtstore_core::provider::shorten(&long).ends_with("x… (1048576 bytes)"));
/// assert_eq!(evtstore_core::provider::shorten("ok"), "ok");
/// ```
pub fn shorten(value: &str) -> String {
    if value.len() <= MAX_ECHO {
        return value.to_owned();
    }
    let mut end = MAX_ECHO;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &value[..end], value.len())
}

/// Refuses the options every server's provider has when they are out of range: a pool of no
/// connections, a time limit of zero, a `poll_alone` above
/// [`Waiting::MOST`](crate::provider::Waiting::MOST).
///
/// ```
/// use std::time::Duration;
/// use evtstore_core::provider::check_server_options;
/// let second = Duration::from_secs(1);
/// assert!(check_server_options(16, second, second, Duration::ZERO).is_ok());
/// assert!(check_server_options(0, second, second, Duration::ZERO).is_err());
/// assert!(check_server_options(16, second, second, second).is_err());
/// ```
pub fn check_server_options(
    pool_size: usize,
    connect_timeout: std::time::Duration,
    statement_timeout: std::time::Duration,
    poll_alone: std::time::Duration,
) -> Result<()> {
    check_option("pool_size", &pool_size, pool_size > 0, "must be at least 1")?;
    check_above_zero("connect_timeout", connect_timeout)?;
    check_above_zero("statement_timeout", statement_timeout)?;
    let most = crate::provider::Waiting::MOST;
    let reason = "must be at most 10 ms (`Waiting::MOST`): polling longer only spends a core";
    check_option("poll_alone", &poll_alone, poll_alone <= most, reason)
}

/// Refuses a zero duration for a provider's option.
///
/// ```
/// use std::time::Duration;
/// use evtstore_core::provider::check_above_zero;
/// assert!(check_above_zero("statement_timeout", Duration::ZERO).is_err());
/// ```
pub fn check_above_zero(name: &str, value: std::time::Duration) -> Result<()> {
    check_option(name, &value, !value.is_zero(), "must be above zero")
}

/// Refuses a provider's option out of its range (`ok` false), naming the option and its value.
///
/// ```
/// use evtstore_core::provider::check_option;
/// let error = check_option("pool_size", &0, false, "must be at least 1").unwrap_err();
/// assert_eq!(error.to_string(), r#"invalid option "pool_size = 0": must be at least 1"#);
/// ```
pub fn check_option(
    name: &str,
    value: &dyn std::fmt::Debug,
    ok: bool,
    reason: &'static str,
) -> Result<()> {
    match ok {
        true => Ok(()),
        false => Err(Error::InvalidName {
            what: "option",
            value: format!("{name} = {value:?}"),
            reason,
        }),
    }
}

/// `append to stream/id, …`: the aggregates of an append, for messages (the first three).
///
/// ```
/// use evtstore_core::NewEvent;
/// use evtstore_core::provider::append_to;
/// let event = |id: &str, version| NewEvent::new("s", id, version, "{}");
/// let two = [event("a", 1), event("a", 2), event("b", 1)];
/// assert_eq!(append_to(&two), "append to s/a, s/b");
/// let many: Vec<NewEvent> = ["a", "b", "a", "c", "d"].iter().map(|id| event(id, 1)).collect();
/// assert_eq!(append_to(&many), "append to s/a, s/b, s/c and others");
/// ```
pub fn append_to(events: &[crate::NewEvent]) -> String {
    let mut names: Vec<(&str, &str)> = Vec::new();
    let mut others = "";
    for event in events {
        let name = (event.stream.as_str(), event.aggregate_id.as_str());
        if names.contains(&name) {
            continue;
        }
        if names.len() == 3 {
            others = " and others";
            break;
        }
        names.push(name);
    }
    let names: Vec<String> = names
        .iter()
        .map(|(stream, id)| format!("{stream}/{}", shorten(id)))
        .collect();
    format!("append to {}{others}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_names_and_names_them() {
        let err = check_stream("users; drop table x").unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid stream \"users; drop table x\"")
        );
        assert!(check_stream("").is_err());
        assert!(check_aggregate_id("").is_err());
        assert!(check_aggregate_id("a\nb").is_err());
        assert!(check_table("1abc").is_err());
        assert!(check_table("events\"").is_err());
        assert!(check_stream(&"s".repeat(201)).is_err());
    }

    #[test]
    fn a_huge_input_is_cut_short_in_the_message() {
        let message = check_aggregate_id(&"x".repeat(1 << 20))
            .unwrap_err()
            .to_string();
        assert!(message.len() < 300, "{message}");
        assert!(message.contains("(1048576 bytes)"), "{message}");
    }

    #[test]
    fn accepts_ordinary_names() {
        check_stream("users.v2-x_y").unwrap();
        check_aggregate_id("user 42 / ünïcode").unwrap();
        check_table("evt_events").unwrap();
        check_bookmark("posts-model").unwrap();
    }
}
