//! The syslog envelope: optional `<PRI>`, timestamp (classic, RFC 3339, short-iso),
//! host, `prog[pid]:`, and rsyslog's `message repeated N times: [ .. ]`.

use super::text::{find_any3, find_byte};

/// A timestamp as written: the year is absent in classic syslog stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub year: Option<i32>,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micro: u32,
    /// Offset in seconds east of UTC, when the stamp carries one.
    pub offset: Option<i32>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RawHeader<'a> {
    pub stamp: Stamp,
    pub host: &'a str,
    pub program: &'a str,
    pub pid: Option<u32>,
    pub message: &'a str,
    pub repeat: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderError {
    Blank,
    Malformed,
    /// A syslog line without a `prog:` tag (e.g. `last message repeated 3 times`).
    NoTag,
}

#[inline]
fn month(m: &[u8]) -> Option<u8> {
    Some(match m {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

#[inline]
fn digit(b: u8) -> Option<u32> {
    if b.is_ascii_digit() {
        Some(u32::from(b - b'0'))
    } else {
        None
    }
}

#[inline]
fn two(b: &[u8], i: usize) -> Option<u8> {
    let hi = digit(*b.get(i)?)?;
    let lo = digit(*b.get(i + 1)?)?;
    Some((hi * 10 + lo) as u8)
}

/// `HH:MM:SS` at `i`.
fn hms(b: &[u8], i: usize) -> Option<(u8, u8, u8)> {
    if b.get(i + 2) != Some(&b':') || b.get(i + 5) != Some(&b':') {
        return None;
    }
    let (h, m, s) = (two(b, i)?, two(b, i + 3)?, two(b, i + 6)?);
    // 60 is a leap second; time rejects it, so it is clamped later.
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some((h, m, s))
}

/// Optional `.ffffff` at `i`: returns microseconds and the index after it.
fn fraction(b: &[u8], mut i: usize) -> (u32, usize) {
    if b.get(i) != Some(&b'.') {
        return (0, i);
    }
    i += 1;
    let mut micro = 0u32;
    let mut n = 0;
    while let Some(d) = b.get(i).and_then(|&c| digit(c)) {
        if n < 6 {
            micro = micro * 10 + d;
            n += 1;
        }
        i += 1;
    }
    while n < 6 {
        micro *= 10;
        n += 1;
    }
    (micro, i)
}

/// `Mmm dd HH:MM:SS` (day space- or zero-padded; postlog writes `May 01`).
fn classic(b: &[u8]) -> Option<(Stamp, usize)> {
    let m = month(b.get(..3)?)?;
    if b.get(3) != Some(&b' ') {
        return None;
    }
    // `May  1`, `May 01`, and (some relays) `May 1`.
    let (day, t) = match (b.get(4)?, b.get(5)?) {
        (b' ', &d) => (digit(d)? as u8, 7),
        (&a, b' ') => (digit(a)? as u8, 6),
        (&a, &d) => ((digit(a)? * 10 + digit(d)?) as u8, 7),
    };
    if b.get(t - 1) != Some(&b' ') || day == 0 || day > 31 {
        return None;
    }
    let (hour, minute, second) = hms(b, t)?;
    let (micro, end) = fraction(b, t + 8);
    Some((
        Stamp {
            year: None,
            month: m,
            day,
            hour,
            minute,
            second,
            micro,
            offset: None,
        },
        end,
    ))
}

/// `YYYY-MM-DDTHH:MM:SS[.f](Z|+HH:MM|+HHMM)`.
fn iso(b: &[u8]) -> Option<(Stamp, usize)> {
    let year =
        (digit(*b.first()?)? * 1000 + u32::from(two(b, 1)?) * 10 + digit(*b.get(3)?)?) as i32;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b' '))
    {
        return None;
    }
    let month = two(b, 5)?;
    let day = two(b, 8)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (hour, minute, second) = hms(b, 11)?;
    let (micro, mut i) = fraction(b, 19);
    let offset = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            Some(0)
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = i32::from(two(b, i + 1)?);
            let (om, len) = if b.get(i + 3) == Some(&b':') {
                (i32::from(two(b, i + 4)?), 6)
            } else {
                (i32::from(two(b, i + 3)?), 5)
            };
            i += len;
            let secs = oh * 3600 + om * 60;
            Some(if sign == b'-' { -secs } else { secs })
        }
        _ => None,
    };
    Some((
        Stamp {
            year: Some(year),
            month,
            day,
            hour,
            minute,
            second,
            micro,
            offset,
        },
        i,
    ))
}

pub(crate) fn parse_stamp(b: &[u8]) -> Option<(Stamp, usize)> {
    match b.first()? {
        b'0'..=b'9' => iso(b),
        _ => classic(b),
    }
}

pub(crate) fn parse(line: &str) -> Result<RawHeader<'_>, HeaderError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let mut s = line.strip_suffix('\r').unwrap_or(line);
    if s.as_bytes().first().is_none_or(u8::is_ascii_whitespace) && s.trim().is_empty() {
        return Err(HeaderError::Blank);
    }
    // <PRI> as sent on the wire or written by some relays.
    if let Some(rest) = s.strip_prefix('<') {
        let close = rest.find('>').ok_or(HeaderError::Malformed)?;
        if close == 0 || close > 3 || !rest[..close].bytes().all(|c| c.is_ascii_digit()) {
            return Err(HeaderError::Malformed);
        }
        s = &rest[close + 1..];
        // RFC 5424 puts a version digit after PRI: `<22>1 2026-...`.
        if let Some(r) = s.strip_prefix("1 ") {
            s = r;
        }
    }
    let (stamp, end) = parse_stamp(s.as_bytes()).ok_or(HeaderError::Malformed)?;
    let s = s.get(end..).ok_or(HeaderError::Malformed)?;
    let mut s = s.strip_prefix(' ').ok_or(HeaderError::Malformed)?;
    // syslog-ng `<mail.notice>` (facility.priority) between stamp and host.
    if s.starts_with('<')
        && let Some(end) = s
            .find("> ")
            .filter(|&e| s[..e].contains('.') && !s[..e].contains(' '))
    {
        s = &s[end + 2..];
    }
    let sp = find_byte(s, b' ').ok_or(HeaderError::Malformed)?;
    let host = &s[..sp];
    let s = &s[sp + 1..];
    // The tag ends at `[` (pid follows) or `:`; a space first means there is no tag.
    let tag_end = find_any3(s, b'[', b':', b' ').ok_or(HeaderError::NoTag)?;
    let program = &s[..tag_end];
    let (pid, rest) = match s.as_bytes()[tag_end] {
        b'[' => {
            let after = &s[tag_end + 1..];
            let close = find_byte(after, b']').ok_or(HeaderError::Malformed)?;
            let pid = after[..close].parse::<u32>().ok();
            let rest = after[close + 1..]
                .strip_prefix(':')
                .ok_or(HeaderError::NoTag)?;
            (pid, rest)
        }
        b':' => (None, &s[tag_end + 1..]),
        _ => return Err(HeaderError::NoTag),
    };
    if program.is_empty() {
        return Err(HeaderError::NoTag);
    }
    let mut message = rest.strip_prefix(' ').unwrap_or(rest);
    let mut repeat = 1;
    // First-byte test first: this runs on every line and is almost never true.
    if let Some(r) = message
        .strip_prefix('m')
        .and_then(|m| m.strip_prefix("essage repeated "))
        && let Some(sp) = r.find(' ')
        && let (Ok(n), Some(inner)) = (r[..sp].parse::<u32>(), r[sp..].strip_prefix(" times: ["))
    {
        repeat = n;
        let inner = inner.strip_prefix(' ').unwrap_or(inner);
        message = inner.strip_suffix(']').unwrap_or(inner);
    }
    Ok(RawHeader {
        stamp,
        host,
        program,
        pid,
        message,
        repeat,
    })
}

#[cfg(test)]
mod tests;
