//! `mailtrail import FILE...` (the pipeline is `tracking::import`; this prints its summary) and
//! `mailtrail classify`.

use super::CliError;
use crate::{
    bounce::Classifier,
    config::Config,
    tracking::{IngestStats, follower, import::ImportReport},
};
use std::{
    io::{BufRead, Write},
    path::PathBuf,
};

/// Imports `files` in order; returns the totals (also printed as a summary).
pub fn import(
    config: &Config,
    files: &[PathBuf],
    show_unknown: bool,
    local_offset: time::UtcOffset,
    out: &mut impl Write,
) -> Result<IngestStats, CliError> {
    let ImportReport {
        total,
        unknown,
        handed_over,
        elapsed,
    } = crate::tracking::import::import(config, files, show_unknown, local_offset)?;
    let elapsed = elapsed.as_secs_f64();
    for line in &unknown {
        writeln!(out, "unknown: {line}")?;
    }
    writeln!(
        out,
        "{} lines in {elapsed:.2} s ({:.0} lines/s): {} events, {} unknown, {} other programs",
        total.lines,
        total.lines as f64 / elapsed.max(1e-9),
        total.events,
        total.unknown,
        total.ignored
    )?;
    writeln!(
        out,
        "deliveries: sent {}, deferred {}, bounced {}, expired {}; rejected SMTP commands {}; raw lines kept {}",
        total.sent,
        total.deferred,
        total.bounced,
        total.expired,
        total.rejects,
        total.raw_lines_kept
    )?;
    // The rollups follow like those of live mail: the daemon's next refresh, or `mailtrail
    // stats` (which sees rows newer than its rollups), adds what was imported.
    writeln!(
        out,
        "statistics: added by the daemon's next refresh (every [web] stats_refresh) or by `mailtrail stats`"
    )?;
    if handed_over {
        writeln!(
            out,
            "(more messages were queued at once than the import holds in memory: the rest was tracked through the store, more slowly)"
        )?;
    }
    if total.unknown > 0 && !show_unknown {
        writeln!(out, "(--show-unknown lists the unknown lines)")?;
    }
    Ok(total)
}

/// One category per input line `DSN<TAB>REPLY TEXT`, from `lines` or else standard input.
pub fn classify(config: &Config, lines: &[String], out: &mut impl Write) -> Result<(), CliError> {
    let classifier: Classifier =
        follower::classifier(config).map_err(|e| CliError::NotFound(e.to_string()))?;
    if !lines.is_empty() {
        for line in lines {
            writeln!(out, "{}", classifier.classify_line(line))?;
        }
        return Ok(());
    }
    for line in std::io::stdin().lock().lines() {
        writeln!(out, "{}", classifier.classify_line(&line?))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::UtcOffset;

    /// `--show-unknown` lists the unknown lines of plain and gzip files in order, whichever
    /// thread tracked them: the parsing thread into an empty store, the writer into one that
    /// holds messages. Without it they are counted, with a hint.
    #[test]
    fn unknown_lines_are_counted_and_listed_in_order() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::defaults();
        config.store.path = dir.path().join("store.db");
        let plain = dir.path().join("mail.log.1");
        std::fs::write(
            &plain,
            "May 20 00:11:22 mail postfix/qmgr[1006]: B50A1214B93: from=<lip@example.net>, size=81759, nrcpt=2 (queue active)\n\
             garbage one\n\
             May 20 00:18:15 mail postfix/qmgr[1006]: B50A1214B93: removed\n\
             garbage two\n",
        )
        .expect("write");
        let gz = dir.path().join("mail.log.2.gz");
        let mut encoder = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).expect("create"),
            flate2::Compression::fast(),
        );
        encoder
            .write_all(
                b"garbage three\nMay 21 00:00:00 mail postfix/qmgr[1006]: C60B1214B94: removed",
            )
            .expect("gz write");
        encoder.finish().expect("gz finish");
        let files = [plain, gz];
        for store in ["empty", "holding messages"] {
            let mut out = Vec::new();
            let stats = import(&config, &files, true, UtcOffset::UTC, &mut out).expect("import");
            let out = String::from_utf8(out).expect("utf-8");
            assert_eq!((stats.lines, stats.unknown), (6, 3), "{store}: {out}");
            let listed: Vec<&str> = out
                .lines()
                .filter_map(|l| l.strip_prefix("unknown: "))
                .collect();
            assert_eq!(
                listed,
                ["garbage one", "garbage two", "garbage three"],
                "{store}"
            );
            assert!(!out.contains("--show-unknown"), "{out}");
        }
        let mut out = Vec::new();
        let stats = import(&config, &files, false, UtcOffset::UTC, &mut out).expect("import");
        let out = String::from_utf8(out).expect("utf-8");
        assert_eq!(stats.unknown, 3);
        assert!(!out.contains("unknown: "), "{out}");
        assert!(
            out.contains("--show-unknown lists the unknown lines"),
            "{out}"
        );
    }
}
