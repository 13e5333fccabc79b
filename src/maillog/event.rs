//! Typed events produced by the log parsers. Plain data: no I/O, no SQL.

pub use crate::model::status::DeliveryStatus;
use serde::Serialize;
use time::OffsetDateTime;

// Local serializer so the crate need not enable time's `serde` feature.
fn ser_rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::Error;
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(S::Error::custom)?;
    s.serialize_str(&text)
}

/// Which MTA wrote a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Mta {
    Postfix,
    Sendmail,
}

/// The SMTP command a remote reply answered: the classifier's own type.
pub use crate::bounce::SmtpStage;

/// Syslog envelope of one line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Header {
    /// Time of the line; syslog stamps without a zone use `ParserOptions::default_offset`.
    #[serde(serialize_with = "ser_rfc3339")]
    pub time: OffsetDateTime,
    pub host: String,
    /// Full syslog tag without pid: `postfix/smtp`, `postfix-out/qmgr`, `sm-mta`.
    pub program: String,
    pub pid: Option<u32>,
    pub mta: Mta,
    /// `message repeated N times: [ .. ]` from rsyslog; 1 for ordinary lines.
    pub repeat: u32,
}

/// One delivery attempt for one recipient (sendmail may name several recipients on one line:
/// the first is `to`, the others are in `also_to`, all with the same outcome).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub queue_id: String,
    pub to: String,
    /// Further recipients of the same attempt (sendmail `to=<a>,<b>`); empty for postfix.
    pub also_to: Vec<String>,
    pub orig_to: Option<String>,
    pub relay_host: Option<String>,
    pub relay_ip: Option<String>,
    pub relay_port: Option<u16>,
    /// Total delay in seconds (postfix `delay=`, sendmail `delay=[D+]HH:MM:SS`).
    pub delay_secs: Option<f64>,
    /// postfix `delays=a/b/c/d`, sendmail `xdelay=` as logged.
    pub delays: Option<String>,
    pub dsn: Option<String>,
    pub status: DeliveryStatus,
    /// The remote server's reply code, when the text carries one.
    pub smtp_code: Option<u16>,
    /// The remote reply (after `said:`), or the MTA's own explanation when there is none.
    pub reply: String,
    pub stage: Option<SmtpStage>,
    /// Delivery agent / mailer: `smtp`, `lmtp`, `local`, sendmail `mailer=esmtp`.
    pub agent: String,
    /// A hand-over to the same host's MTA, not a delivery: the queue id the message goes on
    /// under (sendmail's submission program passing mail to the daemon, `QID2 Message accepted
    /// for delivery`; a content filter re-injecting into postfix, `queued as QID2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handed_to: Option<String>,
}

impl Delivery {
    /// A delivery of `queue_id` by `agent` with every detail still unknown; the grammars fill it in.
    pub fn new(queue_id: &str, agent: &str) -> Delivery {
        Delivery {
            queue_id: queue_id.to_owned(),
            to: String::new(),
            also_to: Vec::new(),
            orig_to: None,
            relay_host: None,
            relay_ip: None,
            relay_port: None,
            delay_secs: None,
            delays: None,
            dsn: None,
            status: DeliveryStatus::Sent,
            smtp_code: None,
            reply: String::new(),
            stage: None,
            agent: agent.to_owned(),
            handed_to: None,
        }
    }

    /// Whether the relay is this host (a loopback address): where a local hop hands over.
    pub fn relay_is_loopback(&self) -> bool {
        self.relay_ip
            .as_deref()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| ip.is_loopback())
    }

    /// Every recipient this attempt is about.
    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.to.as_str()).chain(self.also_to.iter().map(String::as_str))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum NotificationKind {
    NonDelivery,
    Delay,
    Success,
    ReturnToSender,
    PostmasterNotify,
}

/// Who refused: the source of a `Reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RejectSource {
    /// postfix smtpd `reject:` (NOQUEUE or with queue id)
    Smtpd,
    Postscreen,
    /// postfix `milter-reject:`, sendmail `Milter: ... reject=`
    Milter,
    /// postfix cleanup header/body checks
    Cleanup,
    /// sendmail `ruleset=check_* ... reject=`
    Ruleset,
    /// sendmail `<addr>... User unknown` on RCPT
    SendmailRcpt,
}

/// A refused SMTP command: never became (or was removed as) a queued message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reject {
    pub queue_id: Option<String>,
    pub source: RejectSource,
    pub code: Option<u16>,
    pub dsn: Option<String>,
    pub client_host: Option<String>,
    pub client_ip: Option<String>,
    pub client_port: Option<u16>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub helo: Option<String>,
    pub proto: Option<String>,
    pub stage: SmtpStage,
    /// The text after code and DSN (postfix), or the sendmail reject text.
    pub reason: String,
}

impl Reject {
    /// A refusal of the message as a whole after its queue id was assigned (postfix
    /// `milter-reject: END-OF-MESSAGE`, cleanup `reject: header/body`, a `reject: DATA`;
    /// sendmail `Milter: data, reject=`): the MTA discards the queue file without a `removed`
    /// line, so the message ends here. A refused RCPT with a queue id ends only that recipient.
    pub fn ends_message(&self) -> bool {
        self.queue_id.is_some() && matches!(self.stage, SmtpStage::Data | SmtpStage::EndOfData)
    }

    /// A refusal by `source` with every detail still unknown; the grammars fill it in.
    pub fn new(queue_id: Option<&str>, source: RejectSource) -> Reject {
        Reject {
            queue_id: queue_id.map(str::to_owned),
            source,
            code: None,
            dsn: None,
            client_host: None,
            client_ip: None,
            client_port: None,
            from: None,
            to: None,
            helo: None,
            proto: None,
            stage: SmtpStage::Unknown,
            reason: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Event {
    /// postfix smtpd `QID: client=host[ip]`.
    Client {
        queue_id: String,
        client_host: String,
        client_ip: String,
        client_port: Option<u16>,
        sasl_method: Option<String>,
        sasl_username: Option<String>,
    },
    /// postfix cleanup `message-id=`.
    MessageId {
        queue_id: String,
        message_id: String,
    },
    /// postfix qmgr `from=<..>, size=, nrcpt=`; sendmail `from=<..>, size=, nrcpts=, msgid=, relay=`.
    /// Sendmail puts client and Message-ID on the same line, hence the optional fields.
    Queued {
        queue_id: String,
        from: String,
        size: Option<u64>,
        nrcpt: Option<u32>,
        message_id: Option<String>,
        client_host: Option<String>,
        client_ip: Option<String>,
        proto: Option<String>,
    },
    Delivery(Delivery),
    /// The MTA gave up on every still-pending recipient of the message: postfix qmgr
    /// `from=<..>, status=expired, returned to sender`, sendmail `DSN: Cannot send message for 5 days`.
    /// Apply `DeliveryStatus::Expired` to every recipient not final yet.
    Expired {
        queue_id: String,
        from: Option<String>,
        /// Queue id of the bounce message, when logged on the same line (sendmail).
        notice_queue_id: Option<String>,
        reason: String,
    },
    Removed {
        queue_id: String,
    },
    Notification {
        queue_id: String,
        kind: NotificationKind,
        notice_queue_id: Option<String>,
    },
    Reject(Reject),
    /// sendmail `AUTH=server, relay=.., authid=.., mech=..`: the SASL user of a session. It is
    /// usually logged before the queue id exists; the `from=` line of the same pid follows.
    SaslLogin {
        queue_id: Option<String>,
        client_host: Option<String>,
        client_ip: Option<String>,
        username: String,
        mechanism: Option<String>,
    },
    /// Recognised lines we deliberately don't use.
    Other {
        queue_id: Option<String>,
        kind: &'static str,
    },
}

impl Event {
    pub fn queue_id(&self) -> Option<&str> {
        match self {
            Event::Client { queue_id, .. }
            | Event::MessageId { queue_id, .. }
            | Event::Queued { queue_id, .. }
            | Event::Expired { queue_id, .. }
            | Event::Removed { queue_id }
            | Event::Notification { queue_id, .. } => Some(queue_id),
            Event::Delivery(d) => Some(&d.queue_id),
            Event::Reject(r) => r.queue_id.as_deref(),
            Event::SaslLogin { queue_id, .. } => queue_id.as_deref(),
            Event::Other { queue_id, .. } => queue_id.as_deref(),
        }
    }
}

// Boxing the event would add one more allocation per line on the hot path;
// outcomes are consumed at once, never stored in bulk.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ParseOutcome {
    Event(Header, Event),
    /// Not for us: other program, blank line, comment ...
    Ignored(&'static str),
    /// A line of a tracked MTA that no grammar recognised (or an unparseable header).
    Unknown,
}
