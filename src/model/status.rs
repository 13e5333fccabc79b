//! Where a recipient stands, and the rules between states: which states a new attempt may
//! replace, and which state of a message's recipients is the message's own (its worst).

use serde::Serialize;

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

    /// The state named by `text` as stored; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::WORST_FIRST.into_iter().find(|s| s.as_str() == text)
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

    /// The state after an attempt with outcome `attempt` (`final` or not) on a recipient in
    /// this state.
    pub fn after(self, attempt: RecipientStatus) -> RecipientStatus {
        if self.is_final() && !attempt.is_final() {
            self
        } else {
            attempt
        }
    }
}

impl std::fmt::Display for RecipientStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
