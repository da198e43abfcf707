//! The core of evtstore: type-safe event sourcing and CQRS.
//!
//! Most users depend on the `evtstore` crate, which re-exports this one and the providers.
//!
//! # Layout
//! - `aggregate.rs`: the [`Aggregate`] trait (stream, event enum, fold) and [`Loaded`] aggregates.
//! - `command.rs`: the [`Command`] trait (a command's handler turns it into events) and
//!   [`CommandError`].
//! - `domain.rs`: [`Domain`], aggregate kinds on one provider: load, execute, handlers;
//!   [`domain!`] declares which kinds a domain holds, so the compiler checks membership.
//! - `handler/`: event handlers (read models, process managers) with bookmarks: [`Handles`],
//!   [`Handler`]; `handler/tx/`: transactional handlers ([`TxHandles`], the page loop shared
//!   by providers that implement [`provider::TxProvider`]).
//! - `snapshot.rs`: when a domain stores an aggregate's snapshot
//!   ([`Aggregate::SNAPSHOT_EVERY`], [`Domain::save_snapshot`]) and how loads start from it.
//! - `memory.rs`: [`MemoryProvider`], everything in this process.
//! - `event.rs`, `error.rs`: stored events and the [`enum@Error`] type.
//! - [`provider`]: for provider authors: the [`Provider`] trait and the checks and helpers
//!   every backend uses; `group.rs`, group commit of concurrent appends
//!   ([`provider::GroupCommit`]); `group_load.rs`, concurrent loads read together
//!   ([`provider::LoadQueue`]).
//! - [`jsonl`]: a store's events as JSON Lines, exported from one provider and imported into
//!   another.
//! - [`testing`]: given/when/then tests of commands and handlers, on a fresh in-memory store.
//! - `conformance` (feature `testkit`): the test suite every provider passes (and
//!   `conformance::tx`, the one every transactional provider passes).

mod aggregate;
mod batch;
mod body;
mod cache;
mod command;
#[cfg(feature = "testkit")]
pub mod conformance;
mod domain;
mod envelope;
mod error;
mod event;
mod fold;
mod group;
mod group_load;
mod handler;
pub mod jsonl;
mod lease;
mod memory;
mod names;
pub mod provider;
mod retire;
mod seal;
mod shared_str;
mod snapshot;
pub mod telemetry;
pub mod testing;
mod timed_out;
mod upcast;
mod waiting;

pub use aggregate::{Aggregate, Loaded, UnknownEvents};
pub use batch::Batch;
pub use command::{Command, CommandError, Decision, Events, Rejection};
pub use domain::{Contains, Domain, Executed};
pub use envelope::CommandMeta;
pub use error::{BoxError, Error, ErrorKind, Result};
pub use event::{CommandRecord, EventMeta, NewEvent, Position, Snapshot, StoredEvent};
pub use handler::{Handler, HandlerBuilder, HandlerFailure, Handles, Partitioned, TxHandles};
pub use lease::Lease;
pub use memory::MemoryProvider;
pub use provider::Provider;
pub use shared_str::SharedStr;
pub use upcast::Upcasters;
pub use uuid::Uuid;
