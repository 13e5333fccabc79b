//! Retry policy: pure decisions about one message.
//!
//! [`decide`] looks at a message's state and *now* and says what is due: ask the MTA to retry,
//! warn the sender, give up, or send a return receipt. It performs no I/O and reads no clock, so
//! a 4-hour or 24-hour timeline is tested in milliseconds. The policy tick applies the actions
//! (MTA flush/remove, notices through `notify`) and writes the marks back to the store.
//!
//! Timing rules, all with "at or after" (`>=`) semantics so a deadline is due exactly on time:
//!
//! - **retry**: a `Deferred` recipient is due when `retry_every` has passed since the later of
//!   its last attempt and the message's last retry request (arrival when neither is known).
//!   One [`Action::RetryNow`] per message: the MTA flushes by queue id, not by recipient.
//! - **warning**: once, when `warn_after` is `Some`, has passed since arrival, and some recipient
//!   is not final (`Pending` or `Deferred`).
//! - **expiry**: once, when `give_up_after` has passed since arrival and some recipient is not
//!   final; those recipients are expired. Expiry supersedes a retry or warning due at the same
//!   instant, and after it nothing but a receipt is ever due.
//! - **receipt**: once, when `receipts == On`, every recipient is final (counting those expired in
//!   the same decision) and at least one was `Sent`.
//!
//! The sender is never notified when it is the null sender, `MAILER-DAEMON`, or the message is
//! itself a notice (see [`is_null_sender`]): no warning, no receipt, and an expiry with
//! `notify: false` — the message must still leave the MTA queue. Retries still happen for them:
//! a late bounce deserves delivery as much as any other mail.

use time::OffsetDateTime;

use crate::config::{Policy, Receipts};
pub use crate::model::status::RecipientStatus;

#[cfg(test)]
mod tests;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientState {
    pub address: String,
    pub status: RecipientStatus,
    pub last_attempt_at: Option<OffsetDateTime>,
    /// The last SMTP reply text, for notices.
    pub last_reply: Option<String>,
    /// The last DSN status code (`4.7.1`), for notices.
    pub last_dsn: Option<String>,
    pub remote_mta: Option<String>,
}

/// What the store knows about one message, as [`decide`] needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageState {
    pub arrived_at: OffsetDateTime,
    /// MAIL FROM; `""` is the null sender.
    pub sender: String,
    /// The message is itself a notice: never notify about it.
    pub is_notice: bool,
    pub receipts: Receipts,
    pub recipients: Vec<RecipientState>,
    /// "Due or sent" marks from the store: once set, that notice is never decided again.
    pub warning_sent: bool,
    pub expiry_sent: bool,
    pub receipt_sent: bool,
    pub last_retry_request_at: Option<OffsetDateTime>,
    /// The message left the MTA queue (delivered, bounced, or removed at expiry or by hand):
    /// nothing left to retry or to warn about.
    pub removed_from_queue: bool,
}

/// Something due for a message. [`decide`] returns them in the order they should be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Ask the MTA to flush the message now; record `last_retry_request_at = now`.
    RetryNow,
    /// Send a delay warning about these still-waiting recipients; set `warning_sent`.
    SendWarning { waiting: Vec<String> },
    /// Remove the message from the MTA queue, mark these recipients `Expired`, set `expiry_sent`.
    /// `notify` is false for the null sender, `MAILER-DAEMON` and notices: the queue is still
    /// cleaned, but no expiry notice is sent. The tick records the expiry attempt under
    /// [`crate::bounce::Category::MessageExpired`].
    Expire { failed: Vec<String>, notify: bool },
    /// Send a return receipt listing these delivered recipients; set `receipt_sent`.
    SendReceipt { delivered: Vec<String> },
}

/// Whether a MAIL FROM must never receive a notice: `<>` (as `""` or `"<>"`) or any
/// `MAILER-DAEMON` address (any domain, any case).
pub fn is_null_sender(sender: &str) -> bool {
    let s = sender.trim().trim_start_matches('<').trim_end_matches('>');
    let local = s.rsplit_once('@').map_or(s, |(local, _)| local);
    s.is_empty() || local.eq_ignore_ascii_case("mailer-daemon")
}

/// The per-message facts both [`decide`] and [`next_due`] derive from state and policy.
struct Due {
    /// When expiry happens, if it is still to happen.
    expiry_at: Option<OffsetDateTime>,
    warning_at: Option<OffsetDateTime>,
    retry_at: Option<OffsetDateTime>,
    notify: bool,
}

fn due(state: &MessageState, policy: &Policy) -> Due {
    let notify = !state.is_notice && !is_null_sender(&state.sender);
    let open = state.recipients.iter().any(|r| !r.status.is_final());
    // After expiry nothing but a receipt: the message is out of the queue by then.
    let active = open && !state.expiry_sent;
    let expiry_at = active.then(|| state.arrived_at + policy.give_up_after);
    let warning_at = match policy.warn_after {
        Some(after) if active && notify && !state.warning_sent && !state.removed_from_queue => {
            Some(state.arrived_at + after)
        }
        _ => None,
    };
    let retry_at = if active && !state.removed_from_queue {
        state
            .recipients
            .iter()
            .filter(|r| r.status == RecipientStatus::Deferred)
            .map(|r| {
                let base = r
                    .last_attempt_at
                    .max(state.last_retry_request_at)
                    .unwrap_or(state.arrived_at);
                base + policy.retry_every
            })
            .min()
    } else {
        None
    };
    Due {
        expiry_at,
        warning_at,
        retry_at,
        notify,
    }
}

/// What is due for `state` at `now` under `policy`; empty when nothing is. Applying every
/// returned action (and its mark) before the next call is what makes each notice happen once.
pub fn decide(state: &MessageState, policy: &Policy, now: OffsetDateTime) -> Vec<Action> {
    let due = due(state, policy);
    let mut actions = Vec::new();
    let expiring = due.expiry_at.is_some_and(|at| now >= at);
    if expiring {
        let failed = state
            .recipients
            .iter()
            .filter(|r| !r.status.is_final())
            .map(|r| r.address.clone())
            .collect();
        actions.push(Action::Expire {
            failed,
            notify: due.notify,
        });
    } else {
        if due.retry_at.is_some_and(|at| now >= at) {
            actions.push(Action::RetryNow);
        }
        if due.warning_at.is_some_and(|at| now >= at) {
            let waiting = state
                .recipients
                .iter()
                .filter(|r| !r.status.is_final())
                .map(|r| r.address.clone())
                .collect();
            actions.push(Action::SendWarning { waiting });
        }
    }
    // Recipients expired right now count as final, so the receipt comes in the same tick.
    if let Some(delivered) = receipt_due(state, due.notify, expiring) {
        actions.push(Action::SendReceipt { delivered });
    }
    actions
}

fn receipt_due(state: &MessageState, notify: bool, expiring: bool) -> Option<Vec<String>> {
    let all_final = expiring || state.recipients.iter().all(|r| r.status.is_final());
    if !notify || state.receipts != Receipts::On || state.receipt_sent || !all_final {
        return None;
    }
    let delivered: Vec<String> = state
        .recipients
        .iter()
        .filter(|r| r.status == RecipientStatus::Sent)
        .map(|r| r.address.clone())
        .collect();
    (!delivered.is_empty()).then_some(delivered)
}

/// When [`decide`] would next return something if the state does not change meanwhile; `None`
/// when nothing is ever due again without new events (attempts from the MTA log). A value at or
/// before `now` means due now. The tick can sleep until the earliest `next_due` of all messages.
pub fn next_due(
    state: &MessageState,
    policy: &Policy,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    let due = due(state, policy);
    let receipt = receipt_due(state, due.notify, false).map(|_| now);
    [due.expiry_at, due.warning_at, due.retry_at, receipt]
        .into_iter()
        .flatten()
        .min()
}
