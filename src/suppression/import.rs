//! A CSV file of entries to add (`mailtrail suppress import`), checked whole before anything is
//! written: each bad line is reported with its number.
//!
//! The first line names the columns: `sender_domain` and `address` (the export's), optionally
//! `reason`; other columns (the rest of an export) are ignored. `sender_domain` is a domain or
//! `*` for every sender.

use super::NewSuppression;

/// A line that could not be read, with its 1-based number in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The entries of a CSV file and its bad lines; `Err` when the file cannot be read as CSV at
/// all (no header naming the columns).
pub fn read_csv(
    reader: impl std::io::Read,
) -> Result<(Vec<NewSuppression>, Vec<BadLine>), BadLine> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let header = csv.headers().map_err(|e| BadLine {
        line: 1,
        message: e.to_string(),
    })?;
    let column = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(domain), Some(address)) = (column("sender_domain"), column("address")) else {
        return Err(BadLine {
            line: 1,
            message: "the first line must name the columns: sender_domain,address[,reason]".into(),
        });
    };
    let reason = column("reason");
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    for record in csv.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                bad.push(BadLine {
                    line,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or("");
        if record.iter().all(str::is_empty) {
            continue;
        }
        match NewSuppression::parse(
            field(address),
            field(domain),
            reason.map(field).filter(|r| !r.is_empty()),
        ) {
            Ok(entry) => entries.push(entry),
            Err(e) => bad.push(BadLine {
                line,
                message: e.to_string(),
            }),
        }
    }
    Ok((entries, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = "sender_domain,address,reason\n\
                    shop.example,Gone@X.example,asked\n\
                    shop.example,not an address,\n\
                    \n\
                    *,*@dead.example,\n\
                    shop.example,*@*,\n\
                    bad domain!,a@b.example,\n";
        let (entries, bad) = read_csv(text.as_bytes()).unwrap();
        assert_eq!(
            entries,
            [
                NewSuppression {
                    sender_domain: "shop.example".into(),
                    target: "gone@x.example".into(),
                    reason: Some("asked".into())
                },
                NewSuppression {
                    sender_domain: "*".into(),
                    target: "*@dead.example".into(),
                    reason: None
                },
            ]
        );
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 6, 7], "{bad:?}");
        assert!(
            bad[1].to_string().contains("would match every address"),
            "{}",
            bad[1]
        );
    }

    #[test]
    fn a_file_without_its_header_is_refused() {
        let err = read_csv("gone@x.example,shop.example\n".as_bytes()).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("sender_domain,address"));
    }
}
