//! Raw RFC 5322 message helpers: split into header fields and body, look up headers, and build
//! messages whose bytes the test controls.

/// A message split into its header fields (each raw, including folding and its line end) and
/// its body (everything after the empty line, byte for byte).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split<'a> {
    pub headers: Vec<&'a [u8]>,
    pub body: &'a [u8],
}

/// Splits `raw` into header fields and body. Accepts CRLF or LF line ends.
pub fn split(raw: &[u8]) -> Split<'_> {
    let mut headers: Vec<&[u8]> = Vec::new();
    let mut pos = 0;
    let mut field_start = 0;
    loop {
        if pos >= raw.len() {
            if field_start < pos {
                headers.push(&raw[field_start..pos]);
            }
            return Split {
                headers,
                body: &raw[raw.len()..],
            };
        }
        let end = raw[pos..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..end];
        let is_empty = line == b"\r\n" || line == b"\n";
        let is_continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !is_continuation && field_start < pos {
            headers.push(&raw[field_start..pos]);
            field_start = pos;
        }
        if is_empty {
            return Split {
                headers,
                body: &raw[end..],
            };
        }
        if !is_continuation {
            field_start = pos;
        }
        pos = end;
    }
}

/// The name of a raw header field (before the colon).
pub fn field_name(field: &[u8]) -> String {
    let name = field.split(|b| *b == b':').next().unwrap_or(field);
    String::from_utf8_lossy(name).trim().to_string()
}

/// The value of the first header field `name` (case-insensitive), unfolded and trimmed.
pub fn header_value(raw: &[u8], name: &str) -> Option<String> {
    split(raw)
        .headers
        .into_iter()
        .find(|f| field_name(f).eq_ignore_ascii_case(name))
        .map(|f| {
            let v = &f[f.iter().position(|b| *b == b':').map_or(f.len(), |i| i + 1)..];
            String::from_utf8_lossy(v)
                .replace("\r\n", "")
                .replace('\n', "")
                .trim()
                .to_string()
        })
}

/// `bytes` shown with line ends visible, for assertion messages.
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace('\r', "\\r")
        .replace('\n', "\\n\n")
}

/// A unique Message-ID (without brackets) for test message `tag`.
pub fn message_id(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{tag}.{}.{}.{nanos}@client.test.example",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// How a relayed copy differs from an archived copy of the same message.
#[derive(Debug, PartialEq, Eq)]
pub struct Diff {
    /// Header fields the relayed copy has before the first archived field (raw).
    pub prepended: Vec<String>,
    /// Whether every archived header field follows, in order and byte for byte.
    pub headers_equal: bool,
    /// Whether the bodies are equal byte for byte.
    pub body_equal: bool,
}

/// Compares `relayed` (what the remote server got) with `archived`: the relayed copy may have
/// extra fields in front; everything else is compared byte for byte. Returns the difference and
/// a printable report.
pub fn diff(archived: &[u8], relayed: &[u8]) -> (Diff, String) {
    let a = split(archived);
    let r = split(relayed);
    let extra = r.headers.len().saturating_sub(a.headers.len());
    let prepended: Vec<String> = r.headers[..extra]
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let headers_equal = r.headers[extra..] == a.headers[..];
    let body_equal = a.body == r.body;
    let mut report = format!(
        "relayed has {} header field(s), archived {}; prepended: {prepended:#?}\n",
        r.headers.len(),
        a.headers.len()
    );
    if !headers_equal {
        for (i, (x, y)) in a.headers.iter().zip(&r.headers[extra..]).enumerate() {
            if x != y {
                report.push_str(&format!(
                    "header {i} differs:\n  archived: {}\n  relayed:  {}\n",
                    show(x),
                    show(y)
                ));
            }
        }
    }
    if !body_equal {
        report.push_str(&format!(
            "bodies differ ({} vs {} bytes):\n--- archived\n{}\n--- relayed\n{}\n",
            a.body.len(),
            r.body.len(),
            show(a.body),
            show(r.body)
        ));
    }
    (
        Diff {
            prepended,
            headers_equal,
            body_equal,
        },
        report,
    )
}
