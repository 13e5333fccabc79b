//! Group commit of envelope rows. Concurrent end-of-message calls hand their envelope to one
//! writer thread, which syncs the archive directory once and commits all pending rows in one
//! transaction, then answers each caller: durability at the cost of one sync per batch.

use crate::{
    archive::{Archive, ArchiveError},
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
    reply: oneshot::Sender<Result<i64, RecordError>>,
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

    /// Commits one envelope; returns its row id once it is durable.
    pub async fn record(&self, envelope: Envelope) -> Result<i64, RecordError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { envelope, reply })
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
            commit(&mut store, archive.as_deref(), &counters, batch);
        }
        if last_flush.elapsed() >= COUNTER_FLUSH {
            flush_counters(&mut store, &counters);
            last_flush = Instant::now();
        }
    }
    flush_counters(&mut store, &counters);
}

fn commit(store: &mut Store, archive: Option<&Archive>, counters: &Counters, batch: Vec<Job>) {
    // The copies were synced and renamed into new/ by their sessions; one directory sync makes
    // every rename of the batch durable. It runs beside the row commit (each is one fsync): the
    // MTA is answered only after both, and a crash between them leaves either a row whose copy
    // is reported missing or a copy without a row that the sweep removes, never a partial file.
    let wants_sync = batch
        .iter()
        .any(|j| j.envelope.archive_state == ArchiveState::Stored);
    let envelopes: Vec<&Envelope> = batch.iter().map(|j| &j.envelope).collect();
    // The counters go into the rows' transaction, with this batch's rows counted: a crash
    // loses neither or both.
    let taken = counters.take();
    let recorded = [("messages_recorded", envelopes.len() as u64)];
    let deltas: Vec<(&str, u64)> = taken.iter().copied().chain(recorded).collect();
    let (sync_error, inserted) = std::thread::scope(|scope| {
        let sync = archive
            .filter(|_| wants_sync)
            .map(|archive| scope.spawn(|| archive.sync_new_dir().err().map(Arc::new)));
        let inserted = store.record_envelopes(&envelopes, &deltas);
        let sync_error = sync.and_then(|s| s.join().unwrap_or(None));
        (sync_error, inserted)
    });
    drop(envelopes);
    match inserted {
        Ok(ids) => {
            for (job, id) in batch.into_iter().zip(ids) {
                let result = match &sync_error {
                    Some(e) if job.envelope.archive_state == ArchiveState::Stored => {
                        Err(RecordError::ArchiveSync(e.clone()))
                    }
                    _ => Ok(id),
                };
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            counters.restore(&taken);
            let e = Arc::new(e);
            for job in batch {
                let _ = job.reply.send(Err(RecordError::Store(e.clone())));
            }
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
