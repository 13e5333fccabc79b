//! The records a host ships to the fleet database, as data: each shipped table with its
//! columns and their types. The SQLite outbox triggers, the batch reads and PostgreSQL's schema
//! and upserts are all generated from this one list, so a column added to a table is added
//! here once.

/// How a column's values travel (SQLite's storage classes that mailtrail uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Int,
    Real,
    Text,
    Blob,
}

impl ColumnType {
    pub(crate) fn postgres(self) -> &'static str {
        match self {
            ColumnType::Int => "bigint",
            ColumnType::Real => "double precision",
            ColumnType::Text => "text",
            ColumnType::Blob => "bytea",
        }
    }
}

/// One table whose rows are shipped. `id` (the local row id) is always first and, with the
/// host, identifies the row in the fleet database.
#[derive(Debug)]
pub struct ShippedTable {
    pub name: &'static str,
    /// The table's number in the outbox.
    pub kind: i64,
    /// Columns after `id`.
    pub columns: &'static [(&'static str, ColumnType)],
    /// Rows are updated after their insert (a recipient's status, a copy's expiry), so an
    /// update is shipped too.
    pub updated: bool,
    /// A time column the fleet database partitions the table by day on, dropping whole days
    /// at retention; immutable, so part of the row's key there.
    pub partitioned_by: Option<&'static str>,
}

use ColumnType::{Blob, Int, Real, Text};

pub const SHIPPED: &[ShippedTable] = &[
    ShippedTable {
        name: "message",
        kind: 1,
        columns: &[
            ("queue_id", Text),
            ("arrived_at", Int),
            ("mta_host", Text),
            ("client_name", Text),
            ("client_addr", Text),
            ("helo", Text),
            ("sasl_user", Text),
            ("mail_from", Text),
            ("mail_args", Text),
            ("recipients_dropped", Int),
            ("size", Int),
            ("message_id", Text),
            ("subject", Text),
            ("archive_name", Text),
            ("archive_state", Text),
            ("mode", Text),
            ("receipts", Text),
            ("source", Text),
            ("nrcpt", Int),
            ("removed_at", Int),
            ("is_notice", Int),
            ("retry_requested_at", Int),
            ("handed_to", Text),
        ],
        updated: true,
        partitioned_by: None,
    },
    ShippedTable {
        name: "recipient",
        kind: 2,
        columns: &[
            ("message", Int),
            ("position", Int),
            ("address", Text),
            ("args", Text),
            ("orig_to", Text),
            ("status", Text),
            ("category", Text),
            ("dsn", Text),
            ("reply", Text),
            ("attempts", Int),
            ("last_attempt_at", Int),
            ("final_at", Int),
        ],
        updated: true,
        partitioned_by: None,
    },
    ShippedTable {
        name: "attempt",
        kind: 3,
        columns: &[
            ("recipient", Int),
            ("at", Int),
            ("status", Text),
            ("relay_host", Text),
            ("relay_ip", Text),
            ("relay_port", Int),
            ("dsn", Text),
            ("smtp_code", Int),
            ("reply", Text),
            ("stage", Text),
            ("delay", Real),
            ("delays", Text),
            ("category", Text),
        ],
        updated: false,
        partitioned_by: None,
    },
    ShippedTable {
        name: "reject",
        kind: 4,
        columns: &[
            ("at", Int),
            ("mta_host", Text),
            ("source", Text),
            ("code", Int),
            ("dsn", Text),
            ("client_host", Text),
            ("client_ip", Text),
            ("sender", Text),
            ("recipient", Text),
            ("helo", Text),
            ("stage", Text),
            ("reason", Text),
            ("category", Text),
        ],
        updated: false,
        partitioned_by: None,
    },
    ShippedTable {
        name: "mta_notice",
        kind: 5,
        columns: &[
            ("message", Int),
            ("at", Int),
            ("kind", Text),
            ("notice_queue_id", Text),
        ],
        updated: false,
        partitioned_by: None,
    },
    ShippedTable {
        name: "notice",
        kind: 6,
        columns: &[
            ("message", Int),
            ("kind", Text),
            ("recipients", Text),
            ("due_at", Int),
            ("sent_at", Int),
            ("attempts", Int),
            ("last_error", Text),
            ("notice_message_id", Text),
        ],
        updated: true,
        partitioned_by: None,
    },
    ShippedTable {
        name: "raw_line",
        kind: 7,
        columns: &[("at", Int), ("queue_id", Text), ("line", Text)],
        updated: false,
        partitioned_by: Some("at"),
    },
];

pub fn by_kind(kind: i64) -> Option<&'static ShippedTable> {
    SHIPPED.iter().find(|table| table.kind == kind)
}

/// A statistics rollup table: rows replaced a whole period (a day, or a month) at a time by
/// each host's refresh, and shipped the same way — the fleet database drops the host's rows of
/// the period and takes the new ones.
#[derive(Debug)]
pub struct RollupTable {
    pub name: &'static str,
    /// The period column (`day` or `month`), first of `columns`.
    pub period: &'static str,
    pub monthly: bool,
    pub columns: &'static [(&'static str, ColumnType)],
}

const COUNTS: [(&str, ColumnType); 8] = [
    ("messages", Int),
    ("recipients", Int),
    ("bytes", Int),
    ("sent", Int),
    ("deferred", Int),
    ("bounced", Int),
    ("expired", Int),
    ("rejected", Int),
];

macro_rules! with_counts {
    ($($column:expr),* ; $($tail:expr),*) => {
        &[$($column,)* COUNTS[0], COUNTS[1], COUNTS[2], COUNTS[3], COUNTS[4], COUNTS[5],
          COUNTS[6], COUNTS[7] $(, $tail)*]
    };
}

pub const ROLLUPS: &[RollupTable] = &[
    RollupTable {
        name: "stats_hour",
        period: "day",
        monthly: false,
        columns: with_counts!(("day", Int), ("hour", Int), ("sender_domain", Text); ("delay_hist", Blob)),
    },
    RollupTable {
        name: "stats_key",
        period: "day",
        monthly: false,
        columns: with_counts!(("day", Int), ("dimension", Text), ("sender_domain", Text), ("key", Text), ("key2", Text);),
    },
    RollupTable {
        name: "stats_key_month",
        period: "month",
        monthly: true,
        columns: with_counts!(("month", Int), ("dimension", Text), ("sender_domain", Text), ("key", Text), ("key2", Text);),
    },
];
