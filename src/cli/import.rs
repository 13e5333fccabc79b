//! `mailtrail import FILE...`: backfills the store from old MTA logs, and `mailtrail classify`.

use super::CliError;
use crate::{
    bounce::Classifier,
    config::Config,
    follower,
    maillog::open_import,
    store::Store,
    tracking::{IngestStats, Tracker},
};
use indicatif::{ProgressBar, ProgressStyle};
use std::{
    io::{BufRead, Write},
    path::PathBuf,
    time::Instant,
};
use time::OffsetDateTime;

/// Bytes of lines stored per transaction: big batches mean fewer commits and more messages
/// whose whole life is in one batch (written once, see `Tracker`); 16 MB of lines hold about
/// 100,000 of them, well within the import's memory budget.
const IMPORT_BATCH_BYTES: usize = 16 << 20;

/// Imports `files` in order; returns the totals (also printed as a summary).
pub fn import(
    config: &Config,
    files: &[PathBuf],
    show_unknown: bool,
    local_offset: time::UtcOffset,
    out: &mut impl Write,
) -> Result<IngestStats, CliError> {
    let mut store = Store::open(&config.store.path)?;
    store.tune_for_import()?;
    let classifier = follower::classifier(config).map_err(|e| CliError::NotFound(e.to_string()))?;
    let mut tracker = Tracker::new(follower::parser(config, local_offset), classifier);
    let raw_since = (OffsetDateTime::now_utc() - config.maillog.raw_retention).unix_timestamp();
    let started = Instant::now();
    let mut total = IngestStats::default();
    let mut unknown = Vec::new();

    for path in files {
        let io_err = |source| CliError::Io {
            path: path.clone(),
            source,
        };
        let size = std::fs::metadata(path).map_err(io_err)?.len();
        let mut reader = open_import(path).map_err(|e| CliError::NotFound(e.to_string()))?;
        // Hidden unless standard error is a terminal.
        let progress = ProgressBar::new(size).with_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {percent}% {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        progress.set_message(path.display().to_string());
        let compressed = path.extension().is_some_and(|e| e == "gz");
        let mut chunk = Vec::with_capacity(IMPORT_BATCH_BYTES + 4096);
        loop {
            chunk.clear();
            while chunk.len() < IMPORT_BATCH_BYTES {
                if reader.read_until(b'\n', &mut chunk).map_err(io_err)? == 0 {
                    break;
                }
            }
            if chunk.is_empty() {
                break;
            }
            // Mail logs are not always UTF-8; invalid bytes become U+FFFD, the line is kept.
            let text = String::from_utf8_lossy(&chunk);
            let stats =
                tracker.apply(&mut store, config, text.lines(), None, raw_since, |line| {
                    if show_unknown {
                        unknown.push(line.to_owned());
                    }
                })?;
            total.add(&stats);
            if !compressed {
                progress.inc(chunk.len() as u64);
            }
        }
        progress.finish_and_clear();
    }

    // The statistics include what was imported (dirty days only, unless this is the first).
    let refresh_started = Instant::now();
    let refresh = store.refresh_stats(local_offset, OffsetDateTime::now_utc())?;
    let refresh_secs = refresh_started.elapsed().as_secs_f64();
    store.checkpoint()?;
    let elapsed = started.elapsed().as_secs_f64();
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
    writeln!(
        out,
        "statistics refreshed in {refresh_secs:.2} s: {} days recomputed{}",
        refresh.days,
        if refresh.full { " (full rebuild)" } else { "" }
    )?;
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
