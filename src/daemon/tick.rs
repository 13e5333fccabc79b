//! The policy tick: applies each sender's promise to every open message. `policy` decides
//! (purely), this module acts: it asks the MTA to retry or remove, records expiries and
//! notices in the store, and sends the due notices. Each notice is recorded as due before it is
//! sent and marked sent after, so a restart sends a due one and never repeats a sent one.

use crate::daemon::periodic::Periodic;
use crate::model::notice::NoticeKind;
use crate::{
    archive::Archive,
    config::{Config, DEFAULT_MODE},
    notify::{
        self, NoticeInput, NoticeTransport, OriginalMessage, RecipientReport, Report,
        SmtpSubmission,
    },
    policy::{self, Action, MessageState, RecipientState},
    store::{DueNotice, PolicyMessage, Store, StoreError},
};
use std::future::Future;
use time::{Duration, OffsetDateTime};
use tracing::{info, warn};

/// A notice that failed this many times is left for the operator (it stays in the store).
const MAX_NOTICE_ATTEMPTS: u32 = 20;

/// The MTA's queue, as the tick needs it (implemented by `crate::mta`).
pub trait QueueControl {
    /// Asks the MTA to try delivering the message now.
    fn retry(&self, queue_id: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// Removes the message from the queue so it is never delivered after its sender was told
    /// it failed.
    fn remove(&self, queue_id: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// What one tick did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    pub retries: usize,
    pub expired: usize,
    pub notices_recorded: usize,
    pub notices_sent: usize,
    pub notices_failed: usize,
}

/// Applies the policies at `now`. Store errors end the tick (the next one starts over); MTA and
/// transport failures are logged and retried at the next tick.
pub async fn run_once(
    config: &Config,
    store: &mut Store,
    queue: &impl QueueControl,
    transport: &impl NoticeTransport,
    now: OffsetDateTime,
) -> Result<TickReport, StoreError> {
    let mut report = TickReport::default();
    apply_policies(config, store, queue, now, &mut report).await?;
    send_due_notices(config, store, transport, now, &mut report).await?;
    Ok(report)
}

/// Decides what is due for every open message and does it: retry requests, expiries (the
/// message removed from the queue first), notices recorded as due.
async fn apply_policies(
    config: &Config,
    store: &mut Store,
    queue: &impl QueueControl,
    now: OffsetDateTime,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let longest = config.longest_give_up_after();
    // A day of slack: a tick that was down for a while still expires what it should.
    let since = now - longest - Duration::days(1);
    for message in store.policy_messages(since)? {
        if !message.seen_in_log {
            continue;
        }
        let policy = config
            .policy(&message.mode)
            .or_else(|| config.policy(DEFAULT_MODE))
            .cloned()
            .unwrap_or_else(crate::config::Policy::normal);
        let qid = message.queue_id.as_deref().unwrap_or("NOQUEUE");
        for action in policy::decide(&state_of(&message), &policy, now) {
            match action {
                Action::RetryNow => {
                    if let Some(queue_id) = message.queue_id.as_deref().filter(|_| !message.removed)
                    {
                        if let Err(e) = queue.retry(queue_id).await {
                            warn!("{qid}: retry request failed: {e}");
                        }
                        report.retries += 1;
                    }
                    // Recorded even when the request failed: the next try is one interval later.
                    store.set_retry_requested(message.id, now)?;
                }
                Action::SendWarning { waiting } => {
                    if store.record_notice(message.id, NoticeKind::Warning, &waiting, now)? {
                        report.notices_recorded += 1;
                    }
                }
                Action::Expire { failed, notify } => {
                    if let Some(queue_id) = message.queue_id.as_deref().filter(|_| !message.removed)
                        && let Err(e) = queue.remove(queue_id).await
                    {
                        // Never tell the sender it failed while the MTA may still deliver it.
                        warn!(
                            "{qid}: cannot remove the expired message from the queue, retrying: {e}"
                        );
                        continue;
                    }
                    let reason = format!(
                        "Message could not be delivered for {}",
                        humantime::format_duration(policy.give_up_after)
                    );
                    store.expire_message(message.id, now, &reason)?;
                    report.expired += 1;
                    info!(
                        "{qid}: expired after {}",
                        humantime::format_duration(policy.give_up_after)
                    );
                    if notify
                        && store.record_notice(message.id, NoticeKind::Expiry, &failed, now)?
                    {
                        report.notices_recorded += 1;
                    }
                }
                Action::SendReceipt { delivered } => {
                    if store.record_notice(message.id, NoticeKind::Receipt, &delivered, now)? {
                        report.notices_recorded += 1;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Builds and sends each notice recorded as due, marking it sent once the MTA took it.
async fn send_due_notices(
    config: &Config,
    store: &mut Store,
    transport: &impl NoticeTransport,
    now: OffsetDateTime,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let archive = Archive::open_existing(&config.archive.dir);
    for due in store.due_notices()? {
        if due.attempts >= MAX_NOTICE_ATTEMPTS {
            continue;
        }
        let Some(message) = store.policy_message(due.message)? else {
            continue;
        };
        let qid = message.queue_id.clone().unwrap_or_else(|| "NOQUEUE".into());
        let built = notice_input(config, &archive, &message, &due, now)
            .and_then(|input| notify::build(&input));
        let notice = match built {
            Ok(notice) => notice,
            Err(e) => {
                // Not sendable as it stands (e.g. a malformed address): kept for the operator.
                // It never will be: given up at once, so this is logged once, not every tick.
                warn!("{qid}: {} notice cannot be built, given up: {e}", due.kind);
                store.give_up_notice(due.id, &e.to_string(), MAX_NOTICE_ATTEMPTS)?;
                report.notices_failed += 1;
                continue;
            }
        };
        match transport.send(&notice).await {
            Ok(()) => {
                store.mark_notice_sent(due.id, now, notice.message_id())?;
                info!("{qid}: {} notice sent to <{}>", due.kind, message.sender);
                report.notices_sent += 1;
            }
            Err(e) => {
                warn!("{qid}: {} notice not sent, retrying: {e}", due.kind);
                store.mark_notice_failed(due.id, &e)?;
                report.notices_failed += 1;
            }
        }
    }
    Ok(())
}

/// The policy's view of a stored message.
fn state_of(m: &PolicyMessage) -> MessageState {
    MessageState {
        arrived_at: m.arrived_at,
        sender: m.sender.clone(),
        is_notice: m.is_notice,
        receipts: m.receipts,
        recipients: m.recipients.iter().map(recipient_state).collect(),
        warning_sent: m.notices.contains(&NoticeKind::Warning),
        expiry_sent: m.notices.contains(&NoticeKind::Expiry),
        receipt_sent: m.notices.contains(&NoticeKind::Receipt),
        last_retry_request_at: m.retry_requested_at,
        removed_from_queue: m.removed,
    }
}

fn recipient_state(r: &crate::store::PolicyRecipient) -> RecipientState {
    RecipientState {
        address: r.address.clone(),
        status: r.status,
        last_attempt_at: r.last_attempt_at,
        last_reply: r.reply.clone(),
        last_dsn: r.dsn.clone(),
        remote_mta: r.remote_mta.clone(),
    }
}

fn notice_input(
    config: &Config,
    archive: &Archive,
    m: &PolicyMessage,
    due: &DueNotice,
    now: OffsetDateTime,
) -> Result<NoticeInput, notify::NoticeError> {
    let policy = config
        .policy(&m.mode)
        .cloned()
        .unwrap_or_else(crate::config::Policy::normal);
    let report = match due.kind.as_str() {
        "warning" => Report::warning(&policy, m.arrived_at, due.due_at),
        "expiry" => Report::expiry(&policy),
        _ => Report::Receipt,
    };
    let recipients = m
        .recipients
        .iter()
        .filter(|r| {
            due.recipients
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&r.address))
        })
        .map(|r| {
            let mut report = RecipientReport::from(&recipient_state(r));
            report.original_recipient = r
                .args
                .iter()
                .find_map(|a| {
                    a.strip_prefix("ORCPT=")
                        .or_else(|| a.strip_prefix("orcpt="))
                })
                .map(|orcpt| orcpt.trim_start_matches("rfc822;").to_string());
            report
        })
        .collect();
    Ok(NoticeInput {
        reporting_mta: config.notify.reporting_mta.clone(),
        original: OriginalMessage {
            queue_id: m.queue_id.clone(),
            sender: m.sender.clone(),
            message_id: m.message_id.clone(),
            envelope_id: None,
            arrival: m.arrived_at,
            headers: m
                .archive_name
                .as_deref()
                .and_then(|name| archive.read(name).ok()),
        },
        recipients,
        report,
        language: config.notify.language,
        now,
    })
}

#[cfg(test)]
mod tests;

impl QueueControl for crate::mta::MtaControl {
    async fn retry(&self, queue_id: &str) -> Result<(), String> {
        crate::mta::MtaControl::retry(self, queue_id)
            .await
            .map_err(|e| e.to_string())
    }

    async fn remove(&self, queue_id: &str) -> Result<(), String> {
        crate::mta::MtaControl::remove(self, queue_id)
            .await
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the policy tick thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// The running tick; [`Ticker::stop`] ends it after the tick in progress.
pub struct Ticker(Periodic);

impl Ticker {
    /// Starts ticking every `notify.tick` on a thread of its own (the store is synchronous), when
    /// notices are enabled and the MTA log is followed: without the log, nothing is known about
    /// deliveries and nothing may be decided.
    pub fn start(config: crate::config::ConfigHandle) -> Result<Option<Ticker>, TickError> {
        let current = config.current();
        if !current.notify.enabled {
            return Ok(None);
        }
        if current.maillog.source == crate::config::LogSource::Off {
            warn!("notify.enabled, but maillog.source = \"off\": no retries, warnings or expiries");
            return Ok(None);
        }
        let mut store = Store::open(&current.store.path)?;
        let job = Periodic::start("policy-tick", move |mut stop| async move {
            loop {
                let current = config.current();
                let queue = crate::mta::MtaControl::new(current.mta.clone());
                let transport =
                    SmtpSubmission::new(&current.notify.smtp_host, current.notify.smtp_port);
                let now = OffsetDateTime::now_utc();
                match run_once(&current, &mut store, &queue, &transport, now).await {
                    Ok(r) if r != TickReport::default() => tracing::debug!("policy tick: {r:?}"),
                    Ok(_) => {}
                    Err(e) => warn!("policy tick: {e}"),
                }
                if !stop.sleep(current.notify.tick).await {
                    return;
                }
            }
        })
        .map_err(TickError::Spawn)?;
        info!(
            "policy tick every {}",
            humantime::format_duration(current.notify.tick)
        );
        Ok(Some(Ticker(job)))
    }

    pub fn stop(self) {
        self.0.stop();
    }
}
