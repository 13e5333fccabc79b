//! Where a recipient stands and what one attempt did, and the rules between states: which
//! states a new attempt may replace, and which state of a message's recipients is the
//! message's own (its worst). Their string forms are those of the store, JSON and CSV.

use serde::Serialize;
use std::str::FromStr;

/// A string that names no state (a store written by something else, a bad filter).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?}")]
pub struct UnknownState(pub String);

/// What one delivery attempt did, as the MTA logged it. Serialised by variant name in a parsed
/// log event (like the event's other enums); stored rows serialise it by its stored name
/// ([`DeliveryStatus::serialize_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum DeliveryStatus {
    Sent,
    /// Temporary failure: the MTA keeps the message queued.
    Deferred,
    Bounced,
    /// Given up after the queue lifetime.
    Expired,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Sent,
        DeliveryStatus::Deferred,
        DeliveryStatus::Bounced,
        DeliveryStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        self.recipient_status().as_str()
    }

    /// For `#[serde(serialize_with)]`: the stored name (`sent`, ...), as JSON exports show it.
    pub fn serialize_name<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }

    /// The state this attempt's outcome puts its recipient in.
    pub fn recipient_status(self) -> RecipientStatus {
        match self {
            DeliveryStatus::Sent => RecipientStatus::Sent,
            DeliveryStatus::Deferred => RecipientStatus::Deferred,
            DeliveryStatus::Bounced => RecipientStatus::Bounced,
            DeliveryStatus::Expired => RecipientStatus::Expired,
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = UnknownState;
    fn from_str(text: &str) -> Result<Self, UnknownState> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownState(text.to_string()))
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one recipient stands. `Sent`, `Bounced` and `Expired` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientStatus {
    /// Not attempted yet.
    Pending,
    /// Attempted, temporary failure; the MTA keeps it queued.
    Deferred,
    Sent,
    Bounced,
    /// Given up by mailtrail (or the MTA) after `give_up_after`.
    Expired,
}

impl RecipientStatus {
    /// Worst first: the summary state of a message is that of its worst recipient (a bounce
    /// outweighs an expiry, which outweighs a deferral, ...).
    pub const WORST_FIRST: [RecipientStatus; 5] = [
        RecipientStatus::Bounced,
        RecipientStatus::Expired,
        RecipientStatus::Deferred,
        RecipientStatus::Pending,
        RecipientStatus::Sent,
    ];

    /// States that any later attempt replaces. A final state is replaced only by another final
    /// attempt, never by a deferral logged out of order.
    pub const OPEN: [RecipientStatus; 2] = [RecipientStatus::Pending, RecipientStatus::Deferred];

    pub fn is_final(self) -> bool {
        !Self::OPEN.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Pending => "pending",
            RecipientStatus::Deferred => "deferred",
            RecipientStatus::Sent => "sent",
            RecipientStatus::Bounced => "bounced",
            RecipientStatus::Expired => "expired",
        }
    }

    /// Rank in [`Self::WORST_FIRST`]: lower is worse.
    pub fn severity(self) -> usize {
        Self::WORST_FIRST
            .iter()
            .position(|s| *s == self)
            .unwrap_or(Self::WORST_FIRST.len())
    }

    /// The summary state of a message with recipients in `states`: the worst, `Pending` for
    /// none.
    pub fn worst(states: impl IntoIterator<Item = RecipientStatus>) -> RecipientStatus {
        states
            .into_iter()
            .min_by_key(|s| s.severity())
            .unwrap_or(RecipientStatus::Pending)
    }

    /// Whether an attempt with outcome `attempt` replaces this state (and the reply, DSN and
    /// category that came with it): always, unless a final state would fall back to an open one.
    pub fn replaced_by(self, attempt: RecipientStatus) -> bool {
        !self.is_final() || attempt.is_final()
    }

    /// The state after an attempt with outcome `attempt` (`final` or not) on a recipient in
    /// this state.
    pub fn after(self, attempt: RecipientStatus) -> RecipientStatus {
        if self.replaced_by(attempt) {
            attempt
        } else {
            self
        }
    }
}

impl FromStr for RecipientStatus {
    type Err = UnknownState;
    fn from_str(text: &str) -> Result<Self, UnknownState> {
        Self::WORST_FIRST
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownState(text.to_string()))
    }
}

impl std::fmt::Display for RecipientStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
