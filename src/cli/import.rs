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
mod tests;
