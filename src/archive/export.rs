//! Exporting archived copies as `.eml` files or one mbox file.

use std::{
    io::{self, Write},
    path::Path,
};
use time::{OffsetDateTime, format_description::well_known::Rfc2822};

/// Writes `bytes` to `DIR/NAME.eml`, unchanged.
pub fn export_eml(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    // The name comes from our own Maildir, but a file name must never climb out of `dir`.
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_,=".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{safe}.eml"));
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// Appends one message to an mbox (mboxrd: `From ` lines quoted with `>`, LF line ends).
pub fn export_mbox(
    out: &mut impl Write,
    sender: &str,
    arrived: OffsetDateTime,
    bytes: &[u8],
) -> io::Result<()> {
    let sender = if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    };
    // mbox separators use asctime form; RFC 2822 is what readers accept too, but keep asctime.
    let date = arrived
        .format(&time::macros::format_description!(
            "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
        ))
        .or_else(|_| arrived.format(&Rfc2822))
        .unwrap_or_default();
    writeln!(
        out,
        "From {} {date}",
        sender.replace(char::is_whitespace, "_")
    )?;
    let mut lines = bytes.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if lines.peek().is_none() && line.is_empty() {
            break; // the split after the final newline
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let unquoted = line.iter().position(|&b| b != b'>').map(|i| &line[i..]);
        if unquoted.is_some_and(|rest| rest.starts_with(b"From ")) {
            out.write_all(b">")?;
        }
        out.write_all(line)?;
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")
}
