//! Delivery tracking: turns the MTA log's typed events into store writes — messages matched on
//! queue id, one attempt per recipient and try, final states, bounce categories, rejects and raw
//! lines. Used by the live follower and by `mailtrail import`.

use crate::{
    bounce::{self, Category, Classifier, Failure},
    config::Config,
    maillog::{Delivery, DeliveryStatus, Event, Header, ParseOutcome, Parser, Reject, SmtpStage},
    store::{AttemptRow, LogBatch, LogMessageFields, RejectRow, Store, StoreError},
};
use serde::Serialize;
use std::collections::HashMap;

/// Queue ids remembered between batches; past this the cache starts over (the store has all).
const MAX_CACHED_QUEUE_IDS: usize = 500_000;

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
    /// Queue id → message row, for messages not yet removed from the queue.
    messages: HashMap<String, i64>,
    /// (message row, address) → recipient row.
    recipients: HashMap<(i64, String), i64>,
}

impl Tracker {
    pub fn new(parser: Parser, classifier: Classifier) -> Tracker {
        Tracker {
            parser,
            classifier,
            messages: HashMap::new(),
            recipients: HashMap::new(),
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
            if let Some(p) = &position {
                batch.save_position(p.source, &p.position)?;
            }
            Ok(())
        })();
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

    fn message(
        &mut self,
        batch: &LogBatch,
        queue_id: &str,
        header: &Header,
    ) -> Result<i64, StoreError> {
        if let Some(&id) = self.messages.get(queue_id) {
            return Ok(id);
        }
        if self.messages.len() >= MAX_CACHED_QUEUE_IDS {
            self.messages.clear();
            self.recipients.clear();
        }
        let id = batch.message_for(queue_id, header.time.unix_timestamp(), Some(&header.host))?;
        self.messages.insert(queue_id.to_owned(), id);
        Ok(id)
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
                let id = self.message(batch, &queue_id, header)?;
                let fields = LogMessageFields {
                    client_host: Some(&client_host),
                    client_ip: Some(&client_ip),
                    sasl_user: sasl_username.as_deref(),
                    ..Default::default()
                };
                batch.set_message_fields(id, &fields)?;
            }
            Event::MessageId {
                queue_id,
                message_id,
            } => {
                let id = self.message(batch, &queue_id, header)?;
                let fields = LogMessageFields {
                    message_id: Some(&message_id),
                    ..Default::default()
                };
                batch.set_message_fields(id, &fields)?;
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
                let id = self.message(batch, &queue_id, header)?;
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
                batch.set_message_fields(id, &fields)?;
            }
            Event::Delivery(delivery) => {
                let id = self.message(batch, &delivery.queue_id, header)?;
                self.record_delivery(batch, id, at, &delivery, stats)?;
            }
            Event::Expired {
                queue_id, reason, ..
            } => {
                let id = self.message(batch, &queue_id, header)?;
                batch.expire_pending(id, at, &reason, Category::MessageExpired.as_str())?;
                // Counted per message, as the MTA logs it (one `status=expired` line).
                stats.expired += 1;
            }
            Event::Removed { queue_id } => {
                let id = self.message(batch, &queue_id, header)?;
                batch.mark_removed(id, at)?;
                // The queue id may be reused from now on.
                self.messages.remove(&queue_id);
                self.recipients.retain(|(message, _), _| *message != id);
            }
            Event::Notification {
                queue_id,
                kind,
                notice_queue_id,
            } => {
                let id = self.message(batch, &queue_id, header)?;
                let kind = format!("{kind:?}");
                batch.add_mta_notice(id, at, &kind, notice_queue_id.as_deref())?;
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
                let id = self.message(batch, &queue_id, header)?;
                let fields = LogMessageFields {
                    sasl_user: Some(&username),
                    ..Default::default()
                };
                batch.set_message_fields(id, &fields)?;
            }
            Event::SaslLogin { queue_id: None, .. } | Event::Other { .. } => {}
        }
        Ok(())
    }

    fn record_delivery(
        &mut self,
        batch: &LogBatch,
        message: i64,
        at: i64,
        d: &Delivery,
        stats: &mut IngestStats,
    ) -> Result<(), StoreError> {
        let category = match d.status {
            DeliveryStatus::Sent => None,
            DeliveryStatus::Expired => Some(Category::MessageExpired),
            DeliveryStatus::Deferred | DeliveryStatus::Bounced => {
                Some(self.classifier.classify(&Failure {
                    dsn: d.dsn.as_deref(),
                    code: d.smtp_code,
                    text: &d.reply,
                    stage: d.stage.map(bounce_stage),
                }))
            }
        };
        for to in d.recipients() {
            let key = (message, to.to_ascii_lowercase());
            let recipient = match self.recipients.get(&key) {
                Some(&id) => id,
                None => {
                    let id = batch.recipient_for(message, to, d.orig_to.as_deref())?;
                    self.recipients.insert(key, id);
                    id
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
                    category: category.map(Category::as_str),
                },
            )?;
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
        &self,
        batch: &LogBatch,
        header: &Header,
        r: &Reject,
    ) -> Result<(), StoreError> {
        let category = self.classifier.classify(&Failure {
            dsn: r.dsn.as_deref(),
            code: r.code,
            text: &r.reason,
            stage: Some(bounce_stage(r.stage)),
        });
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
