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
mod tests;
