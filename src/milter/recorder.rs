//! Group commit of archive copies and envelope rows. Concurrent end-of-message calls hand their
//! copy and envelope to one writer thread, which stores the batch's copies together (written
//! back at once, then renamed into `new/`), then syncs the archive directory once while it
//! commits all the rows in one transaction, and only then answers each caller: durability at
//! the cost of one directory sync and one row commit per batch, whatever its size.

use crate::{
    archive::{Archive, ArchiveError, Spool},
    model::counters::Counters,
    model::envelope::{ArchiveState, Envelope},
    store::{BackgroundCheckpoint, Store, StoreError},
};
use std::{
    sync::{Arc, mpsc},
    thread,
    time::{Duration, Instant},
};
use tokio::sync::oneshot;
use tracing::{error, warn};

/// Most rows committed in one transaction.
const MAX_BATCH: usize = 512;
/// How often the write-ahead log is copied into the database, away from the milter's commits.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How often counters reach the store when the writer is otherwise idle.
const COUNTER_FLUSH: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("envelope not committed: {0}")]
    Store(#[source] Arc<StoreError>),
    #[error("envelope committed, but the archive directory sync failed: {0}")]
    ArchiveSync(#[source] Arc<ArchiveError>),
    #[error("the store writer has stopped")]
    Stopped,
}

struct Job {
    envelope: Envelope,
    /// The message's copy, when it is to be archived.
    copy: Option<Spool>,
    reply: oneshot::Sender<Result<Recorded, RecordError>>,
}

/// A committed envelope: its row, and what became of its copy.
#[derive(Debug)]
pub struct Recorded {
    pub id: i64,
    pub copy: CopyOutcome,
}

/// What became of a message's archive copy.
#[derive(Debug)]
pub enum CopyOutcome {
    /// None was to be stored.
    None,
    /// Durable in `new/`.
    Stored,
    /// Not stored; the row says `failed`.
    Failed(ArchiveError),
}

/// The handle the milter sessions use; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    jobs: mpsc::Sender<Job>,
}

/// The writer thread; joining it waits until every queued envelope is committed.
pub struct RecorderThread(thread::JoinHandle<()>);

impl RecorderThread {
    pub fn join(self) {
        if self.0.join().is_err() {
            error!("the store writer thread panicked");
        }
    }
}

impl Recorder {
    /// Starts the writer thread. It stops once every `Recorder` clone is dropped.
    /// `checkpointer` is a second connection to the same store: it checkpoints the write-ahead
    /// log every second, so no commit on the milter's answer path has to.
    pub fn start(
        mut store: Store,
        checkpointer: Store,
        archive: Option<Arc<Archive>>,
        counters: Arc<Counters>,
    ) -> (Recorder, RecorderThread) {
        if let Err(e) = store.without_auto_checkpoint() {
            warn!("store writer keeps automatic checkpoints: {e}");
        }
        let (jobs, queue) = mpsc::channel();
        let handle = thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let checkpoints = BackgroundCheckpoint::start(checkpointer, CHECKPOINT_EVERY)
                    .inspect_err(|e| warn!("store checkpoint thread: {e}"));
                writer(store, archive, counters, queue);
                if let Ok(checkpoints) = checkpoints {
                    checkpoints.stop();
                }
            })
            .expect("spawning the store writer thread");
        (Recorder { jobs }, RecorderThread(handle))
    }

    /// Stores `copy` (when given, for an envelope in state `stored`) and commits the envelope;
    /// returns once both are durable.
    pub async fn record(
        &self,
        envelope: Envelope,
        copy: Option<Spool>,
    ) -> Result<Recorded, RecordError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                envelope,
                copy,
                reply,
            })
            .map_err(|_| RecordError::Stopped)?;
        answer.await.unwrap_or(Err(RecordError::Stopped))
    }
}

fn writer(
    mut store: Store,
    archive: Option<Arc<Archive>>,
    counters: Arc<Counters>,
    queue: mpsc::Receiver<Job>,
) {
    let mut last_flush = Instant::now();
    let syncer = archive.clone().map(DirSyncer::start);
    loop {
        let first = match queue.recv_timeout(COUNTER_FLUSH) {
            Ok(job) => Some(job),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(first) = first {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            commit(
                &mut store,
                archive.as_deref(),
                syncer.as_ref(),
                &counters,
                batch,
            );
        }
        if last_flush.elapsed() >= COUNTER_FLUSH {
            flush_counters(&mut store, &counters);
            last_flush = Instant::now();
        }
    }
    flush_counters(&mut store, &counters);
}

fn commit(
    store: &mut Store,
    archive: Option<&Archive>,
    syncer: Option<&DirSyncer>,
    counters: &Counters,
    mut batch: Vec<Job>,
) {
    let copies = store_copies(archive, counters, &mut batch);
    // One directory sync makes every rename of the batch durable (and, on ext4 and XFS, the
    // copies' bytes: see `DataSync`). It runs beside the row commit (each is one fsync): the MTA
    // is answered only after both, and a crash between them leaves either a row whose copy is
    // reported missing or a copy without a row that the sweep removes, never a partial file.
    let wants_sync = copies.iter().any(|c| matches!(c, CopyOutcome::Stored));
    let envelopes: Vec<&Envelope> = batch.iter().map(|j| &j.envelope).collect();
    // The counters go into the rows' transaction, with this batch's rows counted: a crash
    // loses neither or both.
    let taken = counters.take();
    let recorded = [("messages_recorded", envelopes.len() as u64)];
    let deltas: Vec<(&str, u64)> = taken.iter().copied().chain(recorded).collect();
    let syncing = syncer.filter(|_| wants_sync).map(DirSyncer::begin);
    let inserted = store.record_envelopes(&envelopes, &deltas);
    let sync_error = syncing.and_then(|s| s.finish());
    drop(envelopes);
    match inserted {
        Ok(ids) => {
            for ((job, id), copy) in batch.into_iter().zip(ids).zip(copies) {
                let result = match (&sync_error, copy) {
                    (Some(e), CopyOutcome::Stored) => Err(RecordError::ArchiveSync(e.clone())),
                    (_, copy) => Ok(Recorded { id, copy }),
                };
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            counters.restore(&taken);
            // No row refers to these copies: they go now, rather than at the next start.
            for job in &batch {
                if let (Some(name), Some(archive)) = (&job.envelope.archive_name, archive)
                    && let Err(e) = archive.discard(name)
                {
                    warn!("copy without a record not removed: {e}");
                }
            }
            let e = Arc::new(e);
            for job in batch {
                let _ = job.reply.send(Err(RecordError::Store(e.clone())));
            }
        }
    }
}

/// Stores the batch's copies together; a copy that could not be stored marks its envelope
/// `failed` before the rows are written. What became of each job's copy, in order.
fn store_copies(
    archive: Option<&Archive>,
    counters: &Counters,
    batch: &mut [Job],
) -> Vec<CopyOutcome> {
    let mut outcomes: Vec<CopyOutcome> = batch.iter().map(|_| CopyOutcome::None).collect();
    let (places, spools): (Vec<usize>, Vec<Spool>) = batch
        .iter_mut()
        .enumerate()
        .filter_map(|(i, job)| job.copy.take().map(|spool| (i, spool)))
        .unzip();
    let Some(archive) = archive.filter(|_| !spools.is_empty()) else {
        return outcomes;
    };
    for (i, stored) in places.into_iter().zip(archive.store_copies(spools)) {
        let envelope = &mut batch[i].envelope;
        outcomes[i] = match stored {
            Ok(name) => {
                Counters::add(&counters.messages_archived, 1);
                Counters::add(&counters.archive_bytes, envelope.size);
                envelope.archive_name = Some(name);
                CopyOutcome::Stored
            }
            Err(e) => {
                Counters::add(&counters.archive_errors, 1);
                envelope.archive_state = ArchiveState::Failed;
                CopyOutcome::Failed(e)
            }
        };
    }
    outcomes
}

/// A thread that syncs the archive's `new/` on request, beside the writer's row commit: the
/// two fsyncs then share a journal commit. One thread for the daemon's life rather than one per
/// batch.
struct DirSyncer {
    requests: mpsc::Sender<()>,
    results: mpsc::Receiver<Result<(), ArchiveError>>,
}

/// A sync under way; [`Syncing::finish`] waits for it.
struct Syncing<'a>(&'a DirSyncer);

impl DirSyncer {
    fn start(archive: Arc<Archive>) -> DirSyncer {
        let (requests, asked) = mpsc::channel::<()>();
        let (answer, results) = mpsc::channel();
        thread::Builder::new()
            .name("archive-sync".into())
            .spawn(move || {
                for () in asked {
                    if answer.send(archive.sync_new_dir()).is_err() {
                        break;
                    }
                }
            })
            .expect("spawning the archive sync thread");
        DirSyncer { requests, results }
    }

    fn begin(&self) -> Syncing<'_> {
        let _ = self.requests.send(());
        Syncing(self)
    }
}

impl Syncing<'_> {
    /// The sync's error, if it failed (or its thread is gone).
    fn finish(self) -> Option<Arc<ArchiveError>> {
        match self.0.results.recv() {
            Ok(result) => result.err().map(Arc::new),
            Err(_) => Some(Arc::new(ArchiveError::SyncStopped)),
        }
    }
}

fn flush_counters(store: &mut Store, counters: &Counters) {
    let taken = counters.take();
    if taken.iter().all(|(_, v)| *v == 0) {
        return;
    }
    if let Err(e) = store.add_counters(&taken) {
        warn!("cannot save counters, keeping them for the next try: {e}");
        counters.restore(&taken);
    }
}
