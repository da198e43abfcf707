//! The cause of an error when a provider's time limit passed.

use std::fmt;
use std::time::Duration;

/// A time limit that passed, and the setting that holds it: the source of the
/// [`Error::Unavailable`](crate::Error::Unavailable) a provider gives when a server did not
/// answer in time.
///
/// ```
/// use std::time::Duration;
/// use evtstore_core::provider::TimedOut;
/// let late = TimedOut { limit: "statement_timeout", after: Duration::from_secs(30) };
/// assert_eq!(late.to_string(), "no answer within 30s (statement_timeout)");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TimedOut {
    /// The setting: `connect_timeout`, `statement_timeout`.
    pub limit: &'static str,
    /// Its value.
    pub after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no answer within {:?} ({})", self.after, self.limit)
    }
}

impl std::error::Error for TimedOut {}
