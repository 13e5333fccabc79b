//! Per-connection and per-message state. A connection may carry several messages; each MAIL FROM
//! (and every abort) starts the next one from a clean `MessageInFlight`.

use crate::{
    archive::{Archive, Spool},
    config::{Config, Receipts, SenderPolicy},
    model::envelope::{ArchiveState, Envelope, Recipient},
};
use std::sync::Arc;
use time::OffsetDateTime;

/// Longest Subject or Message-ID kept in the envelope row (RFC 5322's line limit).
const MAX_FIELD: usize = 998;
/// Raw bytes of Subject/Message-ID headers kept for decoding; the archive has all of them.
const MAX_KEY_HEADERS: usize = 16 * 1024;

/// What is known about the SMTP connection.
#[derive(Default)]
pub struct Session {
    pub client_name: Option<String>,
    pub client_addr: Option<String>,
    pub helo: Option<String>,
    pub mta_host: Option<String>,
    /// The MTA keeps header values' leading space (`SMFIP_HDR_LEADSPC` negotiated).
    pub exact_leading_space: bool,
    /// The MTA lets us delete recipients and add them with ESMTP arguments (for DSN receipts).
    pub can_rewrite_recipients: bool,
    /// The stages the MTA sends without waiting for our answer (negotiated `NOREPLY_*`).
    pub no_reply: indymilter::ProtoOpts,
    pub message: Option<MessageInFlight>,
}

impl Session {
    /// Drops the current message's state, e.g. on abort.
    pub fn reset_message(&mut self) {
        self.message = None;
    }
}

/// The message in progress, from MAIL FROM to end-of-message.
pub struct MessageInFlight {
    /// The configuration this message is handled with, even if a reload happens meanwhile.
    pub config: Arc<Config>,
    pub arrived_at: OffsetDateTime,
    pub mail_from: String,
    pub mail_args: Vec<String>,
    pub sasl_user: Option<String>,
    pub policy: SenderPolicy,
    pub excluded: bool,
    pub recipients: Vec<Recipient>,
    pub recipients_dropped: u32,
    pub headers_seen: usize,
    /// The message carries mailtrail's notice marker header: it is one of our own notices.
    pub is_notice: bool,
    /// Subject and Message-ID header lines, for decoding at end-of-message.
    key_headers: Vec<u8>,
    pub spool: Spool,
}

impl MessageInFlight {
    pub fn new(
        config: Arc<Config>,
        archive: Option<&Arc<Archive>>,
        args: Vec<String>,
        sasl_user: Option<String>,
    ) -> Self {
        let mut args = args.into_iter();
        let mail_from = crate::model::address::strip_brackets(&args.next().unwrap_or_default());
        let policy = config.sender_policy(&mail_from, sasl_user.as_deref());
        let excluded = config.archive_excluded(&mail_from);
        let spool = match archive {
            Some(archive) if !excluded => archive.spool(config.archive.max_message_size),
            _ => Spool::counting(),
        };
        MessageInFlight {
            arrived_at: OffsetDateTime::now_utc(),
            mail_from,
            mail_args: args.collect(),
            sasl_user,
            policy,
            excluded,
            recipients: Vec::new(),
            recipients_dropped: 0,
            headers_seen: 0,
            is_notice: false,
            key_headers: Vec::new(),
            spool,
            config,
        }
    }

    /// Records a RCPT TO; returns false when the recipient cap dropped it.
    pub fn add_recipient(&mut self, args: Vec<String>) -> bool {
        if self.recipients.len() >= self.config.milter.max_recipients {
            self.recipients_dropped += 1;
            return false;
        }
        let mut args = args.into_iter();
        self.recipients.push(Recipient {
            address: crate::model::address::strip_brackets(&args.next().unwrap_or_default()),
            args: args.collect(),
        });
        true
    }

    /// Appends one header to the copy exactly as received; returns false past the header cap
    /// (the header is still archived, only not examined).
    pub fn add_header(&mut self, name: &[u8], value: &[u8], exact_leading_space: bool) -> bool {
        let mut line = Vec::with_capacity(name.len() + value.len() + 4);
        line.extend_from_slice(name);
        line.push(b':');
        if !exact_leading_space {
            // Without SMFIP_HDR_LEADSPC the MTA strips the single space after the colon.
            line.push(b' ');
        }
        push_crlf_normalised(&mut line, value);
        line.extend_from_slice(b"\r\n");
        self.spool.append(&line);

        // Checked before the header cap: a notice must be recognised however many headers.
        if name.eq_ignore_ascii_case(crate::notify::MARKER_HEADER.as_bytes()) {
            self.is_notice = true;
        }
        self.headers_seen += 1;
        if self.headers_seen > self.config.milter.max_headers {
            return false;
        }
        let wanted =
            name.eq_ignore_ascii_case(b"subject") || name.eq_ignore_ascii_case(b"message-id");
        if wanted && self.key_headers.len() + line.len() <= MAX_KEY_HEADERS {
            self.key_headers.extend_from_slice(&line);
        }
        true
    }

    /// The envelope row for this message, before its archive copy is stored.
    pub fn envelope(&mut self, session: &Session, queue_id: Option<String>) -> Envelope {
        let mut key_headers = std::mem::take(&mut self.key_headers);
        key_headers.extend_from_slice(b"\r\n");
        let parsed = mail_parser::MessageParser::new().parse_headers(&key_headers);
        let subject = parsed.as_ref().and_then(|m| m.subject()).map(clean_field);
        let message_id = parsed
            .as_ref()
            .and_then(|m| m.message_id())
            .map(|id| clean_field(&format!("<{id}>")));
        let archive_state = if self.excluded {
            ArchiveState::Excluded
        } else if self.spool.too_large() {
            ArchiveState::TooLarge
        } else if !self.spool.keeps_copy() {
            ArchiveState::Disabled
        } else {
            ArchiveState::Stored
        };
        Envelope {
            queue_id,
            arrived_at: self.arrived_at,
            mta_host: session.mta_host.clone(),
            client_name: session.client_name.clone(),
            client_addr: session.client_addr.clone(),
            helo: session.helo.clone(),
            sasl_user: self.sasl_user.clone(),
            mail_from: self.mail_from.clone(),
            mail_args: std::mem::take(&mut self.mail_args),
            recipients: std::mem::take(&mut self.recipients),
            recipients_dropped: self.recipients_dropped,
            size: self.spool.size(),
            message_id,
            subject,
            archive_name: None,
            archive_state,
            mode: self.policy.mode.clone(),
            receipts: self.policy.receipts,
            is_notice: self.is_notice,
        }
    }

    /// The recipients to re-add with `NOTIFY=SUCCESS,FAILURE,DELAY` when the sender has
    /// `receipts = "dsn"`: those the client gave no NOTIFY of its own (its choice wins), as
    /// (`<address>`, new ESMTP arguments with the others, e.g. ORCPT, kept in order).
    /// Never for the null sender or a notice: nobody could receive their DSNs.
    pub fn dsn_rewrites(&self) -> Vec<(String, String)> {
        if self.policy.receipts != Receipts::Dsn
            || self.is_notice
            || crate::policy::is_null_sender(&self.mail_from)
        {
            return Vec::new();
        }
        self.recipients
            .iter()
            .filter(|r| {
                !r.args.iter().any(|a| {
                    a.get(..7)
                        .is_some_and(|k| k.eq_ignore_ascii_case("NOTIFY="))
                })
            })
            .map(|r| {
                let mut args = r.args.clone();
                args.push(DSN_NOTIFY.to_string());
                (format!("<{}>", r.address), args.join(" "))
            })
            .collect()
    }
}

/// What `receipts = "dsn"` asks the next hops for.
pub const DSN_NOTIFY: &str = "NOTIFY=SUCCESS,FAILURE,DELAY";

/// Control characters (CR/LF among them) never reach the store; long values are cut.
fn clean_field(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_FIELD)
        .collect()
}

/// Copies a header value, turning bare LF (how MTAs pass folded lines) into CRLF.
fn push_crlf_normalised(out: &mut Vec<u8>, value: &[u8]) {
    let mut prev = 0u8;
    for &b in value {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
}
