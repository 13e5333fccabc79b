//! Small string helpers shared by the grammars. Everything returns `Option` on odd input:
//! log text comes from strangers.

use super::event::SmtpStage;

/// Index of the two-byte sequence `a b` (e.g. `": "`), by memchr on the first byte.
#[inline]
pub(crate) fn find_pair(s: &str, a: u8, b: u8) -> Option<usize> {
    let h = s.as_bytes();
    memchr::memchr_iter(a, h).find(|&i| h.get(i + 1) == Some(&b))
}

#[inline]
pub(crate) fn find_byte(s: &str, a: u8) -> Option<usize> {
    memchr::memchr(a, s.as_bytes())
}

#[inline]
pub(crate) fn find_any2(s: &str, a: u8, b: u8) -> Option<usize> {
    memchr::memchr2(a, b, s.as_bytes())
}

#[inline]
pub(crate) fn find_any3(s: &str, a: u8, b: u8, c: u8) -> Option<usize> {
    memchr::memchr3(a, b, c, s.as_bytes())
}

/// The end (one past the `>`) of an address value that starts with `<`: the first `>` outside a
/// quoted local part (`<"a>b, status=sent"@x>` is one address, as a client may send it). A
/// quote never closed falls back to the first `>`; no `>` at all, the whole value.
pub(crate) fn address_end(v: &str) -> usize {
    let b = v.as_bytes();
    let (mut quoted, mut escaped) = (false, false);
    for (i, &c) in b.iter().enumerate().skip(1) {
        match c {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return i + 1,
            _ => {}
        }
    }
    find_byte(v, b'>').map_or(v.len(), |i| i + 1)
}

/// Where `needle` first occurs in `v` outside `<..>` and quoted strings: the end of one value
/// in a list of values that hold the separator themselves (`to=<a, b>,<c>, delay=...`).
pub(crate) fn find_top_level(v: &str, needle: &str) -> Option<usize> {
    let b = v.as_bytes();
    let (mut depth, mut quoted, mut escaped) = (0i32, false, false);
    for (i, &c) in b.iter().enumerate() {
        match c {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => depth += 1,
            b'>' if !quoted => depth -= 1,
            _ if !quoted && depth <= 0 && b[i..].starts_with(needle.as_bytes()) => return Some(i),
            _ => {}
        }
    }
    // An unbalanced quote or bracket (a stranger's address): the plain search.
    if quoted || depth > 0 {
        return v.find(needle);
    }
    None
}

/// Strips one pair of angle brackets: `<a@b>` → `a@b`, `<>` → ``.
#[inline]
pub(crate) fn unbracket(v: &str) -> &str {
    v.strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(v)
}

/// Splits `host[ip]`, `host[ip]:port`, `[ip]:port`, `host[private/socket]`.
/// Returns (host, bracket content, port); host is empty for `[ip]`.
pub(crate) fn host_ip_port(v: &str) -> (&str, Option<&str>, Option<u16>) {
    let Some(open) = v.find('[') else {
        return (v, None, None);
    };
    let after = &v[open + 1..];
    let Some(close) = after.find(']') else {
        return (v, None, None);
    };
    let port = after[close + 1..]
        .strip_prefix(':')
        .and_then(|p| p.parse().ok());
    (&v[..open], Some(&after[..close]), port)
}

/// `550 5.1.1 text` → (Some(550), Some("5.1.1"), "text"). Accepts `421-4.7.0` continuations
/// and a missing code or DSN.
pub(crate) fn code_dsn_text(s: &str) -> (Option<u16>, Option<&str>, &str) {
    let b = s.as_bytes();
    let mut rest = s;
    let mut code = None;
    if b.len() >= 3
        && b[..3].iter().all(u8::is_ascii_digit)
        && matches!(b.get(3), None | Some(b' ' | b'-'))
    {
        code = s[..3].parse().ok();
        rest = s.get(4..).unwrap_or("");
    }
    let dsn_len = dsn_prefix_len(rest);
    if dsn_len > 0 {
        let dsn = &rest[..dsn_len];
        let text = rest[dsn_len..]
            .strip_prefix(' ')
            .unwrap_or(&rest[dsn_len..]);
        return (code, Some(dsn), text);
    }
    (code, None, rest)
}

/// Length of an enhanced status code `x.y.z` at the start of `s`, or 0.
pub(crate) fn dsn_prefix_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.len() < 5 || !matches!(b[0], b'2' | b'4' | b'5') || b[1] != b'.' {
        return 0;
    }
    let mut i = 2;
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == start || i - start > 3 || b.get(i) != Some(&b'.') {
        return 0;
    }
    i += 1;
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == start || i - start > 3 || !matches!(b.get(i), None | Some(b' ' | b',' | b';' | b')')) {
        return 0;
    }
    i
}

/// The SMTP command named in `in reply to X command` or `while sending X`.
pub(crate) fn stage_of_command(c: &str) -> SmtpStage {
    let c = c.trim();
    if c.starts_with("RCPT") {
        SmtpStage::RcptTo
    } else if c.starts_with("MAIL") {
        SmtpStage::MailFrom
    } else if c.starts_with("end of DATA")
        || c.starts_with("end of data")
        || c.starts_with("message body")
    {
        SmtpStage::EndOfData
    } else if c.starts_with("DATA") || c.starts_with("BDAT") {
        SmtpStage::Data
    } else if c.starts_with("HELO")
        || c.starts_with("EHLO")
        || c.starts_with("LHLO")
        || c.starts_with("the EHLO")
    {
        SmtpStage::Helo
    } else if c.starts_with("the initial server greeting") || c.starts_with("CONNECT") {
        SmtpStage::Connect
    } else if c.starts_with("END-OF-MESSAGE") {
        SmtpStage::EndOfData
    } else {
        SmtpStage::Unknown
    }
}

/// Seconds in sendmail's `[D+]HH:MM:SS`.
pub(crate) fn sendmail_delay(v: &str) -> Option<f64> {
    let (days, hms) = match v.split_once('+') {
        Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
        None => (0, v),
    };
    let mut it = hms.split(':');
    let h: u64 = it.next()?.parse().ok()?;
    let m: u64 = it.next()?.parse().ok()?;
    let s: u64 = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some((days * 86400 + h * 3600 + m * 60 + s) as f64)
}

#[cfg(test)]
mod tests;
