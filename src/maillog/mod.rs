//! MTA log parsing: one line in, one typed event out (no I/O, no SQL), and followers that
//! read lines from files, journald or stdin together with a resumable position.

pub mod event;
pub mod follow;
mod header;
mod postfix;
mod sendmail;
mod text;

pub use event::{
    Delivery, DeliveryStatus, Event, Header, Mta, NotificationKind, ParseOutcome, Reject,
    RejectSource, SmtpStage,
};
pub use follow::{
    FileFollower, FollowError, FollowedLine, JournalFollower, LogPosition, journal_entry_to_line,
    open_import, spawn_stdin,
};

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// The lines of a block of log text, as [`str::lines`] splits them (a final line without a
/// newline included, `\r\n` ends stripped) but with a vectorised newline search: an import
/// splits a gigabyte this way.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(
        // The last line, when it has no newline.
        (!text.is_empty() && !text.ends_with('\n')).then_some(text.len()),
    );
    ends.map(move |end| {
        // Newlines are ASCII: both ends fall on character boundaries.
        let line = &text[start..end];
        start = end + 1;
        match end < text.len() {
            true => line.strip_suffix('\r').unwrap_or(line),
            // A lone `\r` at the very end is not a line end.
            false => line,
        }
    })
}

/// Whether `line` holds a control character other than tab and line ends (LF, and CR before an
/// LF or at the end: a caller may hand over a multi-line text). No early exit, so the first loop
/// vectorises: it runs on every line of an import.
fn has_control_bytes(line: &str) -> bool {
    let b = line.as_bytes();
    let other = b.iter().fold(false, |found, &c| {
        found | ((c < 0x20) & (c != b'\t') & (c != b'\n') & (c != b'\r'))
    });
    // A lone CR (found by fuzzing: it reached a stored reply) is no line end.
    other || memchr::memchr_iter(b'\r', b).any(|i| b.get(i + 1).is_some_and(|&n| n != b'\n'))
}

#[derive(Debug, Clone)]
pub struct ParserOptions {
    /// Reference time for the year of syslog stamps, which carry none.
    pub now: OffsetDateTime,
    /// Postfix `syslog_name`s to accept besides any `postfix-NAME` (default `["postfix"]`).
    pub syslog_names: Vec<String>,
    /// Offset of stamps without one (classic syslog, postlog): the server's local offset.
    pub default_offset: UtcOffset,
}

impl ParserOptions {
    /// Options for postfix's default `syslog_name` and UTC stamps; `now` is the reference for
    /// the year of syslog stamps (the clock is read by the caller, never here).
    pub fn new(now: OffsetDateTime) -> Self {
        ParserOptions {
            now,
            syslog_names: vec!["postfix".to_owned()],
            default_offset: UtcOffset::UTC,
        }
    }
}

/// Stateful only for the year of syslog stamps and a small date cache.
#[derive(Debug)]
pub struct Parser {
    opts: ParserOptions,
    /// (year, month) of the last line: a file crossing New Year moves from Dec to Jan.
    last: Option<(i32, u8)>,
    /// The calendar date of the previous line, reused while it does not change.
    date_cache: Option<((i32, u8, u8), Date)>,
    /// The previous line's time to the second: consecutive lines often share it.
    second_cache: Option<(SecondKey, OffsetDateTime)>,
}

/// (year, month, day, hour, minute, second, offset seconds)
type SecondKey = (i32, u8, u8, u8, u8, u8, Option<i32>);

impl Parser {
    pub fn new(opts: ParserOptions) -> Self {
        Parser {
            opts,
            last: None,
            date_cache: None,
            second_cache: None,
        }
    }

    pub fn options(&self) -> &ParserOptions {
        &self.opts
    }

    /// Parses one line (a trailing newline is allowed). Never panics.
    pub fn parse(&mut self, line: &str) -> ParseOutcome {
        // Syslog and the MTAs escape control characters (postfix writes `?`, rsyslog `#001`):
        // a line holding one was not written by them, and a NUL would reach stored addresses.
        if has_control_bytes(line) {
            return ParseOutcome::Unknown;
        }
        let raw = match header::parse(line) {
            Ok(h) => h,
            Err(header::HeaderError::Blank) => return ParseOutcome::Ignored("blank"),
            Err(header::HeaderError::NoTag) => return ParseOutcome::Ignored("no program tag"),
            Err(header::HeaderError::Malformed) => return ParseOutcome::Unknown,
        };
        let Some((mta, service)) = self.classify(raw.program) else {
            // Still track the year across other programs' lines.
            if raw.stamp.year.is_none() {
                self.last = Some((
                    self.infer_year(raw.stamp.month, raw.stamp.day),
                    raw.stamp.month,
                ));
            } else if let Some(y) = raw.stamp.year {
                self.last = Some((y, raw.stamp.month));
            }
            return ParseOutcome::Ignored("other program");
        };
        let event = match mta {
            Mta::Postfix => postfix::parse(service, raw.message),
            Mta::Sendmail => sendmail::parse(raw.message),
        };
        let Some(event) = event else {
            return ParseOutcome::Unknown;
        };
        let Some(time) = self.time_of(&raw.stamp) else {
            return ParseOutcome::Unknown;
        };
        let header = Header {
            time,
            host: raw.host.to_owned(),
            program: raw.program.to_owned(),
            pid: raw.pid,
            mta,
            repeat: raw.repeat,
        };
        ParseOutcome::Event(header, event)
    }

    /// (MTA, postfix service name) for a syslog tag, or None for programs we don't follow.
    fn classify<'a>(&self, program: &'a str) -> Option<(Mta, &'a str)> {
        // sendmail, sm-mta, sm-msp-queue; sendmail also retitles itself (sm-acceptingconnections).
        if program == "sendmail" || program.starts_with("sm-") {
            return Some((Mta::Sendmail, program));
        }
        // Tags are short: plain byte loops beat memchr's setup here.
        let b = program.as_bytes();
        let slash = b.iter().position(|&c| c == b'/')?;
        let name = &program[..slash];
        let ours = name.starts_with("postfix-") || self.opts.syslog_names.iter().any(|n| n == name);
        if !ours {
            return None;
        }
        // postfix/submission/smtpd → smtpd
        let last = b.iter().rposition(|&c| c == b'/').unwrap_or(slash);
        Some((Mta::Postfix, &program[last + 1..]))
    }

    fn time_of(&mut self, s: &header::Stamp) -> Option<OffsetDateTime> {
        let year = match s.year {
            Some(y) => y,
            None => self.infer_year(s.month, s.day),
        };
        self.last = Some((year, s.month));
        let skey = (year, s.month, s.day, s.hour, s.minute, s.second, s.offset);
        if let Some((k, t)) = self.second_cache
            && k == skey
        {
            return t.replace_microsecond(s.micro).ok();
        }
        let key = (year, s.month, s.day);
        let date = match self.date_cache {
            Some((k, d)) if k == key => d,
            _ => {
                let d =
                    Date::from_calendar_date(year, Month::try_from(s.month).ok()?, s.day).ok()?;
                self.date_cache = Some((key, d));
                d
            }
        };
        // A leap second (:60) is folded onto :59.
        let t = Time::from_hms_micro(s.hour, s.minute, s.second.min(59), s.micro).ok()?;
        let offset = match s.offset {
            Some(secs) => UtcOffset::from_whole_seconds(secs).ok()?,
            None => self.opts.default_offset,
        };
        let t = PrimitiveDateTime::new(date, t).assume_offset(offset);
        self.second_cache = Some((skey, t));
        Some(t)
    }

    fn infer_year(&self, month: u8, day: u8) -> i32 {
        match self.last {
            // Dec → Jan in one file: a new year began. A jump back (Jan → Dec) is the
            // reverse, e.g. an out-of-order line; anything smaller is ordinary disorder.
            Some((y, m)) if m >= month + 6 => y + 1,
            Some((y, m)) if month >= m + 6 => y - 1,
            Some((y, _)) => y,
            None => {
                // A line dated more than a day after `now` is from last year (a December
                // line read in January); a day of slack absorbs clock and zone skew.
                let now = self.opts.now.to_offset(self.opts.default_offset);
                let (nm, nd) = (u8::from(now.month()), now.day());
                let ahead = month > nm || (month == nm && day > nd.saturating_add(1));
                if ahead { now.year() - 1 } else { now.year() }
            }
        }
    }
}

#[cfg(test)]
mod tests;
