//! What the milter learns about one message: the envelope row that `store` keeps.

use serde::Serialize;
use time::OffsetDateTime;

/// What became of a message's archive copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveState {
    /// The copy is in the Maildir.
    Stored,
    /// Larger than `archive.max_message_size`: recorded, not copied.
    TooLarge,
    /// The sender is in `archive.exclude`.
    Excluded,
    /// `archive.maildir = false`.
    Disabled,
    /// Writing the copy failed; the error was logged and counted.
    Failed,
    /// The copy was deleted by the retention sweep.
    Expired,
    /// Known from the MTA log only: the milter never saw the message.
    NotSeen,
}

impl Envelope {
    /// Fills what this envelope lacks from `hop`'s, the envelope of the same message on the
    /// hop that handed it over to this one on this host (the milter saw it there): subject,
    /// Message-ID, client, SASL user and the archived copy.
    pub fn fill_from_hop(&mut self, hop: &Envelope) {
        for (mine, theirs) in [
            (&mut self.subject, &hop.subject),
            (&mut self.message_id, &hop.message_id),
            (&mut self.client_name, &hop.client_name),
            (&mut self.client_addr, &hop.client_addr),
            (&mut self.helo, &hop.helo),
            (&mut self.sasl_user, &hop.sasl_user),
        ] {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
        if self.archive_name.is_none() && hop.archive_state == ArchiveState::Stored {
            self.archive_name.clone_from(&hop.archive_name);
            self.archive_state = ArchiveState::Stored;
        }
    }
}

impl ArchiveState {
    pub const fn as_str(self) -> &'static str {
        match self {
            ArchiveState::Stored => "stored",
            ArchiveState::TooLarge => "too-large",
            ArchiveState::Excluded => "excluded",
            ArchiveState::Disabled => "disabled",
            ArchiveState::Failed => "failed",
            ArchiveState::Expired => "expired",
            ArchiveState::NotSeen => "not-seen",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ArchiveState::Stored,
            ArchiveState::TooLarge,
            ArchiveState::Excluded,
            ArchiveState::Disabled,
            ArchiveState::Failed,
            ArchiveState::Expired,
            ArchiveState::NotSeen,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Recipient {
    pub address: String,
    /// ESMTP arguments of the RCPT TO command (`NOTIFY=...`, `ORCPT=...`).
    pub args: Vec<String>,
}

/// One message as the milter saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Envelope {
    /// The MTA's queue id (macro `i`); not unique over time.
    pub queue_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub arrived_at: OffsetDateTime,
    /// The MTA's host name (macro `j`).
    pub mta_host: Option<String>,
    pub client_name: Option<String>,
    pub client_addr: Option<String>,
    pub helo: Option<String>,
    pub sasl_user: Option<String>,
    /// MAIL FROM without angle brackets; empty for the null sender.
    pub mail_from: String,
    pub mail_args: Vec<String>,
    pub recipients: Vec<Recipient>,
    /// Recipients beyond `milter.max_recipients`, counted but not stored.
    pub recipients_dropped: u32,
    /// Bytes of the message as received (headers and body, CRLF line ends).
    pub size: u64,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// The Maildir file's unique name, when a copy was stored.
    pub archive_name: Option<String>,
    pub archive_state: ArchiveState,
    /// Retry-policy mode resolved from the config at arrival.
    pub mode: String,
    pub receipts: crate::config::Receipts,
    /// The message is one of mailtrail's own notices (it carries `X-Mailtrail-Notice`): the
    /// policy never notifies about it.
    pub is_notice: bool,
}
