//! Sender notices as RFC 3464 delivery status notifications: built here, sent by the tick.
//!
//! [`build`] turns a [`NoticeInput`] into a [`Notice`]: a `multipart/report;
//! report-type=delivery-status` message with a readable part in the sender's language, a
//! `message/delivery-status` part, and the original's headers as `text/rfc822-headers` (the part
//! is left out when the caller has no headers: RFC 3464 makes it optional, and a made-up one
//! would mislead). Every notice carries `Auto-Submitted: auto-replied` and
//! `X-Mailtrail-Notice: warning|expiry|receipt`, which the milter uses to recognise notices.
//!
//! Everything that ends up in a header or a DSN field is checked: a control character (CR, LF,
//! TAB, NUL, ...) is refused with [`NoticeError::HeaderInjection`], never stripped. Reply texts are
//! bounded to [`MAX_REPLY_CHARS`] characters and the original headers to
//! [`MAX_ORIGINAL_HEADERS`] bytes.

pub use crate::model::notice::NoticeKind;
mod submit;
mod templates;
#[cfg(test)]
mod tests;
pub mod weekly;

use std::{fmt::Write as _, str::FromStr, time::Duration};

use lettre::{
    Address, Message,
    address::Envelope,
    message::{
        Body, Mailbox, MultiPart, SinglePart,
        header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue},
    },
};
use time::{OffsetDateTime, format_description::well_known::Rfc2822};

use crate::{config::Policy, policy::is_null_sender};

pub use crate::config::Language;
pub use submit::{NoticeTransport, SmtpSubmission};

/// Reply texts longer than this (in characters) are cut, in the text and in the DSN.
pub const MAX_REPLY_CHARS: usize = 1000;
/// Original headers beyond this many bytes are cut at a line end.
pub const MAX_ORIGINAL_HEADERS: usize = 64 * 1024;
/// The header that marks a message as a mailtrail notice.
pub const MARKER_HEADER: &str = "X-Mailtrail-Notice";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoticeError {
    #[error("never notify the null sender or MAILER-DAEMON")]
    NullSender,
    #[error("control character in {field}: refused, it would end up in a header")]
    HeaderInjection { field: &'static str },
    #[error("invalid address in {field}: {reason}")]
    InvalidAddress { field: &'static str, reason: String },
    #[error("invalid host name in {field}")]
    InvalidHost { field: &'static str },
    #[error("invalid DSN status in {field} (want class.subject.detail, e.g. 4.7.1)")]
    InvalidStatus { field: &'static str },
    #[error("invalid value in {field}: {reason}")]
    InvalidValue {
        field: &'static str,
        reason: &'static str,
    },
    #[error("a notice needs at least one recipient to report")]
    NoRecipients,
    #[error("building the message: {0}")]
    Build(String),
}

/// What the notice reports, with the durations it quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The message has waited `waited` so far; attempts go on until `retry_until`.
    Warning {
        waited: Duration,
        retry_until: OffsetDateTime,
    },
    /// Given up after `gave_up_after`.
    Expiry {
        gave_up_after: Duration,
    },
    Receipt,
}

impl Report {
    pub fn kind(&self) -> NoticeKind {
        match self {
            Report::Warning { .. } => NoticeKind::Warning,
            Report::Expiry { .. } => NoticeKind::Expiry,
            Report::Receipt => NoticeKind::Receipt,
        }
    }

    /// A warning sent at `now` for a message that arrived at `arrived_at` under `policy`.
    pub fn warning(policy: &Policy, arrived_at: OffsetDateTime, now: OffsetDateTime) -> Self {
        Report::Warning {
            waited: (now - arrived_at).try_into().unwrap_or_default(),
            retry_until: arrived_at + policy.give_up_after,
        }
    }

    /// An expiry under `policy`: quotes the configured lifetime, not the tick's lateness.
    pub fn expiry(policy: &Policy) -> Self {
        Report::Expiry {
            gave_up_after: policy.give_up_after,
        }
    }
}

/// The message a notice is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginalMessage {
    pub queue_id: Option<String>,
    /// MAIL FROM: the notice goes there.
    pub sender: String,
    /// With or without angle brackets.
    pub message_id: Option<String>,
    /// The ESMTP `ENVID`, when the client gave one.
    pub envelope_id: Option<String>,
    pub arrival: OffsetDateTime,
    /// The original's header section (a whole message is fine: it is cut at the first empty
    /// line); read by the caller from the archive copy.
    pub headers: Option<Vec<u8>>,
}

impl From<&crate::policy::RecipientState> for RecipientReport {
    /// What the store knows; `original_recipient` (ORCPT) is left for the caller to add.
    fn from(r: &crate::policy::RecipientState) -> Self {
        RecipientReport {
            final_recipient: r.address.clone(),
            original_recipient: None,
            status: r.last_dsn.clone(),
            remote_mta: r.remote_mta.clone(),
            diagnostic: r.last_reply.clone(),
            last_attempt: r.last_attempt_at,
        }
    }
}

/// One recipient's block in the DSN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientReport {
    pub final_recipient: String,
    /// From `ORCPT`, already decoded, when the client gave one.
    pub original_recipient: Option<String>,
    /// The last DSN status (`4.7.1`). Warnings use it when it is 4.x.x (else 4.0.0), receipts
    /// when it is 2.x.x (else 2.0.0); expiries always say 4.4.7.
    pub status: Option<String>,
    /// The host that gave the last reply, without port or address literal.
    pub remote_mta: Option<String>,
    /// The last SMTP reply (`451 4.7.1 Greylisted, try again later`).
    pub diagnostic: Option<String>,
    pub last_attempt: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeInput {
    /// This host's name: `Reporting-MTA` and the `MAILER-DAEMON@` domain.
    pub reporting_mta: String,
    pub original: OriginalMessage,
    /// The recipients the notice is about: waiting ones, failed ones, or delivered ones.
    pub recipients: Vec<RecipientReport>,
    pub report: Report,
    pub language: Language,
    /// Goes into `Date`; the clock is read by the caller.
    pub now: OffsetDateTime,
}

/// A built notice, ready for the SMTP transport.
#[derive(Clone, Debug)]
pub struct Notice {
    kind: NoticeKind,
    message_id: String,
    to: Address,
    message: Message,
}

impl Notice {
    pub fn kind(&self) -> NoticeKind {
        self.kind
    }

    /// `<...>`; stable for the same input (see [`build`]).
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The bytes to send.
    pub fn formatted(&self) -> Vec<u8> {
        self.message.formatted()
    }

    /// `MAIL FROM:<>` to the original sender: a notice must never cause a notice.
    pub fn envelope(&self) -> Envelope {
        Envelope::new(None, vec![self.to.clone()]).expect("one recipient is never empty")
    }
}

/// Builds the notice. Refuses the null sender and `MAILER-DAEMON` ([`NoticeError::NullSender`]),
/// control characters in any field, malformed addresses, hosts and statuses, and an empty
/// recipient list.
///
/// The Message-ID is derived from the notice kind, the original's arrival and queue id (or
/// Message-ID) and the reporting host, not from randomness: rebuilding a notice after a crash
/// between send and mark gives the same Message-ID, so receivers can drop the duplicate.
pub fn build(input: &NoticeInput) -> Result<Notice, NoticeError> {
    let v = Validated::new(input)?;
    let kind = input.report.kind();
    let texts = input.language.texts();

    let (subject, duration) = match &input.report {
        Report::Warning { waited, .. } => {
            let d = templates::humanize(*waited, texts);
            (texts.warning_subject.replace("{duration}", &d), Some(d))
        }
        Report::Expiry { gave_up_after } => (
            texts.expiry_subject.to_owned(),
            Some(templates::humanize(*gave_up_after, texts)),
        ),
        Report::Receipt => (texts.receipt_subject.to_owned(), None),
    };

    let readable = readable_text(input, &v, duration.as_deref());
    let dsn = delivery_status(input, &v);
    let headers = input
        .original
        .headers
        .as_deref()
        .map(original_headers)
        .filter(|h| !h.is_empty());

    let text_part = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(readable);
    // message/* parts may only be 7bit, 8bit or binary (RFC 2046), so no quoted-printable.
    let dsn_body = seven_bit(dsn.into_bytes())
        .map_err(|_| NoticeError::Build("delivery-status is not 7-bit".into()))?;
    let dsn_part = SinglePart::builder()
        .header(content_type("message/delivery-status")?)
        .body(dsn_body);
    let mut parts = vec![text_part, dsn_part];
    if let Some(h) = headers {
        // Plain 7-bit stays as it is (long DKIM lines included); the rest is left to lettre:
        // quoted-printable for UTF-8, base64 for anything else.
        let body = seven_bit(h).unwrap_or_else(|h| match String::from_utf8(h) {
            Ok(text) => Body::new(text),
            Err(e) => Body::new(e.into_bytes()),
        });
        parts.push(
            SinglePart::builder()
                .header(content_type("text/rfc822-headers")?)
                .body(body),
        );
    }

    let boundary = boundary_for(&parts, &v.message_id);
    let mut report = MultiPart::builder()
        .header(content_type(&format!(
            "multipart/report; report-type=delivery-status; boundary=\"{boundary}\""
        ))?)
        .build();
    for part in parts {
        report = report.singlepart(part);
    }

    let from = Mailbox::new(
        Some("Mail Delivery System".into()),
        Address::new("MAILER-DAEMON", &input.reporting_mta).map_err(|_| {
            NoticeError::InvalidHost {
                field: "reporting_mta",
            }
        })?,
    );
    let mut builder = Message::builder()
        .from(from)
        .to(Mailbox::new(None, v.to.clone()))
        .subject(subject)
        .date(input.now.into())
        .message_id(Some(v.message_id.clone()))
        .raw_header(raw_header("Auto-Submitted", "auto-replied"))
        .raw_header(raw_header(MARKER_HEADER, kind.as_str()))
        .envelope(
            Envelope::new(None, vec![v.to.clone()])
                .map_err(|e| NoticeError::Build(e.to_string()))?,
        );
    if let Some(id) = &v.original_id {
        builder = builder.in_reply_to(id.clone()).references(id.clone());
    }
    let message = builder
        .multipart(report)
        .map_err(|e| NoticeError::Build(e.to_string()))?;
    Ok(Notice {
        kind,
        message_id: v.message_id,
        to: v.to,
        message,
    })
}

/// Input fields after checking, in the forms the builder needs.
struct Validated {
    to: Address,
    original_id: Option<String>,
    message_id: String,
    recipients: Vec<ValidRecipient>,
}

struct ValidRecipient {
    final_recipient: String,
    original_recipient: Option<String>,
    status: String,
    remote_mta: Option<String>,
    /// Cut to [`MAX_REPLY_CHARS`].
    diagnostic: Option<String>,
}

impl Validated {
    fn new(input: &NoticeInput) -> Result<Self, NoticeError> {
        let o = &input.original;
        // Injection first: a CR/LF must be reported as such, whatever else is wrong.
        no_controls("sender", &o.sender)?;
        if is_null_sender(&o.sender) {
            return Err(NoticeError::NullSender);
        }
        no_controls("reporting_mta", &input.reporting_mta)?;
        host("reporting_mta", &input.reporting_mta, false)?;
        let to = address("sender", &o.sender)?;
        for (field, value) in [
            ("queue_id", &o.queue_id),
            ("message_id", &o.message_id),
            ("envelope_id", &o.envelope_id),
        ] {
            if let Some(value) = value {
                no_controls(field, value)?;
                printable_ascii(field, value)?;
            }
        }
        let original_id = o
            .message_id
            .as_deref()
            .map(|id| {
                let id = id.strip_prefix('<').unwrap_or(id);
                let id = id.strip_suffix('>').unwrap_or(id);
                if id.is_empty() || id.contains(['<', '>']) {
                    return Err(NoticeError::InvalidValue {
                        field: "message_id",
                        reason: "must be one <id>",
                    });
                }
                Ok(format!("<{id}>"))
            })
            .transpose()?;
        if input.recipients.is_empty() {
            return Err(NoticeError::NoRecipients);
        }
        let recipients = input
            .recipients
            .iter()
            .map(|r| recipient(input.report.kind(), r))
            .collect::<Result<_, _>>()?;
        let message_id = notice_message_id(input);
        Ok(Validated {
            to,
            original_id,
            message_id,
            recipients,
        })
    }
}

fn recipient(kind: NoticeKind, r: &RecipientReport) -> Result<ValidRecipient, NoticeError> {
    no_controls("final_recipient", &r.final_recipient)?;
    address("final_recipient", &r.final_recipient)?;
    if let Some(orig) = &r.original_recipient {
        no_controls("original_recipient", orig)?;
        address("original_recipient", orig)?;
    }
    if let Some(status) = &r.status {
        no_controls("status", status)?;
        if !is_dsn_status(status) {
            return Err(NoticeError::InvalidStatus { field: "status" });
        }
    }
    if let Some(remote) = &r.remote_mta {
        no_controls("remote_mta", remote)?;
        host("remote_mta", remote, true)?;
    }
    if let Some(diag) = &r.diagnostic {
        no_controls("diagnostic", diag)?;
    }
    let status = match kind {
        NoticeKind::Warning => pick_status(r.status.as_deref(), '4', "4.0.0"),
        NoticeKind::Expiry => "4.4.7".to_owned(),
        NoticeKind::Receipt => pick_status(r.status.as_deref(), '2', "2.0.0"),
    };
    Ok(ValidRecipient {
        final_recipient: r.final_recipient.clone(),
        original_recipient: r.original_recipient.clone(),
        status,
        remote_mta: r.remote_mta.clone(),
        diagnostic: r.diagnostic.as_deref().map(bound_reply),
    })
}

fn pick_status(status: Option<&str>, class: char, default: &str) -> String {
    status
        .filter(|s| s.starts_with(class))
        .unwrap_or(default)
        .to_owned()
}

/// Refuses anything that could end or fold a header line, or confuse a reader of it.
fn no_controls(field: &'static str, value: &str) -> Result<(), NoticeError> {
    if value.chars().any(char::is_control) {
        return Err(NoticeError::HeaderInjection { field });
    }
    Ok(())
}

fn printable_ascii(field: &'static str, value: &str) -> Result<(), NoticeError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(NoticeError::InvalidValue {
            field,
            reason: "must be printable ASCII without spaces",
        });
    }
    Ok(())
}

fn address(field: &'static str, value: &str) -> Result<Address, NoticeError> {
    Address::from_str(value).map_err(|e| NoticeError::InvalidAddress {
        field,
        reason: e.to_string(),
    })
}

/// A DNS name (or, for remote MTAs, an address literal such as `[192.0.2.1]` or `[IPv6:...]`).
fn host(field: &'static str, value: &str, literal_ok: bool) -> Result<(), NoticeError> {
    let ok = if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        literal_ok
            && !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':'))
    } else {
        !value.is_empty()
            && value.len() <= 253
            && value.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            })
    };
    if ok {
        Ok(())
    } else {
        Err(NoticeError::InvalidHost { field })
    }
}

fn is_dsn_status(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

fn bound_reply(text: &str) -> String {
    match text.char_indices().nth(MAX_REPLY_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `bytes` as a 7bit body when it is one: ASCII without NUL, CRLF line ends, lines of at most
/// 998 bytes. lettre's own choice would quote-print any line of 76 bytes or more.
fn seven_bit(bytes: Vec<u8>) -> Result<Body, Vec<u8>> {
    let ok = bytes.iter().all(|&b| b.is_ascii() && b != 0)
        && bytes.strip_suffix(b"\r\n").is_some_and(|body| {
            let breaks = body.iter().filter(|&&b| b == b'\n').count();
            body.split(|&b| b == b'\n').enumerate().all(|(i, line)| {
                // Every line but the last was split off a CRLF; no bare CR anywhere else.
                let line = if i < breaks {
                    match line.strip_suffix(b"\r") {
                        Some(l) => l,
                        None => return false,
                    }
                } else {
                    line
                };
                line.len() <= 998 && !line.contains(&b'\r')
            })
        });
    if ok {
        Ok(Body::dangerous_pre_encoded(
            bytes,
            ContentTransferEncoding::SevenBit,
        ))
    } else {
        Err(bytes)
    }
}

fn content_type(value: &str) -> Result<ContentType, NoticeError> {
    ContentType::parse(value).map_err(|e| NoticeError::Build(e.to_string()))
}

fn raw_header(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_owned())
}

fn rfc2822(t: OffsetDateTime) -> String {
    // Years 0..=9999 always format; the caller's clock is never outside that.
    t.format(&Rfc2822).unwrap_or_default()
}

/// The DSN address form: `rfc822; addr` for ASCII, RFC 6533 `utf-8; ...` with `\x{HEX}` for the
/// rest (and for `+`, `=`, `\`, which that form reserves).
fn dsn_address(addr: &str) -> String {
    if addr.is_ascii() {
        return format!("rfc822; {addr}");
    }
    let mut out = String::from("utf-8; ");
    for c in addr.chars() {
        if c.is_ascii_graphic() && !matches!(c, '+' | '=' | '\\') {
            out.push(c);
        } else {
            let _ = write!(out, "\\x{{{:X}}}", c as u32);
        }
    }
    out
}

/// A DSN field line, folded at spaces to stay readable and far below the 998-byte line limit;
/// a word longer than [`MAX_WORD`] is split (it reads back with a space at the split).
/// Non-ASCII in reply texts becomes `?`: the part is 7-bit (the readable part keeps the text).
fn field(out: &mut String, name: &str, value: &str) {
    let value: String = value
        .chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect();
    let words = value.split(' ').flat_map(|w| {
        w.as_bytes()
            .chunks(MAX_WORD)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
    });
    let mut line_len = name.len() + 2;
    out.push_str(name);
    out.push(':');
    for (i, word) in words.enumerate() {
        if i > 0 && line_len + 1 + word.len() > 78 {
            out.push_str("\r\n");
            line_len = 0;
        }
        out.push(' ');
        out.push_str(word);
        line_len += 1 + word.len();
    }
    out.push_str("\r\n");
}

/// Longest unbroken run in a DSN field line (ASCII only by then, so bytes are chars).
const MAX_WORD: usize = 900;

fn delivery_status(input: &NoticeInput, v: &Validated) -> String {
    let o = &input.original;
    let mut out = String::new();
    field(
        &mut out,
        "Reporting-MTA",
        &format!("dns; {}", input.reporting_mta),
    );
    if let Some(qid) = &o.queue_id {
        field(&mut out, "X-Mailtrail-Queue-ID", qid);
    }
    if let Some(envid) = &o.envelope_id {
        field(&mut out, "Original-Envelope-Id", envid);
    }
    field(&mut out, "Arrival-Date", &rfc2822(o.arrival));
    for (r, input_r) in v.recipients.iter().zip(&input.recipients) {
        out.push_str("\r\n");
        if let Some(orig) = &r.original_recipient {
            field(&mut out, "Original-Recipient", &dsn_address(orig));
        }
        field(
            &mut out,
            "Final-Recipient",
            &dsn_address(&r.final_recipient),
        );
        field(&mut out, "Action", input.report.kind().dsn_action());
        field(&mut out, "Status", &r.status);
        if let Some(remote) = &r.remote_mta {
            field(&mut out, "Remote-MTA", &format!("dns; {remote}"));
        }
        if let Some(diag) = &r.diagnostic {
            field(&mut out, "Diagnostic-Code", &format!("smtp; {diag}"));
        }
        if let Some(at) = input_r.last_attempt {
            field(&mut out, "Last-Attempt-Date", &rfc2822(at));
        }
        if let Report::Warning { retry_until, .. } = &input.report {
            field(&mut out, "Will-Retry-Until", &rfc2822(*retry_until));
        }
    }
    out
}

fn readable_text(input: &NoticeInput, v: &Validated, duration: Option<&str>) -> String {
    let texts = input.language.texts();
    let duration = duration.unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}\n",
        texts.intro.replace("{host}", &input.reporting_mta)
    );
    let list = match &input.report {
        Report::Warning { retry_until, .. } => {
            let [a, b] = texts.warning_banner;
            let _ = writeln!(out, "    {a}\n    {b}\n");
            let _ = writeln!(
                out,
                "{}",
                texts.warning_lead.replace("{duration}", duration)
            );
            let until = texts
                .warning_until
                .replace("{date}", &rfc2822(*retry_until));
            let _ = writeln!(out, "{until}\n");
            texts.warning_list
        }
        Report::Expiry { .. } => {
            let _ = writeln!(
                out,
                "{}\n",
                texts.expiry_lead.replace("{duration}", duration)
            );
            texts.expiry_list
        }
        Report::Receipt => texts.receipt_lead,
    };
    let _ = writeln!(out, "{list}\n");
    for (r, input_r) in v.recipients.iter().zip(&input.recipients) {
        let reply = r.diagnostic.as_deref().unwrap_or(texts.no_reply);
        let _ = writeln!(out, "<{}>: {reply}", r.final_recipient);
        let mut details = Vec::new();
        if let Some(remote) = &r.remote_mta {
            details.push(format!("{} {remote}", texts.host));
        }
        if let Some(at) = input_r.last_attempt {
            details.push(format!("{} {}", texts.last_attempt, rfc2822(at)));
        }
        if !details.is_empty() {
            let _ = writeln!(out, "    ({})", details.join(", "));
        }
    }
    if matches!(input.report, Report::Receipt) {
        let _ = writeln!(out, "\n{}", texts.receipt_note);
    }
    if let Some(id) = &v.original_id {
        let _ = writeln!(out, "\n{} {id}", texts.original_id);
    }
    out
}

/// The header section of `raw`, with CRLF line ends, cut at [`MAX_ORIGINAL_HEADERS`].
fn original_headers(raw: &[u8]) -> Vec<u8> {
    let mut end = raw.len();
    // The header section ends at the first empty line.
    for (i, w) in raw.windows(2).enumerate() {
        if w == b"\n\n" || (w == b"\n\r" && raw.get(i + 2) == Some(&b'\n')) {
            end = i + 1;
            break;
        }
    }
    let mut head = &raw[..end];
    if head.len() > MAX_ORIGINAL_HEADERS {
        let cut = head[..MAX_ORIGINAL_HEADERS]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        head = &head[..cut];
    }
    let mut out = Vec::with_capacity(head.len() + 64);
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A boundary that occurs in none of the parts: derived from the notice's id, bumped on a clash.
fn boundary_for(parts: &[SinglePart], seed: &str) -> String {
    let bodies: Vec<Vec<u8>> = parts.iter().map(SinglePart::formatted).collect();
    (0u32..)
        .map(|n| {
            format!(
                "=_mailtrail_{:016x}",
                fnv1a(format!("{seed}/{n}").as_bytes())
            )
        })
        .find(|b| {
            !bodies
                .iter()
                .any(|body| body.windows(b.len()).any(|w| w == b.as_bytes()))
        })
        .expect("some boundary is free")
}

fn notice_message_id(input: &NoticeInput) -> String {
    let o = &input.original;
    // Queue ids repeat over time; with the arrival second they identify the message.
    let qid: String = o
        .queue_id
        .iter()
        .flat_map(|q| q.chars())
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let key = if qid.is_empty() {
        let seed = o.message_id.as_deref().unwrap_or(&o.sender);
        format!("{:016x}", fnv1a(seed.as_bytes()))
    } else {
        qid
    };
    format!(
        "<mailtrail.{}.{}.{key}@{}>",
        input.report.kind().as_str(),
        o.arrival.unix_timestamp(),
        input.reporting_mta
    )
}

/// FNV-1a: a stable, dependency-free hash for ids and boundaries (not security relevant).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
