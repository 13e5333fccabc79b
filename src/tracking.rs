//! Delivery tracking: turns the MTA log's typed events into store writes — messages matched on
//! queue id, one attempt per recipient and try, final states, bounce categories, rejects and raw
//! lines. Used by the live follower and by `mailtrail import`.

use crate::{
    bounce::{self, Category, Classifier, Failure},
    config::Config,
    maillog::{Delivery, DeliveryStatus, Event, Header, ParseOutcome, Parser, Reject, SmtpStage},
    store::{
        AttemptRow, LogBatch, LogMessageFields, NewLogMessage, NewRecipient, RejectRow, Store,
        StoreError,
    },
};
use serde::Serialize;
use std::collections::HashMap;

/// Queue ids remembered between batches; past this the cache starts over (the store has all).
const MAX_CACHED_QUEUE_IDS: usize = 500_000;
/// Distinct failures whose category is remembered; reply texts repeat a lot.
const MAX_CACHED_CATEGORIES: usize = 100_000;

/// What a run of lines contained.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IngestStats {
    pub lines: u64,
    pub events: u64,
    /// Lines of mail programs that no grammar recognised: counted, kept raw, never fatal.
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
    classifier: Classifier,
    /// Queue id → message, for messages not yet removed from the queue.
    messages: HashMap<String, MessageRef>,
    /// (message row, address) → recipient row.
    recipients: HashMap<(i64, String), i64>,
    /// What the current batch says about messages it saw first, in the order first seen.
    new: Vec<NewMessage>,
    /// Attempts on recipients of `new`, in log order.
    new_attempts: Vec<NewAttempt>,
    /// MTA notices about `new` messages, in log order.
    new_notices: Vec<NewNotice>,
    classified: HashMap<FailureKey, Category>,
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
        first(&mut self.message_id, f.message_id);
        first(&mut self.client_host, f.client_host);
        first(&mut self.client_ip, f.client_ip);
        first(&mut self.sasl_user, f.sasl_user);
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
        }
    }
}

/// A recipient of a [`NewMessage`], with the state `LogBatch::record_attempt` would give it.
struct NewRecipientState {
    address: String,
    orig_to: Option<String>,
    status: &'static str,
    dsn: Option<String>,
    reply: Option<String>,
    category: Option<&'static str>,
    attempts: i64,
    last_attempt_at: Option<i64>,
    final_at: Option<i64>,
    /// Set when written.
    row: i64,
}

impl NewRecipientState {
    /// The state change of `record_attempt`'s UPDATE: a final state is never overwritten by a
    /// later deferral logged out of order.
    fn record(&mut self, a: &NewAttempt) {
        let is_final = a.status != "deferred";
        self.attempts += 1;
        self.last_attempt_at = Some(self.last_attempt_at.map_or(a.at, |l| l.max(a.at)));
        if matches!(self.status, "pending" | "deferred") || is_final {
            self.status = a.status;
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
    status: &'static str,
    relay_host: Option<String>,
    relay_ip: Option<String>,
    relay_port: Option<u16>,
    dsn: Option<String>,
    smtp_code: Option<u16>,
    reply: String,
    stage: Option<&'static str>,
    delay: Option<f64>,
    delays: Option<String>,
    category: Option<&'static str>,
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

struct NewNotice {
    message: usize,
    at: i64,
    kind: String,
    notice_queue_id: Option<String>,
}

impl Tracker {
    pub fn new(parser: Parser, classifier: Classifier) -> Tracker {
        Tracker {
            parser,
            classifier,
            messages: HashMap::new(),
            recipients: HashMap::new(),
            new: Vec::new(),
            new_attempts: Vec::new(),
            new_notices: Vec::new(),
            classified: HashMap::new(),
        }
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
        let mut stats = IngestStats::default();
        let batch = store.log_batch()?;
        let result = (|| {
            for line in lines {
                stats.lines += 1;
                match self.parser.parse(line) {
                    ParseOutcome::Ignored(_) => stats.ignored += 1,
                    ParseOutcome::Unknown => {
                        stats.unknown += 1;
                        on_unknown(line);
                    }
                    ParseOutcome::Event(header, event) => {
                        stats.events += 1;
                        let at = header.time.unix_timestamp();
                        if at >= raw_since {
                            batch.insert_raw_line(at, event.queue_id(), line)?;
                            stats.raw_lines_kept += 1;
                        }
                        self.apply_event(&batch, config, &header, event, &mut stats)?;
                    }
                }
            }
            self.write_new(&batch)?;
            if let Some(p) = &position {
                batch.save_position(p.source, &p.position)?;
            }
            Ok(())
        })();
        self.new.clear();
        self.new_attempts.clear();
        self.new_notices.clear();
        match result.and_then(|()| batch.commit()) {
            Ok(()) => Ok(stats),
            Err(e) => {
                // The rows the caches point at were rolled back.
                self.messages.clear();
                self.recipients.clear();
                Err(e)
            }
        }
    }

    /// Writes the messages first seen in this batch, then remembers their rows.
    fn write_new(&mut self, batch: &LogBatch) -> Result<(), StoreError> {
        let mut ids = Vec::with_capacity(self.new.len());
        for m in &mut self.new {
            let id = batch.insert_log_message(&NewLogMessage {
                queue_id: &m.queue_id,
                arrived_at: m.arrived_at,
                mta_host: Some(&m.mta_host),
                fields: m.fields.as_fields(),
                removed_at: m.removed_at,
            })?;
            for (position, r) in m.recipients.iter_mut().enumerate() {
                r.row = batch.insert_recipient(
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
        for a in &self.new_attempts {
            let recipient = self.new[a.message].recipients[a.recipient].row;
            batch.insert_attempt(recipient, &a.row())?;
        }
        for n in &self.new_notices {
            batch.add_mta_notice(ids[n.message], n.at, &n.kind, n.notice_queue_id.as_deref())?;
        }
        // Messages still queued are found through the caches in later batches. (Should the
        // commit fail, `apply` clears the caches again.)
        for (index, m) in self.new.iter().enumerate() {
            let id = ids[index];
            if let Some(r) = self.messages.get_mut(&m.queue_id)
                && *r == MessageRef::New(index)
            {
                *r = MessageRef::Stored(id);
                for rcpt in &m.recipients {
                    self.recipients
                        .insert((id, rcpt.address.to_ascii_lowercase()), rcpt.row);
                }
            }
        }
        Ok(())
    }

    fn message(
        &mut self,
        batch: &LogBatch,
        queue_id: &str,
        header: &Header,
    ) -> Result<MessageRef, StoreError> {
        if let Some(&r) = self.messages.get(queue_id) {
            return Ok(r);
        }
        if self.messages.len() >= MAX_CACHED_QUEUE_IDS {
            // This batch's new messages exist nowhere else yet.
            self.messages.retain(|_, r| matches!(r, MessageRef::New(_)));
            self.recipients.clear();
        }
        let at = header.time.unix_timestamp();
        let r = match batch.find_message(queue_id, at)? {
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
        batch: &LogBatch,
        message: MessageRef,
        fields: &LogMessageFields,
    ) -> Result<(), StoreError> {
        match message {
            MessageRef::Stored(id) => batch.set_message_fields(id, fields),
            MessageRef::New(index) => {
                self.new[index].fields.merge(fields);
                Ok(())
            }
        }
    }

    fn classify(&mut self, failure: &Failure, stage: Option<SmtpStage>) -> Category {
        let key: FailureKey = (
            failure.dsn.map(str::to_owned),
            failure.code,
            stage,
            failure.text.to_owned(),
        );
        if let Some(&category) = self.classified.get(&key) {
            return category;
        }
        if self.classified.len() >= MAX_CACHED_CATEGORIES {
            self.classified.clear();
        }
        let category = self.classifier.classify(failure);
        self.classified.insert(key, category);
        category
    }

    fn apply_event(
        &mut self,
        batch: &LogBatch,
        config: &Config,
        header: &Header,
        event: Event,
        stats: &mut IngestStats,
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
                let m = self.message(batch, &queue_id, header)?;
                let fields = LogMessageFields {
                    client_host: Some(&client_host),
                    client_ip: Some(&client_ip),
                    sasl_user: sasl_username.as_deref(),
                    ..Default::default()
                };
                self.set_fields(batch, m, &fields)?;
            }
            Event::MessageId {
                queue_id,
                message_id,
            } => {
                let m = self.message(batch, &queue_id, header)?;
                let fields = LogMessageFields {
                    message_id: Some(&message_id),
                    ..Default::default()
                };
                self.set_fields(batch, m, &fields)?;
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
                let m = self.message(batch, &queue_id, header)?;
                // A message the milter never saw still gets its sender's mode.
                let mode = config.sender_policy(&from, None).mode;
                let fields = LogMessageFields {
                    sender: Some(&from),
                    size,
                    nrcpt,
                    message_id: message_id.as_deref(),
                    client_host: client_host.as_deref(),
                    client_ip: client_ip.as_deref(),
                    sasl_user: None,
                    mode: Some(&mode),
                };
                self.set_fields(batch, m, &fields)?;
            }
            Event::Delivery(delivery) => {
                let m = self.message(batch, &delivery.queue_id, header)?;
                self.record_delivery(batch, m, at, delivery, stats)?;
            }
            Event::Expired {
                queue_id, reason, ..
            } => {
                let category = Category::MessageExpired.as_str();
                match self.message(batch, &queue_id, header)? {
                    MessageRef::Stored(id) => {
                        batch.expire_pending(id, at, &reason, category)?;
                    }
                    MessageRef::New(index) => self.expire_new(index, at, &reason, category),
                }
                // Counted per message, as the MTA logs it (one `status=expired` line).
                stats.expired += 1;
            }
            Event::Removed { queue_id } => {
                match self.message(batch, &queue_id, header)? {
                    MessageRef::Stored(id) => {
                        batch.mark_removed(id, at)?;
                        self.recipients.retain(|(message, _), _| *message != id);
                    }
                    MessageRef::New(index) => {
                        let m = &mut self.new[index];
                        m.removed_at = m.removed_at.or(Some(at));
                    }
                }
                // The queue id may be reused from now on.
                self.messages.remove(&queue_id);
            }
            Event::Notification {
                queue_id,
                kind,
                notice_queue_id,
            } => {
                let kind = format!("{kind:?}");
                match self.message(batch, &queue_id, header)? {
                    MessageRef::Stored(id) => {
                        batch.add_mta_notice(id, at, &kind, notice_queue_id.as_deref())?;
                    }
                    MessageRef::New(message) => self.new_notices.push(NewNotice {
                        message,
                        at,
                        kind,
                        notice_queue_id,
                    }),
                }
            }
            Event::Reject(reject) => {
                self.record_reject(batch, header, &reject)?;
                stats.rejects += u64::from(header.repeat.max(1));
            }
            Event::SaslLogin {
                queue_id: Some(queue_id),
                username,
                ..
            } => {
                let m = self.message(batch, &queue_id, header)?;
                let fields = LogMessageFields {
                    sasl_user: Some(&username),
                    ..Default::default()
                };
                self.set_fields(batch, m, &fields)?;
            }
            Event::SaslLogin { queue_id: None, .. } | Event::Other { .. } => {}
        }
        Ok(())
    }

    /// `LogBatch::expire_pending` on a new message: every recipient not yet final gets an
    /// `expired` attempt.
    fn expire_new(&mut self, message: usize, at: i64, reason: &str, category: &'static str) {
        for (recipient, r) in self.new[message].recipients.iter_mut().enumerate() {
            if !matches!(r.status, "pending" | "deferred") {
                continue;
            }
            let attempt = NewAttempt {
                message,
                recipient,
                at,
                status: "expired",
                relay_host: None,
                relay_ip: None,
                relay_port: None,
                dsn: Some("4.4.7".to_owned()),
                smtp_code: None,
                reply: reason.to_owned(),
                stage: None,
                delay: None,
                delays: None,
                category: Some(category),
            };
            r.record(&attempt);
            self.new_attempts.push(attempt);
        }
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
            status: "pending",
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
        batch: &LogBatch,
        message: MessageRef,
        at: i64,
        d: Delivery,
        stats: &mut IngestStats,
    ) -> Result<(), StoreError> {
        let category = match d.status {
            DeliveryStatus::Sent => None,
            DeliveryStatus::Expired => Some(Category::MessageExpired),
            DeliveryStatus::Deferred | DeliveryStatus::Bounced => Some(self.classify(
                &Failure {
                    dsn: d.dsn.as_deref(),
                    code: d.smtp_code,
                    text: &d.reply,
                    stage: d.stage.map(bounce_stage),
                },
                d.stage,
            )),
        };
        let category = category.map(Category::as_str);
        for to in d.recipients() {
            match message {
                MessageRef::Stored(id) => {
                    let key = (id, to.to_ascii_lowercase());
                    let recipient = match self.recipients.get(&key) {
                        Some(&r) => r,
                        None => {
                            let r = batch.recipient_for(id, to, d.orig_to.as_deref())?;
                            self.recipients.insert(key, r);
                            r
                        }
                    };
                    batch.record_attempt(
                        recipient,
                        &AttemptRow {
                            at,
                            status: d.status.as_str(),
                            relay_host: d.relay_host.as_deref(),
                            relay_ip: d.relay_ip.as_deref(),
                            relay_port: d.relay_port,
                            dsn: d.dsn.as_deref(),
                            smtp_code: d.smtp_code,
                            reply: &d.reply,
                            stage: d.stage.map(stage_str),
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
                        status: d.status.as_str(),
                        relay_host: d.relay_host.clone(),
                        relay_ip: d.relay_ip.clone(),
                        relay_port: d.relay_port,
                        dsn: d.dsn.clone(),
                        smtp_code: d.smtp_code,
                        reply: d.reply.clone(),
                        stage: d.stage.map(stage_str),
                        delay: d.delay_secs,
                        delays: d.delays.clone(),
                        category,
                    };
                    self.new[index].recipients[recipient].record(&attempt);
                    self.new_attempts.push(attempt);
                }
            }
            match d.status {
                DeliveryStatus::Sent => stats.sent += 1,
                DeliveryStatus::Deferred => stats.deferred += 1,
                DeliveryStatus::Bounced => stats.bounced += 1,
                DeliveryStatus::Expired => stats.expired += 1,
            }
        }
        Ok(())
    }

    fn record_reject(
        &mut self,
        batch: &LogBatch,
        header: &Header,
        r: &Reject,
    ) -> Result<(), StoreError> {
        let category = self.classify(
            &Failure {
                dsn: r.dsn.as_deref(),
                code: r.code,
                text: &r.reason,
                stage: Some(bounce_stage(r.stage)),
            },
            Some(r.stage),
        );
        batch.insert_reject(&RejectRow {
            at: header.time.unix_timestamp(),
            mta_host: Some(&header.host),
            source: reject_source(r),
            code: r.code,
            dsn: r.dsn.as_deref(),
            client_host: r.client_host.as_deref(),
            client_ip: r.client_ip.as_deref(),
            sender: r.from.as_deref(),
            recipient: r.to.as_deref(),
            helo: r.helo.as_deref(),
            stage: Some(stage_str(r.stage)),
            reason: &r.reason,
            category: Some(category.as_str()),
        })
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

fn bounce_stage(stage: SmtpStage) -> bounce::SmtpStage {
    match stage {
        SmtpStage::Connect => bounce::SmtpStage::Connect,
        SmtpStage::Helo => bounce::SmtpStage::Helo,
        SmtpStage::MailFrom => bounce::SmtpStage::MailFrom,
        SmtpStage::RcptTo => bounce::SmtpStage::RcptTo,
        SmtpStage::Data => bounce::SmtpStage::Data,
        SmtpStage::EndOfData => bounce::SmtpStage::EndOfData,
        SmtpStage::Unknown => bounce::SmtpStage::Unknown,
    }
}

fn stage_str(stage: SmtpStage) -> &'static str {
    match stage {
        SmtpStage::Connect => "connect",
        SmtpStage::Helo => "helo",
        SmtpStage::MailFrom => "mail-from",
        SmtpStage::RcptTo => "rcpt-to",
        SmtpStage::Data => "data",
        SmtpStage::EndOfData => "end-of-data",
        SmtpStage::Unknown => "unknown",
    }
}
