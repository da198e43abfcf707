//! The core of evtstore: type-safe event sourcing and CQRS.
//!
//! Most users depend on the `evtstore` crate, which re-exports this one and the providers.
//!
//! # Layout
//! - [`aggregate`]: the [`Aggregate`] trait (stream, event enum, fold) and [`Loaded`] aggregates.
//! - [`command`]: the [`Command`] trait: a command's handler turns it into events.
//! - [`domain`](mod@domain): [`Domain`], aggregate kinds on one provider: load, execute, handlers;
//!   [`domain!`] declares which kinds a domain holds, so the compiler checks membership.
//! - [`handler`]: event handlers (read models, process managers) with bookmarks.
//! - [`provider`]: the [`Provider`] trait every storage backend implements.
//! - [`memory`]: [`MemoryProvider`], everything in this process.
//! - [`event`], [`error`], [`names`], [`body`]: stored events, the [`Error`] type, checks of
//!   names and of event bodies.
//! - [`testing`]: given/when/then tests of commands and handlers, on a fresh in-memory store.
//! - `conformance` (feature `testkit`): the test suite every provider passes.

pub mod aggregate;
mod batch;
pub mod body;
mod cache;
pub mod command;
#[cfg(feature = "testkit")]
pub mod conformance;
pub mod domain;
pub mod error;
pub mod event;
pub mod handler;
pub mod memory;
pub mod names;
pub mod provider;
pub mod testing;

pub use aggregate::{Aggregate, Loaded, UnknownEvents};
pub use batch::Batch;
pub use command::{Command, CommandError, Decision, Events, Rejection};
pub use domain::{Contains, Domain, Executed};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use event::{EventMeta, NewEvent, Position, Snapshot, StoredEvent};
pub use handler::{Handler, HandlerBuilder, HandlerFailure, Handles};
pub use memory::MemoryProvider;
pub use provider::Provider;
