//! `mailtrail import FILE...`: backfills the store from old MTA logs, and `mailtrail classify`.

use super::CliError;
use crate::{
    bounce::{Category, Classifier},
    config::Config,
    follower,
    maillog::{ParseOutcome, Parser, open_import},
    store::{BackgroundCheckpoint, Store},
    tracking::{FailureClassifier, IngestStats, Tracker},
};
use indicatif::{ProgressBar, ProgressStyle};
use std::{
    io::{self, BufRead, Write},
    ops::Range,
    path::PathBuf,
    sync::mpsc::{Receiver, SyncSender, channel, sync_channel},
    time::Instant,
};
use time::OffsetDateTime;

/// Bytes of lines stored per transaction: big batches mean fewer commits and more messages
/// whose whole life is in one batch (written once, see `Tracker`); 16 MB of lines hold about
/// 100,000 of them, well within the import's memory budget.
const IMPORT_BATCH_BYTES: usize = 16 << 20;
/// Bytes of log text a parsing thread hands to the writer at a time: small, so that both
/// threads are busy from the start and little text waits between them.
const PARSE_CHUNK_BYTES: usize = 1 << 20;
/// How often the import's write-ahead log is checkpointed, from a second connection.
const IMPORT_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// Parsed chunks waiting for the writer, at most.
const PARSED_CHUNKS_QUEUED: usize = 4;

/// Lines parsed on the reading thread.
struct ParsedChunk {
    text: String,
    /// Each line's bytes in `text`, what the line says, and the category of a failure it
    /// reports.
    lines: Vec<(Range<usize>, ParseOutcome, Option<Category>)>,
}

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
    // The checkpoints' own connection, opened before the indexes are deferred.
    let checkpointer = Store::open(&config.store.path)?;
    let classifier = follower::classifier(config).map_err(|e| CliError::NotFound(e.to_string()))?;
    // Lines are parsed on a second thread with `parser`; the tracker's own parser stays idle.
    let mut parser = follower::parser(config, local_offset);
    let mut tracker = Tracker::new(follower::parser(config, local_offset), classifier);
    let mut failures = tracker.failure_classifier();
    let import_lock = store.defer_indexes_for_import()?;
    if import_lock.is_some() {
        tracker.sole_writer();
    }
    // The write-ahead log is copied into the database on the other core while the import goes
    // on (its end would otherwise wait for 100 MB of pages per million lines).
    let checkpoints =
        BackgroundCheckpoint::start(checkpointer, IMPORT_CHECKPOINT_EVERY).map_err(|source| {
            CliError::Io {
                path: config.store.path.clone(),
                source,
            }
        })?;
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
        let parser = &mut parser;
        let failures = &mut failures;
        let read = std::thread::scope(|scope| -> Result<io::Result<()>, CliError> {
            let (sender, parsed) = sync_channel(PARSED_CHUNKS_QUEUED);
            let (give_back, spent) = channel();
            let reading =
                scope.spawn(move || read_and_parse(&mut reader, parser, failures, &sender, &spent));
            let mut batch = tracker.begin(&mut store)?;
            let mut batch_bytes = 0;
            for mut chunk in parsed {
                let text = &chunk.text;
                for (range, outcome, category) in chunk.lines.drain(..) {
                    let line = &text[range];
                    batch.apply_parsed(config, line, outcome, category, raw_since, |line| {
                        if show_unknown {
                            unknown.push(line.to_owned());
                        }
                    })?;
                }
                batch_bytes += text.len();
                if !compressed {
                    progress.inc(text.len() as u64);
                }
                if batch_bytes >= IMPORT_BATCH_BYTES {
                    total.add(&batch.commit(None)?);
                    batch = tracker.begin(&mut store)?;
                    batch_bytes = 0;
                }
                // Its buffers serve again; the reader may have ended already.
                let _ = give_back.send(chunk);
            }
            total.add(&batch.commit(None)?);
            // The channel ended: the reading thread is done (or failed).
            Ok(reading
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("log parsing thread panicked"))))
        })?;
        read.map_err(io_err)?;
        progress.finish_and_clear();
    }

    // The messages still in the queue at the end of the last file.
    total.add(&tracker.begin(&mut store)?.commit_all(None)?);
    if import_lock.is_some() {
        store.build_deferred_indexes()?;
    }
    drop(import_lock);
    checkpoints.stop();
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
    // The rollups follow like those of live mail: the daemon's next refresh, or `mailtrail
    // stats` (which sees rows newer than its rollups), adds what was imported.
    writeln!(
        out,
        "statistics: added by the daemon's next refresh (every [web] stats_refresh) or by `mailtrail stats`"
    )?;
    if total.unknown > 0 && !show_unknown {
        writeln!(out, "(--show-unknown lists the unknown lines)")?;
    }
    Ok(total)
}

/// Reads `reader` to its end in chunks of whole lines, parses them and sends them to `parsed`;
/// stops early when the receiver is gone (the writer failed). Chunks come back through `spent`
/// once stored: reusing their buffers spares the kernel zeroing fresh pages for each chunk.
fn read_and_parse(
    reader: &mut dyn BufRead,
    parser: &mut Parser,
    failures: &mut FailureClassifier,
    parsed: &SyncSender<ParsedChunk>,
    spent: &Receiver<ParsedChunk>,
) -> io::Result<()> {
    let mut carry = Vec::new();
    loop {
        let (mut bytes, mut lines) = match spent.try_recv() {
            Ok(chunk) => (chunk.text.into_bytes(), chunk.lines),
            Err(_) => (
                Vec::with_capacity(PARSE_CHUNK_BYTES + (64 << 10)),
                Vec::new(),
            ),
        };
        bytes.clear();
        lines.clear();
        bytes.extend_from_slice(&carry);
        carry.clear();
        let mut eof = false;
        // At least a chunk's bytes, ending at a line's end (or at the end of the input).
        let mut last_newline = None;
        while !eof && (bytes.len() < PARSE_CHUNK_BYTES || last_newline.is_none()) {
            let data = reader.fill_buf()?;
            if data.is_empty() {
                eof = true;
                break;
            }
            let n = data.len();
            if let Some(i) = memchr::memrchr(b'\n', data) {
                last_newline = Some(bytes.len() + i);
            }
            bytes.extend_from_slice(data);
            reader.consume(n);
        }
        if !eof && let Some(i) = last_newline {
            carry.extend_from_slice(&bytes[i + 1..]);
            bytes.truncate(i + 1);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        // Mail logs are not always UTF-8; invalid bytes become U+FFFD, the line is kept.
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let base = text.as_ptr() as usize;
        lines.extend(text.lines().map(|line| {
            let start = line.as_ptr() as usize - base;
            let outcome = parser.parse(line);
            let category = match &outcome {
                ParseOutcome::Event(_, event) => failures.category_of(event),
                _ => None,
            };
            (start..start + line.len(), outcome, category)
        }));
        if parsed.send(ParsedChunk { text, lines }).is_err() {
            return Ok(());
        }
        if eof {
            return Ok(());
        }
    }
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

    /// Every line arrives once, whole and in order, across chunk boundaries, with CRLF ends,
    /// invalid UTF-8 and no newline at the end.
    #[test]
    fn parsing_thread_hands_over_every_line_whole() {
        let mut input = Vec::new();
        let mut n = 0;
        while input.len() < 2 * PARSE_CHUNK_BYTES + 12_345 {
            let pad = "x".repeat(n % 300);
            input.extend_from_slice(
                format!("May 20 00:11:22 mail postfix/qmgr[1]: B50A1214B93: removed {n} {pad}")
                    .as_bytes(),
            );
            match n % 50 {
                7 => input.extend_from_slice(b" \xff\xfe\r\n"),
                _ => input.push(b'\n'),
            }
            n += 1;
        }
        input.extend_from_slice(b"May 20 00:11:23 mail postfix/qmgr[1]: last");
        let expected: Vec<String> = String::from_utf8_lossy(&input)
            .lines()
            .map(str::to_owned)
            .collect();

        let config = Config::defaults();
        let mut parser = follower::parser(&config, UtcOffset::UTC);
        let mut failures = FailureClassifier::new(Classifier::builtin());
        let (sender, parsed) = sync_channel(PARSED_CHUNKS_QUEUED);
        let (give_back, spent) = channel();
        let reading = std::thread::spawn(move || {
            let mut reader = io::BufReader::new(io::Cursor::new(input));
            read_and_parse(&mut reader, &mut parser, &mut failures, &sender, &spent)
        });
        let mut got = Vec::new();
        let mut chunks = 0;
        for mut chunk in parsed {
            chunks += 1;
            for (range, outcome, _) in chunk.lines.drain(..) {
                let line = &chunk.text[range];
                assert!(!line.ends_with(['\r', '\n']), "{line:?}");
                assert!(!matches!(outcome, ParseOutcome::Ignored(_)), "{line}");
                got.push(line.to_owned());
            }
            // Reused buffers must not carry old lines into new chunks.
            let _ = give_back.send(chunk);
        }
        reading.join().expect("thread").expect("read");
        assert!(chunks >= 3, "{chunks} chunks");
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "lines differ");
    }
}
