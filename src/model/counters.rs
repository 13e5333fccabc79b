//! Operational counters: incremented lock-free where things happen, flushed into the store.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Counts since the last flush to the store.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Counters {
            /// Takes the counts accumulated since the last call, leaving zeros.
            pub fn take(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.swap(0, Ordering::Relaxed)),)*]
            }

            /// Puts back counts that could not be flushed.
            pub fn restore(&self, taken: &[(&'static str, u64)]) {
                for (name, value) in taken {
                    match *name {
                        $(stringify!($name) => { self.$name.fetch_add(*value, Ordering::Relaxed); })*
                        _ => {}
                    }
                }
            }

            /// Every counter name, for reports that show zeros too.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name),)*];
        }
    };
}

counters! {
    /// Messages whose envelope row was committed.
    messages_recorded,
    /// Archive copies written.
    messages_archived,
    /// Bytes of archive copies written.
    archive_bytes,
    /// Copies that could not be written or synced.
    archive_errors,
    /// Envelope rows that could not be committed.
    store_errors,
    /// Messages over `archive.max_message_size`.
    messages_too_large,
    /// Messages of excluded senders.
    messages_excluded,
    /// Recipients beyond `milter.max_recipients`.
    recipients_dropped,
    /// Headers beyond `milter.max_headers` (still archived, not examined).
    headers_dropped,
    /// Archive copies deleted by the retention sweep.
    archive_expired,
    /// MTA connections closed at once because `milter.max_connections` were open.
    milter_connections_refused,
    /// Failed accepts of MTA connections (out of file descriptors, say), retried.
    milter_accept_errors,
    /// Rows the fleet database confirmed.
    fleet_records_shipped,
    /// Failed attempts to reach or write the fleet database (each retried).
    fleet_errors,
    /// Recipients refused at RCPT because they are on the suppression list.
    suppression_refused,
    /// Recipients on the list that `[suppression] mode = "record"` let through.
    suppression_would_refuse,
    /// Entries learned from permanent failures.
    suppression_learned,
    /// Learned entries lifted by a later delivery.
    suppression_lifted,
}

/// Counters the log follower writes with each batch of lines (see `IngestStats::counters`).
pub const LOG_COUNTERS: &[&str] = &[
    "log_lines",
    "log_events",
    "log_lines_unknown",
    "log_lines_ignored",
];

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
