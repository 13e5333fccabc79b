//! The live log follower: reads the configured source and hands batches of lines to the tracker,
//! which stores them with their read position in one transaction.

use crate::{
    bounce::Classifier,
    config::{Config, ConfigHandle, LogSource},
    maillog::{FileFollower, FollowedLine, JournalFollower, LogPosition, Parser, ParserOptions},
    store::Store,
    tracking::{BatchPosition, Tracker},
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};
use time::{OffsetDateTime, UtcOffset};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// Lines per transaction: large enough to amortise the commit, small enough that the milter,
/// whose envelope commit waits for an open log transaction, is never held up for long.
const MAX_LINES_PER_BATCH: usize = 1_000;
/// After a batch could not be stored, the wait before trying it again, doubling up to the max.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum FollowerError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("bounce rules: {0}")]
    Rules(#[from] crate::bounce::RulesError),
    #[error("{path}: {source}", path = path.display())]
    ReadRules {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The running follower.
pub struct Follower {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
    journal: Option<tokio::task::JoinHandle<()>>,
}

impl Follower {
    /// Stops reading and waits until the lines read so far are stored. (A blocked read of
    /// standard input cannot be interrupted; that source ends with the process.)
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(journal) = self.journal {
            journal.abort();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The bounce classifier with the operator's extra rules, if any.
pub fn classifier(config: &Config) -> Result<Classifier, FollowerError> {
    match &config.bounce_rules {
        None => Ok(Classifier::builtin()),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| FollowerError::ReadRules {
                    path: path.clone(),
                    source,
                })?;
            Ok(Classifier::with_extra_rules(
                &text,
                &path.display().to_string(),
            )?)
        }
    }
}

/// The parser for a live log: years inferred from now, stamps without offset in local time.
pub fn parser(config: &Config, local_offset: UtcOffset) -> Parser {
    Parser::new(ParserOptions {
        now: OffsetDateTime::now_utc(),
        syslog_names: config.maillog.syslog_names.clone(),
        default_offset: local_offset,
    })
}

/// Starts following the configured source; `None` when tracking is off.
pub fn start(
    config: ConfigHandle,
    local_offset: UtcOffset,
) -> Result<Option<Follower>, FollowerError> {
    let current = config.current();
    let source = current.maillog.source.clone();
    if source == LogSource::Off {
        return Ok(None);
    }
    let key = source.to_string();
    let store = Store::open(&current.store.path)?;
    let start: Option<LogPosition> = store
        .log_position(&key)?
        .and_then(|json| serde_json::from_str(&json).ok());
    let tracker = Tracker::new(parser(&current, local_offset), classifier(&current)?);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Vec<FollowedLine>>(4);
    let mut threads = Vec::new();
    let mut journal = None;

    match &source {
        LogSource::File(path) => {
            info!("following {} from {}", path.display(), describe(&start));
            threads.push(spawn_file_reader(
                path.clone(),
                start,
                current.maillog.poll_interval,
                stop.clone(),
                tx,
            ));
        }
        LogSource::Journald => {
            let cursor = start.and_then(|p| p.cursor);
            info!(
                "following the journal from {}",
                cursor.as_deref().unwrap_or("its beginning")
            );
            journal = Some(tokio::spawn(follow_journal(cursor, tx)));
        }
        LogSource::Stdin => {
            info!("reading the mail log from standard input");
            crate::maillog::spawn_stdin(tx);
        }
        LogSource::Off => unreachable!("handled above"),
    }

    let stdin = source == LogSource::Stdin;
    let applier = spawn_applier(config, key, store, tracker, rx, stop.clone());
    if !stdin {
        threads.push(applier);
    }
    Ok(Some(Follower {
        stop,
        threads,
        journal,
    }))
}

/// Reads new lines of the log file every `poll` and hands them to the applier, until stopped.
fn spawn_file_reader(
    path: std::path::PathBuf,
    start: Option<LogPosition>,
    poll: Duration,
    stop: Arc<AtomicBool>,
    tx: mpsc::Sender<Vec<FollowedLine>>,
) -> thread::JoinHandle<()> {
    let mut file = FileFollower::new(path.clone(), start);
    file.max_batch = MAX_LINES_PER_BATCH;
    let thread = thread::Builder::new().name("log-reader".into());
    let spawned = thread.spawn(move || {
        let mut warned = false;
        while !stop.load(Ordering::Relaxed) {
            match file.poll() {
                Ok(lines) if !lines.is_empty() => {
                    warned = false;
                    if tx.blocking_send(lines).is_err() {
                        break;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) if !warned => {
                    warn!("{}: {e}; retrying", path.display());
                    warned = true;
                }
                Err(_) => {}
            }
            thread::sleep(poll);
        }
    });
    spawned.expect("spawning the log reader thread")
}

/// Stores the lines it receives, a batch per transaction with the read position reached; a
/// batch that fails is retried (never skipped: that would lose its lines) until stopped.
fn spawn_applier(
    config: ConfigHandle,
    key: String,
    mut store: Store,
    mut tracker: Tracker,
    mut rx: mpsc::Receiver<Vec<FollowedLine>>,
    applier_stop: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    let thread = thread::Builder::new().name("log-applier".into());
    let spawned = thread.spawn(move || {
        while let Some(lines) = rx.blocking_recv() {
            for chunk in lines.chunks(MAX_LINES_PER_BATCH) {
                let Some(last) = chunk.last() else { continue };
                let mut wait = RETRY_FIRST;
                loop {
                    let current = config.current();
                    let position = BatchPosition {
                        source: &key,
                        position: serde_json::to_string(&last.position).unwrap_or_default(),
                    };
                    let raw_since = (OffsetDateTime::now_utc() - current.maillog.raw_retention)
                        .unix_timestamp();
                    let texts = chunk.iter().map(|l| l.text.as_str());
                    let Err(e) = tracker.apply(
                        &mut store,
                        &current,
                        texts,
                        Some(position),
                        raw_since,
                        |_| {},
                    ) else {
                        break;
                    };
                    // The batch is rolled back with its position. Going on with the next one
                    // would save a position past these lines and lose them: retry them until
                    // they are stored. Stopped meanwhile, a restart reads them again.
                    error!(
                        "log lines not stored: {e}; retrying in {}",
                        humantime::format_duration(wait)
                    );
                    if !sleep_unless_stopped(wait, &applier_stop) {
                        return;
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    });
    spawned.expect("spawning the log applier thread")
}

/// Sleeps `total` in short steps; false when the follower is stopped meanwhile.
fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) -> bool {
    let deadline = std::time::Instant::now() + total;
    while std::time::Instant::now() < deadline {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
    !stop.load(Ordering::Relaxed)
}

/// Runs journalctl, restarting it after the last stored cursor when it exits.
async fn follow_journal(mut cursor: Option<String>, tx: mpsc::Sender<Vec<FollowedLine>>) {
    let (relay_tx, mut relay_rx) = mpsc::channel::<Vec<FollowedLine>>(4);
    loop {
        let run = JournalFollower {
            cursor: cursor.clone(),
            ..Default::default()
        }
        .run(relay_tx.clone());
        tokio::pin!(run);
        loop {
            tokio::select! {
                batch = relay_rx.recv() => {
                    let Some(batch) = batch else { return };
                    if let Some(last) = batch.last() {
                        cursor = last.position.cursor.clone().or(cursor.take());
                    }
                    if tx.send(batch).await.is_err() {
                        return;
                    }
                }
                result = &mut run => {
                    if let Err(e) = result {
                        warn!("journal: {e}; restarting in 5 s");
                    }
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

fn describe(start: &Option<LogPosition>) -> String {
    match start {
        Some(p) => format!("byte {} (saved position)", p.offset),
        None => "its beginning".into(),
    }
}
