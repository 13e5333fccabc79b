//! Delivery tracking: turns the MTA log's typed events into store writes — messages matched on
//! queue id, one attempt per recipient and try, final states, bounce categories, rejects and raw
//! lines. Used by the live follower and by `mailtrail import`.

pub mod follower;
pub mod import;

use crate::{
    bounce::{Category, Classifier, Failure},
    config::{Config, Receipts},
    maillog::{Delivery, DeliveryStatus, Event, Header, ParseOutcome, Parser, Reject, SmtpStage},
    model::status::RecipientStatus,
    store::{
        AttemptRow, LogBatch, LogMessageFields, NewLogMessage, NewRecipient, RejectRow, Store,
        StoreError,
    },
};
use serde::Serialize;
use std::{collections::HashMap, hash::BuildHasher};

/// Queue ids remembered between batches; past this the cache starts over (the store has all).
const MAX_CACHED_QUEUE_IDS: usize = 500_000;
/// Messages still in the queue an import keeps in memory across batches at most (see
/// [`Tracker::sole_writer`]); past this a commit writes them all.
const MAX_HELD_MESSAGES: usize = 100_000;
/// Attempts on held messages kept in memory at most: a message deferred for days gathers
/// hundreds, each with its reply text.
const MAX_HELD_ATTEMPTS: usize = 200_000;
/// Distinct failures whose category is remembered; reply texts repeat a lot.
const MAX_CACHED_CATEGORIES: usize = 100_000;

/// What a run of lines contained.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IngestStats {
    pub lines: u64,
    pub events: u64,
    /// Lines of mail programs that no grammar recognised, or malformed: counted, never kept,
    /// never fatal.
    pub unknown: u64,
    /// Lines of other programs, or blank.
    pub ignored: u64,
    pub sent: u64,
    pub deferred: u64,
    pub bounced: u64,
    pub expired: u64,
    pub rejects: u64,
    pub raw_lines_kept: u64,
}

impl IngestStats {
    /// The figures the follower adds to the store's counters (`mailtrail counters`, `/metrics`)
    /// with each batch; names in [`crate::model::counters::LOG_COUNTERS`].
    pub fn counters(&self) -> [(&'static str, u64); 4] {
        [
            ("log_lines", self.lines),
            ("log_events", self.events),
            ("log_lines_unknown", self.unknown),
            ("log_lines_ignored", self.ignored),
        ]
    }

    pub fn add(&mut self, other: &IngestStats) {
        self.lines += other.lines;
        self.events += other.events;
        self.unknown += other.unknown;
        self.ignored += other.ignored;
        self.sent += other.sent;
        self.deferred += other.deferred;
        self.bounced += other.bounced;
        self.expired += other.expired;
        self.rejects += other.rejects;
        self.raw_lines_kept += other.raw_lines_kept;
    }
}

/// Where a batch of lines came from and how far it reached, saved with its events.
pub struct BatchPosition<'a> {
    pub source: &'a str,
    /// The follower's position after the last line, serialised.
    pub position: String,
}

pub struct Tracker {
    parser: Parser,
    failures: FailureClassifier,
    /// Set by [`Tracker::sole_writer`] while the caches hold every open message of the store.
    sole_writer: bool,
    /// Set by [`Tracker::sole_writer`]: messages still in the queue at a commit stay in `new`
    /// until they leave it or [`TrackerBatch::commit_all`].
    hold_open: bool,
    /// Queue id → message, for messages not yet removed from the queue. Queue ids are the
    /// MTA's own (not from mail): a fast hash suits them (a lookup per line).
    messages: HashMap<String, MessageRef, foldhash::quality::RandomState>,
    /// (message row, address) → recipient row.
    recipients: HashMap<(i64, String), i64>,
    /// What the current batch says about messages it saw first, in the order first seen.
    new: Vec<NewMessage>,
    /// Attempts on recipients of `new`, in log order.
    new_attempts: Vec<NewAttempt>,
    /// MTA notices about `new` messages, in log order.
    new_notices: Vec<NewNotice>,
    /// Refused commands and raw lines of the current batch, written at its end.
    new_rejects: Vec<NewReject>,
    new_raw_lines: Vec<NewRawLine>,
    /// What the lines applied since the last commit contained.
    stats: IngestStats,
    /// [`MAX_HELD_MESSAGES`] and [`MAX_HELD_ATTEMPTS`], lower in tests.
    max_held: (usize, usize),
}

/// The bounce classifier with the categories of the failures it saw (reply texts repeat a
/// lot). No I/O: the import runs one on its parsing thread.
#[derive(Clone)]
pub struct FailureClassifier {
    classifier: Classifier,
    /// The hash of a failure's [`FailureKey`] → the key and its category: a failure seen before
    /// is found without building a key (two in three in a real log).
    classified: HashMap<u64, (FailureKey, Category), foldhash::quality::RandomState>,
    hasher: foldhash::quality::RandomState,
}

impl FailureClassifier {
    pub fn new(classifier: Classifier) -> FailureClassifier {
        FailureClassifier {
            classifier,
            classified: HashMap::default(),
            hasher: foldhash::quality::RandomState::default(),
        }
    }

    /// The category of what `event` reports as failed: a deferred or bounced delivery, a
    /// refused command; None for anything else.
    pub fn category_of(&mut self, event: &Event) -> Option<Category> {
        match event {
            Event::Delivery(d) => match d.status {
                DeliveryStatus::Sent | DeliveryStatus::Expired => None,
                DeliveryStatus::Deferred | DeliveryStatus::Bounced => Some(self.classify(
                    &Failure {
                        dsn: d.dsn.as_deref(),
                        code: d.smtp_code,
                        text: &d.reply,
                        stage: d.stage,
                    },
                    d.stage,
                )),
            },
            Event::Reject(r) => Some(self.classify(
                &Failure {
                    dsn: r.dsn.as_deref(),
                    code: r.code,
                    text: &r.reason,
                    stage: Some(r.stage),
                },
                Some(r.stage),
            )),
            _ => None,
        }
    }

    fn classify(&mut self, failure: &Failure, stage: Option<SmtpStage>) -> Category {
        let hash = self
            .hasher
            .hash_one((failure.dsn, failure.code, stage, failure.text));
        if let Some(((dsn, code, seen_stage, text), category)) = self.classified.get(&hash)
            && (dsn.as_deref(), *code, *seen_stage, text.as_str())
                == (failure.dsn, failure.code, stage, failure.text)
        {
            return *category;
        }
        if self.classified.len() >= MAX_CACHED_CATEGORIES {
            self.classified.clear();
        }
        let category = self.classifier.classify(failure);
        // A different failure with the same hash (rare) is replaced.
        let key = (
            failure.dsn.map(str::to_owned),
            failure.code,
            stage,
            failure.text.to_owned(),
        );
        self.classified.insert(hash, (key, category));
        category
    }
}

/// One transaction of log lines in progress ([`Tracker::begin`]). Nothing is visible before
/// [`TrackerBatch::commit`]; dropped without it, the transaction rolls back.
pub struct TrackerBatch<'t, 's> {
    tracker: &'t mut Tracker,
    /// Taken by `commit`.
    batch: Option<LogBatch<'s>>,
}

impl TrackerBatch<'_, '_> {
    /// Stores what one line says: `outcome` is `line` parsed, `category` what
    /// [`FailureClassifier::category_of`] says of its event. Raw lines older than `raw_since`
    /// (unix seconds) are not kept; `on_unknown` sees an unrecognised line. After an error the
    /// batch can only be dropped.
    pub fn apply_parsed(
        &mut self,
        config: &Config,
        line: &str,
        outcome: ParseOutcome,
        category: Option<Category>,
        raw_since: i64,
        on_unknown: impl FnOnce(&str),
    ) -> Result<(), StoreError> {
        let Some(batch) = &self.batch else {
            return Ok(());
        };
        let line = ParsedLine {
            line,
            outcome,
            category,
        };
        self.tracker
            .apply_line(Some(batch), config, line, raw_since, on_unknown)
    }

    /// Writes the batch's new messages and the read position reached, and commits.
    pub fn commit(self, position: Option<BatchPosition>) -> Result<IngestStats, StoreError> {
        let hold_open = self.tracker.hold_open && !self.tracker.holds_too_much();
        self.finish(position, hold_open)
    }

    /// [`TrackerBatch::commit`], writing the messages a [`Tracker::sole_writer`] kept in memory
    /// too: the end of an import.
    pub fn commit_all(self, position: Option<BatchPosition>) -> Result<IngestStats, StoreError> {
        self.finish(position, false)
    }

    fn finish(
        mut self,
        position: Option<BatchPosition>,
        hold_open: bool,
    ) -> Result<IngestStats, StoreError> {
        let Some(batch) = self.batch.take() else {
            return Ok(IngestStats::default());
        };
        let result = self.tracker.write_new(&batch, hold_open).and_then(|stats| {
            if let Some(p) = &position {
                batch.save_position(p.source, &p.position)?;
                batch.add_counters(&stats.counters())?;
            }
            batch.commit()?;
            Ok(stats)
        });
        if result.is_err() {
            self.tracker.forget_uncommitted();
        }
        result
    }
}

impl Drop for TrackerBatch<'_, '_> {
    fn drop(&mut self) {
        if self.batch.is_some() {
            // Not committed: rolled back with the transaction.
            self.tracker.forget_uncommitted();
        }
    }
}

/// Where the rows of a queue id's message are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MessageRef {
    /// Already in the store: updated statement by statement.
    Stored(i64),
    /// First seen in this batch: index in `Tracker::new`, written whole at the batch's end.
    /// Most messages live and leave the queue within one batch, so this writes each message
    /// and recipient row once instead of a dozen statements per message.
    New(usize),
}

/// (DSN, SMTP code, stage, reply text): everything the classifier looks at.
type FailureKey = (Option<String>, Option<u16>, Option<SmtpStage>, String);

/// A message the store does not have yet, as the batch's lines describe it.
struct NewMessage {
    queue_id: String,
    arrived_at: i64,
    mta_host: String,
    fields: MessageFields,
    removed_at: Option<i64>,
    recipients: Vec<NewRecipientState>,
}

/// What `LogBatch::set_message_fields` would leave in a row the log created.
#[derive(Default)]
struct MessageFields {
    sender: Option<String>,
    size: Option<u64>,
    nrcpt: Option<u32>,
    message_id: Option<String>,
    client_host: Option<String>,
    client_ip: Option<String>,
    sasl_user: Option<String>,
    mode: Option<String>,
    receipts: Option<Receipts>,
    handed_to: Option<String>,
}

impl MessageFields {
    /// The same merge as the SQL: the log's sender, size, count and mode replace earlier
    /// values; the first message-id, client and SASL user seen stay.
    fn merge(&mut self, f: &LogMessageFields) {
        fn first(slot: &mut Option<String>, value: Option<&str>) {
            if slot.is_none() {
                *slot = value.map(str::to_owned);
            }
        }
        if let Some(v) = f.sender {
            self.sender = Some(v.to_owned());
        }
        self.size = f.size.or(self.size);
        self.nrcpt = f.nrcpt.or(self.nrcpt);
        if let Some(v) = f.mode {
            self.mode = Some(v.to_owned());
        }
        self.receipts = f.receipts.or(self.receipts);
        first(&mut self.message_id, f.message_id);
        first(&mut self.client_host, f.client_host);
        first(&mut self.client_ip, f.client_ip);
        first(&mut self.sasl_user, f.sasl_user);
        first(&mut self.handed_to, f.handed_to);
    }

    fn as_fields(&self) -> LogMessageFields<'_> {
        LogMessageFields {
            sender: self.sender.as_deref(),
            size: self.size,
            nrcpt: self.nrcpt,
            message_id: self.message_id.as_deref(),
            client_host: self.client_host.as_deref(),
            client_ip: self.client_ip.as_deref(),
            sasl_user: self.sasl_user.as_deref(),
            mode: self.mode.as_deref(),
            receipts: self.receipts,
            handed_to: self.handed_to.as_deref(),
        }
    }
}

/// A recipient of a [`NewMessage`], with the state `LogBatch::record_attempt` would give it.
struct NewRecipientState {
    address: String,
    orig_to: Option<String>,
    status: RecipientStatus,
    dsn: Option<String>,
    reply: Option<String>,
    category: Option<Category>,
    attempts: i64,
    last_attempt_at: Option<i64>,
    final_at: Option<i64>,
    /// Set when written.
    row: i64,
}

impl NewRecipientState {
    /// The state change of `record_attempt`'s UPDATE ([`RecipientStatus::replaced_by`]): a
    /// final state is never overwritten by a later deferral logged out of order.
    fn record(&mut self, a: &NewAttempt) {
        let outcome = a.status.recipient_status();
        let is_final = outcome.is_final();
        self.attempts += 1;
        self.last_attempt_at = Some(self.last_attempt_at.map_or(a.at, |l| l.max(a.at)));
        if self.status.replaced_by(outcome) {
            self.status = outcome;
            self.dsn = a.dsn.clone();
            self.reply = Some(a.reply.clone());
            self.category = a.category;
        }
        if is_final && self.final_at.is_none() {
            self.final_at = Some(a.at);
        }
    }
}

struct NewAttempt {
    message: usize,
    recipient: usize,
    at: i64,
    status: DeliveryStatus,
    relay_host: Option<String>,
    relay_ip: Option<String>,
    relay_port: Option<u16>,
    dsn: Option<String>,
    smtp_code: Option<u16>,
    reply: String,
    stage: Option<&'static str>,
    delay: Option<f64>,
    delays: Option<String>,
    category: Option<Category>,
}

impl NewAttempt {
    fn row(&self) -> AttemptRow<'_> {
        AttemptRow {
            at: self.at,
            status: self.status,
            relay_host: self.relay_host.as_deref(),
            relay_ip: self.relay_ip.as_deref(),
            relay_port: self.relay_port,
            dsn: self.dsn.as_deref(),
            smtp_code: self.smtp_code,
            reply: &self.reply,
            stage: self.stage,
            delay: self.delay,
            delays: self.delays.as_deref(),
            category: self.category,
        }
    }
}

/// The last attempt of every recipient not yet final: the MTA gave up on the message, or
/// refused it as a whole.
/// How a message's open recipients reach their final state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// The MTA logged a final attempt (expiry): an attempt row each.
    Attempted,
    /// The MTA refused the message as a whole: state only, no attempt.
    Refused,
}

struct FinalAttempt<'a> {
    at: i64,
    status: DeliveryStatus,
    dsn: Option<&'a str>,
    smtp_code: Option<u16>,
    reply: &'a str,
    stage: Option<SmtpStage>,
    category: Category,
}

impl FinalAttempt<'_> {
    fn row(&self) -> AttemptRow<'_> {
        AttemptRow {
            at: self.at,
            status: self.status,
            relay_host: None,
            relay_ip: None,
            relay_port: None,
            dsn: self.dsn,
            smtp_code: self.smtp_code,
            reply: self.reply,
            stage: self.stage.map(SmtpStage::as_str),
            delay: None,
            delays: None,
            category: Some(self.category),
        }
    }

    fn new_attempt(&self, message: usize, recipient: usize) -> NewAttempt {
        NewAttempt {
            message,
            recipient,
            at: self.at,
            status: self.status,
            relay_host: None,
            relay_ip: None,
            relay_port: None,
            dsn: self.dsn.map(str::to_owned),
            smtp_code: self.smtp_code,
            reply: self.reply.to_owned(),
            stage: self.stage.map(SmtpStage::as_str),
            delay: None,
            delays: None,
            category: Some(self.category),
        }
    }
}

struct NewNotice {
    message: usize,
    at: i64,
    kind: String,
    notice_queue_id: Option<String>,
}

struct NewReject {
    at: i64,
    mta_host: String,
    reject: Reject,
    category: Category,
}

impl NewReject {
    fn row(&self) -> RejectRow<'_> {
        let r = &self.reject;
        RejectRow {
            at: self.at,
            mta_host: Some(&self.mta_host),
            source: reject_source(r),
            code: r.code,
            dsn: r.dsn.as_deref(),
            client_host: r.client_host.as_deref(),
            client_ip: r.client_ip.as_deref(),
            sender: r.from.as_deref(),
            recipient: r.to.as_deref(),
            helo: r.helo.as_deref(),
            stage: Some(r.stage.as_str()),
            reason: &r.reason,
            category: Some(self.category),
        }
    }
}

struct NewRawLine {
    at: i64,
    queue_id: Option<String>,
    line: String,
}

/// One line as the parsing thread hands it over: `outcome` is `line` parsed, `category` what
/// [`FailureClassifier::category_of`] says of its event.
pub struct ParsedLine<'l> {
    pub line: &'l str,
    pub outcome: ParseOutcome,
    pub category: Option<Category>,
}

impl<'l> ParsedLine<'l> {
    /// Parses `line` and classifies the failure it reports, if any.
    pub fn parse(
        line: &'l str,
        parser: &mut Parser,
        failures: &mut FailureClassifier,
    ) -> ParsedLine<'l> {
        let outcome = parser.parse(line);
        let category = match &outcome {
            ParseOutcome::Event(_, event) => failures.category_of(event),
            _ => None,
        };
        ParsedLine {
            line,
            outcome,
            category,
        }
    }
}

/// The rows one commit writes: messages (with their recipients) whose whole story is known,
/// the attempts and notices about them, refused commands, raw lines, and the counts of the
/// lines they came from. Built without the store (see [`Tracker::apply_without_store`]), so
/// that another thread can write them ([`TrackedRows::commit`]).
#[derive(Default)]
pub struct TrackedRows {
    messages: Vec<NewMessage>,
    /// `message` indexes `messages`.
    attempts: Vec<NewAttempt>,
    notices: Vec<NewNotice>,
    rejects: Vec<NewReject>,
    raw_lines: Vec<NewRawLine>,
    stats: IngestStats,
}

impl TrackedRows {
    /// Writes the rows in one transaction; returns the counts of their lines.
    pub fn commit(&mut self, store: &mut Store) -> Result<IngestStats, StoreError> {
        let batch = store.log_batch()?;
        self.write(&batch)?;
        batch.commit()?;
        Ok(std::mem::take(&mut self.stats))
    }

    fn clear(&mut self) {
        self.messages.clear();
        self.attempts.clear();
        self.notices.clear();
        self.rejects.clear();
        self.raw_lines.clear();
        self.stats = IngestStats::default();
    }

    /// Inserts every row; returns the row id of each message.
    fn write(&mut self, batch: &LogBatch) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(self.messages.len());
        let mut rows = batch.row_writer()?;
        for m in &mut self.messages {
            let id = rows.insert_log_message(&NewLogMessage {
                queue_id: &m.queue_id,
                arrived_at: m.arrived_at,
                mta_host: Some(&m.mta_host),
                fields: m.fields.as_fields(),
                removed_at: m.removed_at,
            })?;
            for (position, r) in m.recipients.iter_mut().enumerate() {
                r.row = rows.insert_recipient(
                    id,
                    &NewRecipient {
                        position: position as i64,
                        address: &r.address,
                        orig_to: r.orig_to.as_deref(),
                        status: r.status,
                        dsn: r.dsn.as_deref(),
                        reply: r.reply.as_deref(),
                        category: r.category,
                        attempts: r.attempts,
                        last_attempt_at: r.last_attempt_at,
                        final_at: r.final_at,
                    },
                )?;
            }
            ids.push(id);
        }
        for a in &self.attempts {
            let recipient = self.messages[a.message].recipients[a.recipient].row;
            rows.insert_attempt(recipient, &a.row())?;
        }
        for r in &self.rejects {
            rows.insert_reject(&r.row())?;
        }
        for l in &self.raw_lines {
            rows.insert_raw_line(l.at, l.queue_id.as_deref(), &l.line)?;
        }
        drop(rows);
        for n in &self.notices {
            batch.add_mta_notice(ids[n.message], n.at, &n.kind, n.notice_queue_id.as_deref())?;
        }
        Ok(ids)
    }
}

/// Where a message of `Tracker::new` goes at a commit, and its index there.
#[derive(Clone, Copy)]
enum Place {
    Held(usize),
    Taken(usize),
}

/// Moves the rows about taken messages from `rows` to `taken` (in order); renumbers every
/// row's `message` to its message's new index.
fn take_placed<T>(
    rows: &mut Vec<T>,
    taken: &mut Vec<T>,
    place: &[Place],
    message: impl Fn(&mut T) -> &mut usize,
) {
    taken.extend(rows.extract_if(.., |row| {
        let (i, is_taken) = match place[*message(row)] {
            Place::Held(i) => (i, false),
            Place::Taken(i) => (i, true),
        };
        *message(row) = i;
        is_taken
    }));
}

/// The store's transaction, for a message already written. A tracker working without the
/// store holds none ([`Tracker::tracks_without_store`]).
fn stored<'b, 's>(batch: Option<&'b LogBatch<'s>>) -> Result<&'b LogBatch<'s>, StoreError> {
    batch.ok_or(StoreError::NoTransaction)
}

impl Tracker {
    pub fn new(parser: Parser, classifier: Classifier) -> Tracker {
        Tracker {
            parser,
            failures: FailureClassifier::new(classifier),
            sole_writer: false,
            hold_open: false,
            messages: HashMap::default(),
            recipients: HashMap::new(),
            new: Vec::new(),
            new_attempts: Vec::new(),
            new_notices: Vec::new(),
            new_rejects: Vec::new(),
            new_raw_lines: Vec::new(),
            stats: IngestStats::default(),
            max_held: (MAX_HELD_MESSAGES, MAX_HELD_ATTEMPTS),
        }
    }

    /// Declares that nothing but this tracker writes log messages to the store, and that it
    /// held none before (an import into an empty store): a queue id missing from the caches
    /// is then new without asking the store (until the caches overflow). And as no one reads
    /// along, a message still in the queue at a commit is kept in memory and written whole once
    /// it leaves the queue, or at [`TrackerBatch::commit_all`]: deferred messages span many
    /// batches, and updating their rows statement by statement was a fifth of an import.
    pub fn sole_writer(&mut self) {
        self.sole_writer = true;
        self.hold_open = true;
    }

    /// A classifier for the categories [`TrackerBatch::apply_parsed`] takes, to run elsewhere.
    pub fn failure_classifier(&self) -> FailureClassifier {
        self.failures.clone()
    }

    /// Parses and stores a batch of lines in one transaction, with the position reached after
    /// them. Raw lines older than `raw_since` (unix seconds) are not kept. `on_unknown` sees
    /// every unrecognised line (for `import --show-unknown`).
    pub fn apply<'l>(
        &mut self,
        store: &mut Store,
        config: &Config,
        lines: impl IntoIterator<Item = &'l str>,
        position: Option<BatchPosition>,
        raw_since: i64,
        mut on_unknown: impl FnMut(&str),
    ) -> Result<IngestStats, StoreError> {
        let mut batch = self.begin(store)?;
        for line in lines {
            let tracker = &mut *batch.tracker;
            let parsed = ParsedLine::parse(line, &mut tracker.parser, &mut tracker.failures);
            let (outcome, category) = (parsed.outcome, parsed.category);
            batch.apply_parsed(config, line, outcome, category, raw_since, &mut on_unknown)?;
        }
        batch.commit(position)
    }

    /// Starts a transaction of lines parsed elsewhere (the import parses on another thread):
    /// [`TrackerBatch::apply_parsed`] for each line, then [`TrackerBatch::commit`].
    pub fn begin<'t, 's>(
        &'t mut self,
        store: &'s mut Store,
    ) -> Result<TrackerBatch<'t, 's>, StoreError> {
        let batch = store.log_batch()?;
        Ok(TrackerBatch {
            tracker: self,
            batch: Some(batch),
        })
    }

    /// Whether [`Tracker::apply_without_store`] may take the next lines: a
    /// [`Tracker::sole_writer`] holds every message still queued in memory (within its limits),
    /// and so needs the store for nothing until it writes them.
    pub fn tracks_without_store(&self) -> bool {
        self.sole_writer
            && self.hold_open
            && !self.holds_too_much()
            && self
                .messages
                .values()
                .all(|r| matches!(r, MessageRef::New(_)))
    }

    /// [`TrackerBatch::apply_parsed`] without the store, on the parsing thread of an import;
    /// [`Tracker::take_rows`] then hands what is complete to the thread that writes. Only while
    /// [`Tracker::tracks_without_store`].
    pub fn apply_without_store(
        &mut self,
        config: &Config,
        line: ParsedLine,
        raw_since: i64,
        on_unknown: impl FnOnce(&str),
    ) -> Result<(), StoreError> {
        self.apply_line(None, config, line, raw_since, on_unknown)
    }

    /// The rows of a commit after [`Tracker::apply_without_store`], into `rows` (emptied first:
    /// rows written before come back to serve again, their buffers freed where they were
    /// allocated): the messages that left the queue and what else the lines said. With `all`,
    /// every message, and the tracker forgets those still queued: the end of an import.
    pub fn take_rows(&mut self, all: bool, rows: &mut TrackedRows) {
        self.take_new(!all, rows);
        if all {
            self.messages.clear();
            self.recipients.clear();
        }
    }

    /// Lowers the limits of what a [`Tracker::sole_writer`] holds in memory: messages still
    /// queued, and their attempts.
    #[cfg(test)]
    pub(crate) fn hold_at_most(&mut self, messages: usize, attempts: usize) {
        self.max_held = (messages, attempts);
    }

    fn holds_too_much(&self) -> bool {
        self.new.len() > self.max_held.0 || self.new_attempts.len() > self.max_held.1
    }

    fn apply_line(
        &mut self,
        batch: Option<&LogBatch>,
        config: &Config,
        line: ParsedLine,
        raw_since: i64,
        on_unknown: impl FnOnce(&str),
    ) -> Result<(), StoreError> {
        let stats = &mut self.stats;
        stats.lines += 1;
        match line.outcome {
            ParseOutcome::Ignored(_) => stats.ignored += 1,
            ParseOutcome::Unknown => {
                stats.unknown += 1;
                on_unknown(line.line);
            }
            ParseOutcome::Event(header, event) => {
                stats.events += 1;
                let at = header.time.unix_timestamp();
                if at >= raw_since {
                    self.new_raw_lines.push(NewRawLine {
                        at,
                        queue_id: event.queue_id().map(str::to_owned),
                        line: line.line.to_owned(),
                    });
                    stats.raw_lines_kept += 1;
                }
                self.apply_event(batch, config, &header, event, line.category)?;
            }
        }
        Ok(())
    }

    /// Forgets what a rolled-back transaction wrote: the rows the caches point at are gone.
    fn forget_uncommitted(&mut self) {
        self.new.clear();
        self.new_attempts.clear();
        self.new_notices.clear();
        self.new_rejects.clear();
        self.new_raw_lines.clear();
        self.stats = IngestStats::default();
        self.messages.clear();
        self.recipients.clear();
    }

    /// Writes the messages first seen in this batch (with `hold_open`, only those that left the
    /// queue; the others stay in `new` for the next batch) and the rest of the batch's rows,
    /// then remembers the rows of messages still queued.
    fn write_new(&mut self, batch: &LogBatch, hold_open: bool) -> Result<IngestStats, StoreError> {
        let mut rows = TrackedRows::default();
        let still_queued = self.take_new(hold_open, &mut rows);
        let ids = rows.write(batch)?;
        // Found through the caches in later batches. (Should the commit fail, the caller clears
        // them again.)
        for index in still_queued {
            let (m, id) = (&rows.messages[index], ids[index]);
            self.messages
                .insert(m.queue_id.clone(), MessageRef::Stored(id));
            for rcpt in &m.recipients {
                self.recipients
                    .insert((id, rcpt.address.to_ascii_lowercase()), rcpt.row);
            }
        }
        Ok(rows.stats)
    }

    /// Moves the messages first seen since the last commit (with `hold_open`, only those that
    /// left the queue), their attempts and notices, and the rest of the batch's rows out, to be
    /// written. Messages held back move to the front of `new`. Also returns which of the
    /// messages taken are still queued: their queue ids point at them until written.
    fn take_new(&mut self, hold_open: bool, rows: &mut TrackedRows) -> Vec<usize> {
        rows.clear();
        // At most all of them: one allocation instead of a doubling series.
        rows.messages.reserve(self.new.len());
        rows.attempts.reserve(self.new_attempts.len());
        let mut place = Vec::with_capacity(self.new.len());
        let (mut index, mut held) = (0, 0);
        let mut still_queued = Vec::new();
        let messages = &mut self.messages;
        let taken = self.new.extract_if(.., |m| {
            // A queue id reused after its message left the queue names the newer message.
            let current = messages.get_mut(&m.queue_id);
            let named = current
                .as_ref()
                .is_some_and(|r| **r == MessageRef::New(index));
            index += 1;
            if hold_open && m.removed_at.is_none() {
                if let Some(r) = current
                    && named
                {
                    *r = MessageRef::New(held);
                }
                place.push(Place::Held(held));
                held += 1;
                false
            } else {
                let taken = index - 1 - held;
                if named {
                    still_queued.push(taken);
                }
                place.push(Place::Taken(taken));
                true
            }
        });
        rows.messages.extend(taken);
        take_placed(&mut self.new_attempts, &mut rows.attempts, &place, |a| {
            &mut a.message
        });
        take_placed(&mut self.new_notices, &mut rows.notices, &place, |n| {
            &mut n.message
        });
        rows.rejects.append(&mut self.new_rejects);
        rows.raw_lines.append(&mut self.new_raw_lines);
        rows.stats = std::mem::take(&mut self.stats);
        still_queued
    }

    fn message(
        &mut self,
        batch: Option<&LogBatch>,
        queue_id: &str,
        header: &Header,
    ) -> Result<MessageRef, StoreError> {
        if let Some(&r) = self.messages.get(queue_id) {
            return Ok(r);
        }
        if self.messages.len() >= MAX_CACHED_QUEUE_IDS {
            // This batch's new messages (and held ones) exist nowhere else yet.
            let cached = self.messages.len();
            self.messages.retain(|_, r| matches!(r, MessageRef::New(_)));
            self.recipients.clear();
            if self.messages.len() < cached {
                // Stored messages are now only in the store.
                self.sole_writer = false;
            }
        }
        let at = header.time.unix_timestamp();
        let stored = match self.sole_writer {
            // Every open message this tracker stored is in `messages`, and no one else's.
            true => None,
            false => stored(batch)?.find_message(queue_id, at)?,
        };
        let r = match stored {
            Some(id) => MessageRef::Stored(id),
            None => {
                self.new.push(NewMessage {
                    queue_id: queue_id.to_owned(),
                    arrived_at: at,
                    mta_host: header.host.clone(),
                    fields: MessageFields::default(),
                    removed_at: None,
                    recipients: Vec::new(),
                });
                MessageRef::New(self.new.len() - 1)
            }
        };
        self.messages.insert(queue_id.to_owned(), r);
        Ok(r)
    }

    /// `LogBatch::set_message_fields`, on the store or on a new message.
    fn set_fields(
        &mut self,
        batch: Option<&LogBatch>,
        message: MessageRef,
        fields: &LogMessageFields,
    ) -> Result<(), StoreError> {
        match message {
            MessageRef::Stored(id) => stored(batch)?.set_message_fields(id, fields),
            MessageRef::New(index) => {
                self.new[index].fields.merge(fields);
                Ok(())
            }
        }
    }

    fn apply_event(
        &mut self,
        batch: Option<&LogBatch>,
        config: &Config,
        header: &Header,
        event: Event,
        category: Option<Category>,
    ) -> Result<(), StoreError> {
        let at = header.time.unix_timestamp();
        match event {
            Event::Client {
                queue_id,
                client_host,
                client_ip,
                sasl_username,
                ..
            } => {
                let fields = LogMessageFields {
                    client_host: Some(&client_host),
                    client_ip: Some(&client_ip),
                    sasl_user: sasl_username.as_deref(),
                    ..Default::default()
                };
                self.set_fields_of(batch, &queue_id, header, &fields)?;
            }
            Event::MessageId {
                queue_id,
                message_id,
            } => {
                let fields = LogMessageFields {
                    message_id: Some(&message_id),
                    ..Default::default()
                };
                self.set_fields_of(batch, &queue_id, header, &fields)?;
            }
            Event::Queued {
                queue_id,
                from,
                size,
                nrcpt,
                message_id,
                client_host,
                client_ip,
                ..
            } => {
                // A message the milter never saw still gets its sender's mode and receipts.
                let policy = config.sender_policy(&from, None);
                let fields = LogMessageFields {
                    sender: Some(&from),
                    size,
                    nrcpt,
                    message_id: message_id.as_deref(),
                    client_host: client_host.as_deref(),
                    client_ip: client_ip.as_deref(),
                    sasl_user: None,
                    mode: Some(&policy.mode),
                    receipts: Some(policy.receipts),
                    handed_to: None,
                };
                self.set_fields_of(batch, &queue_id, header, &fields)?;
            }
            Event::Delivery(delivery) => {
                let m = self.message(batch, &delivery.queue_id, header)?;
                match &delivery.handed_to {
                    // A hop on this host: the message goes on under the next queue id, whose
                    // deliveries are its own; this one is neither listed nor counted.
                    Some(next) => {
                        let fields = LogMessageFields {
                            handed_to: Some(next),
                            ..Default::default()
                        };
                        self.set_fields(batch, m, &fields)?;
                    }
                    None => self.record_delivery(batch, m, at, delivery, category)?,
                }
            }
            Event::Expired {
                queue_id, reason, ..
            } => self.expire(batch, &queue_id, header, &reason)?,
            Event::Removed { queue_id } => self.remove(batch, &queue_id, header)?,
            Event::Notification {
                queue_id,
                kind,
                notice_queue_id,
            } => self.mta_notice(batch, &queue_id, header, kind, notice_queue_id)?,
            Event::Reject(reject) => self.reject(batch, header, reject, category)?,
            Event::SaslLogin {
                queue_id: Some(queue_id),
                username,
                ..
            } => {
                let fields = LogMessageFields {
                    sasl_user: Some(&username),
                    ..Default::default()
                };
                self.set_fields_of(batch, &queue_id, header, &fields)?;
            }
            Event::SaslLogin { queue_id: None, .. } | Event::Other { .. } => {}
        }
        Ok(())
    }

    /// The MTA queued a notice of its own about the message (a bounce, a delay warning).
    fn mta_notice(
        &mut self,
        batch: Option<&LogBatch>,
        queue_id: &str,
        header: &Header,
        kind: crate::maillog::NotificationKind,
        notice_queue_id: Option<String>,
    ) -> Result<(), StoreError> {
        let at = header.time.unix_timestamp();
        let kind = format!("{kind:?}");
        match self.message(batch, queue_id, header)? {
            MessageRef::Stored(id) => {
                stored(batch)?.add_mta_notice(id, at, &kind, notice_queue_id.as_deref())?;
            }
            MessageRef::New(message) => self.new_notices.push(NewNotice {
                message,
                at,
                kind,
                notice_queue_id,
            }),
        }
        Ok(())
    }

    /// Fills in fields of the message `queue_id` names.
    fn set_fields_of(
        &mut self,
        batch: Option<&LogBatch>,
        queue_id: &str,
        header: &Header,
        fields: &LogMessageFields,
    ) -> Result<(), StoreError> {
        let m = self.message(batch, queue_id, header)?;
        self.set_fields(batch, m, fields)
    }

    /// The MTA gave up on the message: every recipient still pending gets an `expired`
    /// attempt.
    fn expire(
        &mut self,
        batch: Option<&LogBatch>,
        queue_id: &str,
        header: &Header,
        reason: &str,
    ) -> Result<(), StoreError> {
        let expiry = FinalAttempt {
            at: header.time.unix_timestamp(),
            status: DeliveryStatus::Expired,
            dsn: Some("4.4.7"),
            smtp_code: None,
            reply: reason,
            stage: None,
            category: Category::MessageExpired,
        };
        let m = self.message(batch, queue_id, header)?;
        self.finish_pending(batch, m, &expiry, Finish::Attempted)?;
        // Counted per message, as the MTA logs it (one `status=expired` line).
        self.stats.expired += 1;
        Ok(())
    }

    /// A refused SMTP command; one that refused a queued message as a whole ends it.
    fn reject(
        &mut self,
        batch: Option<&LogBatch>,
        header: &Header,
        reject: Reject,
        category: Option<Category>,
    ) -> Result<(), StoreError> {
        let category = category.unwrap_or(Category::Other);
        self.stats.rejects += u64::from(header.repeat.max(1));
        if reject.ends_message()
            && let Some(queue_id) = reject.queue_id.as_deref()
        {
            self.finish_rejected(batch, queue_id, header, &reject, category)?;
        }
        self.new_rejects.push(NewReject {
            at: header.time.unix_timestamp(),
            mta_host: header.host.clone(),
            reject,
            category,
        });
        Ok(())
    }

    /// The message left the MTA's queue: its queue id may be reused from now on.
    fn remove(
        &mut self,
        batch: Option<&LogBatch>,
        queue_id: &str,
        header: &Header,
    ) -> Result<(), StoreError> {
        let at = header.time.unix_timestamp();
        match self.message(batch, queue_id, header)? {
            MessageRef::Stored(id) => {
                stored(batch)?.mark_removed(id, at)?;
                self.recipients.retain(|(message, _), _| *message != id);
            }
            MessageRef::New(index) => {
                let m = &mut self.new[index];
                m.removed_at = m.removed_at.or(Some(at));
            }
        }
        self.messages.remove(queue_id);
        Ok(())
    }

    /// A message refused as a whole ([`Reject::ends_message`]) was not delivered to anyone:
    /// each recipient not yet final (the one the line names, and any the milter recorded) is
    /// bounced with the refusal's reply, and the message leaves the queue — the MTA logs no
    /// `removed` for it. No attempt is recorded: nothing was attempted, and the refusal counts
    /// once, as a rejected command (statistics, import summary).
    fn finish_rejected(
        &mut self,
        batch: Option<&LogBatch>,
        queue_id: &str,
        header: &Header,
        r: &Reject,
        category: Category,
    ) -> Result<(), StoreError> {
        let refusal = FinalAttempt {
            at: header.time.unix_timestamp(),
            status: DeliveryStatus::Bounced,
            dsn: r.dsn.as_deref(),
            smtp_code: r.code,
            reply: &r.reason,
            stage: Some(r.stage),
            category,
        };
        let m = self.message(batch, queue_id, header)?;
        if let Some(to) = r.to.as_deref() {
            match m {
                MessageRef::Stored(id) => {
                    stored(batch)?.recipient_for(id, to, None)?;
                }
                MessageRef::New(index) => {
                    self.new_recipient(index, to, None);
                }
            }
        }
        self.finish_pending(batch, m, &refusal, Finish::Refused)?;
        self.remove(batch, queue_id, header)
    }

    /// Every recipient of the message not yet final gets `last` (`LogBatch::finish_pending`
    /// or `refuse_pending`, on the store or on a new message).
    fn finish_pending(
        &mut self,
        batch: Option<&LogBatch>,
        message: MessageRef,
        last: &FinalAttempt,
        how: Finish,
    ) -> Result<(), StoreError> {
        let index = match (message, how) {
            (MessageRef::Stored(id), Finish::Attempted) => {
                return stored(batch)?.finish_pending(id, &last.row()).map(drop);
            }
            (MessageRef::Stored(id), Finish::Refused) => {
                return stored(batch)?.refuse_pending(id, &last.row()).map(drop);
            }
            (MessageRef::New(index), _) => index,
        };
        for (recipient, r) in self.new[index].recipients.iter_mut().enumerate() {
            if r.status.is_final() {
                continue;
            }
            let attempt = last.new_attempt(index, recipient);
            r.record(&attempt);
            if how == Finish::Attempted {
                self.new_attempts.push(attempt);
            } else {
                // The state without the attempt, as `refuse_pending` leaves it.
                r.attempts -= 1;
            }
        }
        Ok(())
    }

    /// `LogBatch::recipient_for` on a new message: matched on the address, then on the
    /// original address (ASCII case-insensitively, as SQLite's NOCASE); created when new.
    fn new_recipient(&mut self, message: usize, to: &str, orig_to: Option<&str>) -> usize {
        let recipients = &mut self.new[message].recipients;
        if let Some(i) = recipients
            .iter()
            .position(|r| r.address.eq_ignore_ascii_case(to))
        {
            return i;
        }
        if let Some(orig) = orig_to
            && let Some(i) = recipients
                .iter()
                .position(|r| r.address.eq_ignore_ascii_case(orig))
        {
            let r = &mut recipients[i];
            r.orig_to = Some(std::mem::replace(&mut r.address, to.to_owned()));
            return i;
        }
        recipients.push(NewRecipientState {
            address: to.to_owned(),
            orig_to: orig_to.map(str::to_owned),
            status: RecipientStatus::Pending,
            dsn: None,
            reply: None,
            category: None,
            attempts: 0,
            last_attempt_at: None,
            final_at: None,
            row: 0,
        });
        recipients.len() - 1
    }

    fn record_delivery(
        &mut self,
        batch: Option<&LogBatch>,
        message: MessageRef,
        at: i64,
        d: Delivery,
        category: Option<Category>,
    ) -> Result<(), StoreError> {
        let category = match d.status {
            DeliveryStatus::Sent => None,
            DeliveryStatus::Expired => Some(Category::MessageExpired),
            DeliveryStatus::Deferred | DeliveryStatus::Bounced => {
                Some(category.unwrap_or(Category::Other))
            }
        };
        for to in d.recipients() {
            match message {
                MessageRef::Stored(id) => {
                    let key = (id, to.to_ascii_lowercase());
                    let recipient = match self.recipients.get(&key) {
                        Some(&r) => r,
                        None => {
                            let r = stored(batch)?.recipient_for(id, to, d.orig_to.as_deref())?;
                            self.recipients.insert(key, r);
                            r
                        }
                    };
                    stored(batch)?.record_attempt(
                        recipient,
                        &AttemptRow {
                            at,
                            status: d.status,
                            relay_host: d.relay_host.as_deref(),
                            relay_ip: d.relay_ip.as_deref(),
                            relay_port: d.relay_port,
                            dsn: d.dsn.as_deref(),
                            smtp_code: d.smtp_code,
                            reply: &d.reply,
                            stage: d.stage.map(SmtpStage::as_str),
                            delay: d.delay_secs,
                            delays: d.delays.as_deref(),
                            category,
                        },
                    )?;
                }
                MessageRef::New(index) => {
                    let recipient = self.new_recipient(index, to, d.orig_to.as_deref());
                    let attempt = NewAttempt {
                        message: index,
                        recipient,
                        at,
                        status: d.status,
                        relay_host: d.relay_host.clone(),
                        relay_ip: d.relay_ip.clone(),
                        relay_port: d.relay_port,
                        dsn: d.dsn.clone(),
                        smtp_code: d.smtp_code,
                        reply: d.reply.clone(),
                        stage: d.stage.map(SmtpStage::as_str),
                        delay: d.delay_secs,
                        delays: d.delays.clone(),
                        category,
                    };
                    self.new[index].recipients[recipient].record(&attempt);
                    self.new_attempts.push(attempt);
                }
            }
            match d.status {
                DeliveryStatus::Sent => self.stats.sent += 1,
                DeliveryStatus::Deferred => self.stats.deferred += 1,
                DeliveryStatus::Bounced => self.stats.bounced += 1,
                DeliveryStatus::Expired => self.stats.expired += 1,
            }
        }
        Ok(())
    }
}

fn reject_source(r: &Reject) -> &'static str {
    use crate::maillog::RejectSource::*;
    match r.source {
        Smtpd => "smtpd",
        Postscreen => "postscreen",
        Milter => "milter",
        Cleanup => "cleanup",
        Ruleset => "ruleset",
        SendmailRcpt => "sendmail",
    }
}

#[cfg(test)]
pub(crate) mod tests;
