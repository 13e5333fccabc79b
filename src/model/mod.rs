//! The leaf layer: what the other modules exchange, with no I/O — the envelope of a message as
//! the milter recorded it, recipient states and attempt outcomes and the rules between them, notice kinds, the queue-id
//! correlation rules, and the operational counters.

pub mod address;
pub mod correlation;
pub mod counters;
pub mod envelope;
pub mod health;
pub mod listen;
pub mod notice;
pub mod status;
