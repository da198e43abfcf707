//! [`Secret`] (`"secrets"`), an [`ENCRYPTED`](crate::Aggregate::ENCRYPTED) kind: its bodies
//! are sealed with a key of each aggregate, so that shredding the key forgets them.

use std::convert::Infallible;

use serde::{Deserialize, Serialize};

use crate::{Aggregate, BoxError, Command, Decision, Domain, EventMeta, Handles, Loaded};

/// A secret's only event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SecretEvent {
    /// A note was taken.
    Noted {
        /// Its text.
        text: String,
    },
}

/// The notes of a secret, and how many were shredded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    /// The notes still readable.
    pub notes: Vec<String>,
    /// How many were shredded.
    pub shredded: usize,
}

impl Aggregate for Secret {
    const STREAM: &'static str = "secrets";
    const ENCRYPTED: bool = true;
    /// Ignored: an encrypted kind keeps no snapshots.
    const SNAPSHOT: Option<&'static str> = Some("v1");
    const SNAPSHOT_EVERY: u64 = 1;
    type Event = SecretEvent;

    fn fold(&mut self, event: &SecretEvent, _meta: &EventMeta) {
        let SecretEvent::Noted { text } = event;
        self.notes.push(text.clone());
    }

    fn shredded(&mut self, _meta: &EventMeta) {
        self.shredded += 1;
    }
}

/// Takes a note.
pub struct Note(pub &'static str);

impl<D> Command<D> for Note {
    type Aggregate = Secret;
    type Error = Infallible;

    async fn handle(self, _: &Loaded<Secret>, _: &Domain<D>) -> Decision<Self, D> {
        Ok(vec![SecretEvent::Noted {
            text: self.0.into(),
        }])
    }
}

/// What a handler saw of secrets: notes, shredded events, deleted aggregates.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SecretsSeen {
    /// Notes, as "id: text".
    pub notes: Vec<String>,
    /// Versions of shredded events, as "id@version".
    pub shredded: Vec<String>,
    /// Deleted aggregates' ids.
    pub deleted: Vec<String>,
}

impl Handles<Secret> for SecretsSeen {
    async fn handle(&mut self, event: &SecretEvent, meta: &EventMeta) -> Result<(), BoxError> {
        let SecretEvent::Noted { text } = event;
        self.notes.push(format!("{}: {text}", meta.aggregate_id));
        Ok(())
    }

    async fn shredded(&mut self, meta: &EventMeta) -> Result<(), BoxError> {
        self.shredded
            .push(format!("{}@{}", meta.aggregate_id, meta.version));
        Ok(())
    }

    async fn deleted(&mut self, meta: &EventMeta) -> Result<(), BoxError> {
        self.deleted.push(meta.aggregate_id.to_string());
        Ok(())
    }
}
