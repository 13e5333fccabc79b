//! How log lines and the milter's records are matched to one message by queue id: rules the
//! tracking and the store's lookups share, written once.

/// How far back a queue id is looked for: longer than any MTA keeps a message queued. Postfix
/// reuses short queue ids once a message left the queue, so the newest match within this
/// window is the one.
pub const QUEUE_ID_WINDOW_SECS: i64 = 10 * 86400;

/// Log stamps and the milter's clock may disagree by this much; it is also how far apart the
/// milter's arrival time and the log's first line of one message may be.
pub const CLOCK_SKEW_SECS: i64 = 300;
