//! The leaf layer: what the other modules exchange, with no I/O — the envelope of a message as
//! the milter recorded it, and the operational counters.

pub mod counters;
pub mod envelope;
