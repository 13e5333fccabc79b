//! The import of old MTA logs (`mailtrail import FILE...`): one thread reads and parses the
//! lines while another stores them; into an empty store, the tracker runs on the parsing thread
//! too and hands the writer whole transactions of rows.

use super::follower::{self, FollowerError};
use super::{FailureClassifier, IngestStats, ParsedLine, TrackedRows, Tracker};
use crate::{
    bounce::Category,
    config::Config,
    maillog::{self, ParseOutcome, Parser, open_import},
    store::{BackgroundCheckpoint, Store, StoreError},
};
use indicatif::{ProgressBar, ProgressStyle};
use std::{
    io::{self, BufRead},
    ops::Range,
    path::PathBuf,
    sync::mpsc::{Receiver, SyncSender, channel, sync_channel},
    time::Instant,
};
use time::OffsetDateTime;

/// Bytes of lines stored per transaction: big batches mean fewer commits (and, through the
/// store, more messages whose whole life is in one batch, written once: see `Tracker`). While
/// the writer stores one batch's rows the next is tracked, so 8 MB (about 50,000 lines) keeps
/// the two well within the import's memory budget.
const IMPORT_BATCH_BYTES: usize = 8 << 20;
/// Bytes of lines of an import's first transaction: the writer starts early, then each
/// transaction doubles up to [`IMPORT_BATCH_BYTES`].
const FIRST_BATCH_BYTES: usize = 1 << 20;
/// Bytes of log text parsed at a time: small, so that both threads are busy from the start and
/// little text waits between them.
const PARSE_CHUNK_BYTES: usize = 1 << 20;
/// How often the import's write-ahead log is checkpointed, from a second connection.
const IMPORT_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// Parsed chunks waiting for the writer, at most.
const PARSED_CHUNKS_QUEUED: usize = 4;

/// Lines parsed on the reading thread.
#[derive(Default)]
struct ParsedChunk {
    text: String,
    /// Each line's bytes in `text`, what the line says, and the category of a failure it
    /// reports.
    lines: Vec<(Range<usize>, ParseOutcome, Option<Category>)>,
}

/// What the parsing thread hands the writing one while it tracks the lines itself.
enum Tracked {
    /// One transaction's rows.
    Rows(TrackedRows),
    /// The tracker, which needs the store from here on (too much waits in memory): the rest of
    /// the lines come parsed only.
    HandOver(Box<Tracker>),
}

/// What an import did.
pub struct ImportReport {
    pub total: IngestStats,
    /// The unknown lines, in order, when asked for.
    pub unknown: Vec<String>,
    /// More messages were queued at once than the import holds in memory: the rest was
    /// tracked through the store, more slowly.
    pub handed_over: bool,
    pub elapsed: std::time::Duration,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Setup(#[from] FollowerError),
    #[error("{0}")]
    Open(String),
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Imports `files` in order, keeping the unknown lines when `show_unknown`.
pub fn import(
    config: &Config,
    files: &[PathBuf],
    show_unknown: bool,
    local_offset: time::UtcOffset,
) -> Result<ImportReport, ImportError> {
    let mut store = Store::open(&config.store.path)?;
    store.tune_for_import()?;
    // The checkpoints' own connection, opened before the indexes are deferred.
    let checkpointer = Store::open(&config.store.path)?;
    let classifier = follower::classifier(config)?;
    // Lines are parsed on the parsing thread with its own parser; the tracker's stays idle.
    let mut tracker = Tracker::new(follower::parser(config, local_offset), classifier);
    let import_lock = store.defer_indexes_for_import()?;
    if import_lock.is_some() {
        tracker.sole_writer();
    }
    let mut parsing = ParsingThread::new(config, follower::parser(config, local_offset), &tracker);
    parsing.show_unknown = show_unknown;
    // The write-ahead log is copied into the database on the other core while the import goes
    // on (its end would otherwise wait for 100 MB of pages per million lines).
    let checkpoints =
        BackgroundCheckpoint::start(checkpointer, IMPORT_CHECKPOINT_EVERY).map_err(|source| {
            ImportError::Io {
                path: config.store.path.clone(),
                source,
            }
        })?;
    let started = Instant::now();
    let Imported {
        total,
        unknown,
        handed_over,
    } = import_lines(&mut store, tracker, parsing, files)?;
    if import_lock.is_some() {
        store.build_deferred_indexes()?;
    }
    drop(import_lock);
    checkpoints.stop();
    store.checkpoint()?;
    Ok(ImportReport {
        total,
        unknown,
        handed_over,
        elapsed: started.elapsed(),
    })
}

/// The import's two threads over `files`: one reads and parses the lines, the other writes
/// the store. While `tracker` can work without the store (into an empty store), it runs on the
/// parsing thread too, and the two threads share the work about evenly.
fn import_lines(
    store: &mut Store,
    tracker: Tracker,
    mut parsing: ParsingThread,
    files: &[PathBuf],
) -> Result<Imported, ImportError> {
    let (config, raw_since, show_unknown) =
        (parsing.config, parsing.raw_since, parsing.show_unknown);
    let batch_limit = parsing.batch_limit;
    let mut writing = None;
    match tracker.tracks_without_store() {
        true => parsing.tracker = Some(Box::new(tracker)),
        false => writing = Some(tracker),
    }
    let mut handed_over = false;
    let mut total = IngestStats::default();
    let mut unknown = Vec::new();
    let read = std::thread::scope(|scope| -> Result<_, ImportError> {
        let (tracked_to_writer, tracked) = sync_channel(0);
        let (parsed_to_writer, parsed) = sync_channel(PARSED_CHUNKS_QUEUED);
        let (give_back, spent) = channel();
        let (rows_back, spent_rows) = channel();
        let reading = scope.spawn(move || {
            let channels = ToWriter {
                tracked: Some(tracked_to_writer),
                parsed: parsed_to_writer,
                spent,
                spent_rows,
            };
            parsing.run(files, channels).map(|()| parsing.unknown)
        });
        // Rows tracked on the parsing thread, until it ends or hands the tracker over.
        for message in tracked {
            match message {
                Tracked::Rows(mut rows) => {
                    total.add(&rows.commit(store)?);
                    // Freed and reused there; the reader may have ended already.
                    let _ = rows_back.send(rows);
                }
                Tracked::HandOver(tracker) => {
                    writing = Some(*tracker);
                    handed_over = true;
                }
            }
        }
        if let Some(tracker) = &mut writing {
            // It finds messages through the store from here on: the indexes an import into an
            // empty store left for its end are needed now.
            store.build_deferred_indexes()?;
            let mut batch = tracker.begin(store)?;
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
                if batch_bytes >= batch_limit {
                    total.add(&batch.commit(None)?);
                    batch = tracker.begin(store)?;
                    batch_bytes = 0;
                }
                // Its buffers serve again; the reader may have ended already.
                let _ = give_back.send(chunk);
            }
            // The messages still in the queue at the end of the last file.
            total.add(&batch.commit_all(None)?);
        }
        // The channels ended: the parsing thread is done (or failed).
        reading
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })?;
    // The parsing thread's come first: it tracked the first lines, if any.
    unknown.splice(0..0, read);
    Ok(Imported {
        total,
        unknown,
        handed_over,
    })
}

/// What [`import_lines`] did.
struct Imported {
    total: IngestStats,
    /// With `--show-unknown`.
    unknown: Vec<String>,
    /// The parsing thread handed the tracker to the writer part-way.
    handed_over: bool,
}

/// The reading and parsing thread of an import, with the tracker while it needs no store.
struct ParsingThread<'c> {
    config: &'c Config,
    parser: Parser,
    failures: FailureClassifier,
    raw_since: i64,
    show_unknown: bool,
    /// Set while lines are tracked here (see [`Tracker::tracks_without_store`]).
    tracker: Option<Box<Tracker>>,
    /// Bytes of lines per transaction ([`IMPORT_BATCH_BYTES`]), and of the next one (from
    /// [`FIRST_BATCH_BYTES`] up).
    batch_limit: usize,
    next_batch: usize,
    /// Bytes of lines tracked since the last rows were sent.
    batch_bytes: usize,
    /// Unknown lines met while tracking here, for `--show-unknown`.
    unknown: Vec<String>,
}

impl<'c> ParsingThread<'c> {
    fn new(config: &'c Config, parser: Parser, tracker: &Tracker) -> ParsingThread<'c> {
        ParsingThread {
            config,
            parser,
            failures: tracker.failure_classifier(),
            raw_since: (OffsetDateTime::now_utc() - config.maillog.raw_retention).unix_timestamp(),
            show_unknown: false,
            tracker: None,
            batch_limit: IMPORT_BATCH_BYTES,
            next_batch: FIRST_BATCH_BYTES,
            batch_bytes: 0,
            unknown: Vec::new(),
        }
    }

    /// Reads, parses (and tracks) `files` in order, sending to the writer through `to_writer`.
    /// Stops early when the writer is gone (it failed).
    fn run(&mut self, files: &[PathBuf], mut to_writer: ToWriter) -> Result<(), ImportError> {
        if self.tracker.is_none() {
            to_writer.tracked = None;
        }
        for path in files {
            let io_err = |source| ImportError::Io {
                path: path.clone(),
                source,
            };
            let size = std::fs::metadata(path).map_err(io_err)?.len();
            let mut reader = open_import(path).map_err(|e| ImportError::Open(e.to_string()))?;
            // Hidden unless standard error is a terminal.
            let progress = ProgressBar::new(size).with_style(
                ProgressStyle::with_template("{msg} [{bar:40}] {percent}% {per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            progress.set_message(path.display().to_string());
            let compressed = path.extension().is_some_and(|e| e == "gz");
            let mut carry = Vec::new();
            let mut own = ParsedChunk::default();
            loop {
                let tracking_here = self.tracker.is_some();
                // Tracked here, a chunk's buffers serve the next one at once.
                let mut chunk = match tracking_here {
                    true => std::mem::take(&mut own),
                    false => to_writer.spent.try_recv().unwrap_or_default(),
                };
                let eof = read_chunk(&mut *reader, &mut carry, &mut chunk).map_err(io_err)?;
                if !compressed {
                    progress.inc(chunk.text.len() as u64);
                }
                match tracking_here {
                    true => {
                        self.track(&chunk.text)?;
                        own = chunk;
                        if self.batch_bytes >= self.next_batch.min(self.batch_limit) {
                            match self.send_rows(&to_writer, false) {
                                Sent::Rows => {}
                                // Closed: the writer goes on to the parsed lines.
                                Sent::HandedOver => to_writer.tracked = None,
                                Sent::WriterGone => return Ok(()),
                            }
                        }
                    }
                    false => {
                        self.parse(&mut chunk);
                        if to_writer.parsed.send(chunk).is_err() {
                            return Ok(());
                        }
                    }
                }
                if eof {
                    break;
                }
            }
            progress.finish_and_clear();
        }
        if self.tracker.is_some() {
            // The writer's error, if it failed, ends the import.
            self.send_rows(&to_writer, true);
        }
        Ok(())
    }

    /// Parses the lines of `chunk.text` into `chunk.lines`.
    fn parse(&mut self, chunk: &mut ParsedChunk) {
        let text = &chunk.text;
        let base = text.as_ptr() as usize;
        chunk.lines.extend(maillog::lines(text).map(|line| {
            let start = line.as_ptr() as usize - base;
            let parsed = ParsedLine::parse(line, &mut self.parser, &mut self.failures);
            (start..start + line.len(), parsed.outcome, parsed.category)
        }));
    }

    /// Parses the lines of `text` and applies them to the tracker here, one by one.
    fn track(&mut self, text: &str) -> Result<(), ImportError> {
        let Some(tracker) = &mut self.tracker else {
            return Ok(());
        };
        for line in maillog::lines(text) {
            let line = ParsedLine::parse(line, &mut self.parser, &mut self.failures);
            tracker.apply_without_store(self.config, line, self.raw_since, |line| {
                if self.show_unknown {
                    self.unknown.push(line.to_owned());
                }
            })?;
        }
        self.batch_bytes += text.len();
        Ok(())
    }

    /// Sends the rows tracked so far (with `all`, every message: the end), then, should the
    /// tracker now hold too much to go on without the store, the tracker itself.
    fn send_rows(&mut self, to_writer: &ToWriter, all: bool) -> Sent {
        let (Some(tracker), Some(tracked)) = (&mut self.tracker, &to_writer.tracked) else {
            return Sent::HandedOver;
        };
        self.batch_bytes = 0;
        self.next_batch = self.batch_limit.min(self.next_batch * 2);
        let mut rows = to_writer.spent_rows.try_recv().unwrap_or_default();
        tracker.take_rows(all, &mut rows);
        if tracked.send(Tracked::Rows(rows)).is_err() {
            return Sent::WriterGone;
        }
        if all || tracker.tracks_without_store() {
            return Sent::Rows;
        }
        let handed_over = self
            .tracker
            .take()
            .is_none_or(|t| tracked.send(Tracked::HandOver(t)).is_ok());
        match handed_over {
            true => Sent::HandedOver,
            false => Sent::WriterGone,
        }
    }
}

/// The parsing thread's channels to and from the writer.
struct ToWriter {
    /// Rows tracked on the parsing thread (a rendezvous: one batch's rows at most wait);
    /// dropped when the tracker is handed over, or was never there.
    tracked: Option<SyncSender<Tracked>>,
    /// Lines parsed only.
    parsed: SyncSender<ParsedChunk>,
    /// Chunks and rows come back once stored: their buffers serve again (sparing the kernel
    /// zeroing fresh pages each time), and what they hold is freed on the thread that
    /// allocated it.
    spent: Receiver<ParsedChunk>,
    spent_rows: Receiver<TrackedRows>,
}

/// What [`ParsingThread::send_rows`] did.
enum Sent {
    Rows,
    HandedOver,
    /// The writer failed (its error ends the import).
    WriterGone,
}

/// Fills `chunk.text` with at least [`PARSE_CHUNK_BYTES`] of `reader`, ending at a line's end
/// (or at the end of the input), after the partial line `carry` left by the last chunk; keeps
/// the partial line at its end in `carry`. Returns whether the input ended.
fn read_chunk(
    reader: &mut dyn BufRead,
    carry: &mut Vec<u8>,
    chunk: &mut ParsedChunk,
) -> io::Result<bool> {
    let mut bytes = std::mem::take(&mut chunk.text).into_bytes();
    bytes.clear();
    chunk.lines.clear();
    bytes.extend_from_slice(carry);
    carry.clear();
    let mut eof = false;
    let mut last_newline = None;
    while bytes.len() < PARSE_CHUNK_BYTES || last_newline.is_none() {
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
    // Mail logs are not always UTF-8; invalid bytes become U+FFFD, the line is kept.
    chunk.text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Ok(eof)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bounce::Classifier;
    use std::path::Path;
    use time::UtcOffset;

    /// Messages, recipients and attempts as sorted text, without row ids.
    fn rows(store: &Path) -> Vec<String> {
        let conn = rusqlite::Connection::open(store).expect("open");
        let mut rows = Vec::new();
        for sql in [
            "SELECT queue_id, arrived_at, mail_from, size, message_id, client_addr, removed_at
             FROM message",
            "SELECT m.queue_id, m.arrived_at, r.position, r.address, r.orig_to, r.status,
                r.category, r.dsn, r.reply, r.attempts, r.last_attempt_at, r.final_at
             FROM recipient r JOIN message m ON m.id = r.message",
            "SELECT m.queue_id, m.arrived_at, r.address, a.at, a.status, a.relay_host, a.dsn,
                a.reply, a.category
             FROM attempt a JOIN recipient r ON r.id = a.recipient JOIN message m ON m.id = r.message",
            "SELECT m.queue_id, m.arrived_at, n.at, n.kind FROM mta_notice n
             JOIN message m ON m.id = n.message",
            "SELECT at, code, reason FROM reject",
        ] {
            rows.extend(crate::tracking::tests::rows_as_text(&conn, sql));
        }
        rows.sort();
        rows
    }

    /// The generated log imported in 64 KB transactions: tracked on the writing thread (a store
    /// with rows already), on the parsing thread (an empty store), and on the parsing thread
    /// until held messages pass a low limit, when the writer takes the tracker over — the same
    /// rows and totals each way.
    #[test]
    fn tracking_on_either_thread_or_handed_over_stores_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("mail.log");
        let status = std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/data/tools/gen_postfix_log.py"
            ))
            .args(["--lines", "30000", "--msgs-per-day", "500", "-o"])
            .arg(&log)
            .status()
            .expect("python3 runs");
        assert!(status.success());
        let config = Config::defaults();
        let import = |name: &str, sole_writer: bool, hold: Option<(usize, usize)>| {
            let path = dir.path().join(name);
            let mut store = Store::open(&path).expect("store");
            let parser =
                || follower::parser(&config, UtcOffset::from_hms(2, 0, 0).expect("offset"));
            let mut tracker = Tracker::new(parser(), Classifier::builtin());
            if sole_writer {
                tracker.sole_writer();
            }
            if let Some((messages, attempts)) = hold {
                tracker.hold_at_most(messages, attempts);
            }
            let mut parsing = ParsingThread::new(&config, parser(), &tracker);
            parsing.batch_limit = 64 << 10;
            let imported = import_lines(&mut store, tracker, parsing, std::slice::from_ref(&log))
                .expect("import");
            (rows(&path), imported)
        };
        let (on_writer, writer) = import("writer.db", false, None);
        let (on_parser, parser) = import("parser.db", true, None);
        let (handed, handed_over) = import("handed.db", true, Some((3, 30)));
        assert!(!writer.handed_over && !parser.handed_over);
        assert!(handed_over.handed_over, "the low limit was passed");
        let totals = |i: &Imported| format!("{:?}", i.total);
        assert_eq!(totals(&writer), totals(&parser));
        assert_eq!(totals(&writer), totals(&handed_over));
        assert!(
            writer.total.sent > 1_000 && writer.total.expired > 0,
            "{:?}",
            writer.total
        );
        assert_eq!(on_writer.len(), on_parser.len());
        assert!(
            on_writer == on_parser,
            "tracked on the parsing thread: rows differ"
        );
        assert!(on_writer == handed, "handed over: rows differ");
    }

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
        let tracker = Tracker::new(
            follower::parser(&config, UtcOffset::UTC),
            Classifier::builtin(),
        );
        let mut parsing =
            ParsingThread::new(&config, follower::parser(&config, UtcOffset::UTC), &tracker);
        let mut reader = io::BufReader::new(io::Cursor::new(input));
        let mut carry = Vec::new();
        let mut got = Vec::new();
        let mut chunks = 0;
        let mut chunk = ParsedChunk::default();
        loop {
            // Reused buffers must not carry old lines into new chunks.
            let eof = read_chunk(&mut reader, &mut carry, &mut chunk).expect("read");
            parsing.parse(&mut chunk);
            chunks += 1;
            for (range, outcome, _) in chunk.lines.drain(..) {
                let line = &chunk.text[range];
                assert!(!line.ends_with(['\r', '\n']), "{line:?}");
                assert!(!matches!(outcome, ParseOutcome::Ignored(_)), "{line}");
                got.push(line.to_owned());
            }
            if eof {
                break;
            }
        }
        assert!(chunks >= 3, "{chunks} chunks");
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "lines differ");
    }
}
