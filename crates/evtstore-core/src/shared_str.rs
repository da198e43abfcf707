//! Shared strings: the stream names and aggregate ids that envelopes carry.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A string shared between the values that hold it: an [`EventMeta`](crate::EventMeta)'s stream
/// and aggregate id, a [`Loaded`](crate::Loaded) aggregate's id. A clone copies no text, so the
/// envelopes of one stream, or of one aggregate's events, all hold the same string.
///
/// It reads as a `&str`: [`as_str`](Self::as_str), deref, `==` with `&str` and `String`.
///
/// ```
/// use evtstore_core::SharedStr;
/// let id = SharedStr::from("user-1");
/// assert_eq!(id, "user-1");
/// assert!(id.starts_with("user-"));
/// assert_eq!(id.clone().as_str(), "user-1");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for SharedStr {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for SharedStr {
    fn from(text: &str) -> Self {
        SharedStr(text.into())
    }
}

impl From<&String> for SharedStr {
    fn from(text: &String) -> Self {
        SharedStr(text.as_str().into())
    }
}

impl From<String> for SharedStr {
    fn from(text: String) -> Self {
        SharedStr(text.into())
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(text: Arc<str>) -> Self {
        SharedStr(text)
    }
}

impl From<SharedStr> for String {
    fn from(text: SharedStr) -> Self {
        text.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == *other.0
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

/// For providers reading events: gives each event's names shared with the others of the read.
/// A stream name is the same string as the one asked for (or as the first of that name read),
/// and an aggregate id the previous event's when it is the same (an aggregate's events often
/// follow each other), so most events of a page or of an aggregate allocate no name.
///
/// ```
/// use evtstore_core::provider::SharedNames;
/// let mut names = SharedNames::new(&["users"]);
/// let (first, second) = (names.aggregate_id("u1"), names.aggregate_id("u1"));
/// assert_eq!(first, "u1");
/// assert!(std::ptr::eq(first.as_str(), second.as_str()), "one string");
/// assert_eq!(names.stream("users"), "users");
/// ```
#[derive(Debug, Clone, Default)]
pub struct SharedNames {
    streams: Vec<SharedStr>,
    last_id: Option<SharedStr>,
}

impl SharedNames {
    /// For a read of these streams.
    pub fn new<S: AsRef<str>>(streams: &[S]) -> Self {
        let streams = streams.iter().map(|s| SharedStr::from(s.as_ref()));
        SharedNames {
            streams: streams.collect(),
            last_id: None,
        }
    }

    /// A stream name, shared.
    pub fn stream(&mut self, name: &str) -> SharedStr {
        if let Some(known) = self.streams.iter().find(|known| *known == name) {
            return known.clone();
        }
        let new = SharedStr::from(name);
        self.streams.push(new.clone());
        new
    }

    /// An aggregate id, shared with the previous one when it is the same.
    pub fn aggregate_id(&mut self, id: &str) -> SharedStr {
        match &self.last_id {
            Some(last) if last == id => last.clone(),
            _ => self.last_id.insert(SharedStr::from(id)).clone(),
        }
    }
}
