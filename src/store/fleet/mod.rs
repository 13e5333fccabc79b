//! The fleet: this host's records shipped to one PostgreSQL database shared by every host.
//!
//! Locally, SQLite triggers (present only while `[fleet]` is configured) append a row's table
//! and id to `fleet_outbox` whenever a shipped row is inserted or updated, in the transaction
//! that writes it; the outbox is the shipping position: what it holds is what the fleet
//! database has not confirmed. A batch is read from one snapshot, upserted into PostgreSQL by
//! (host, id) in one transaction, and only then removed from the outbox: a crash in between
//! ships the batch again, and the upsert stores it once.

mod outbox;
pub mod postgres;
pub mod tables;

pub use outbox::{ColumnValues, OutboxBatch, OutboxLag, TableRows};

/// Outbox entries per batch: large enough that a transaction's round trips and commit cost
/// little per row, small enough that a batch sent again after a crash is quick.
pub const BATCH: usize = 20_000;
