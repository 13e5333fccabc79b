//! `mailtrail archive ls|show|export|expire`: all read the store and the Maildir.

use super::{ArchiveCommand, CliError, LsArgs, printable};
use crate::{
    archive::sweep,
    archive::{self, Archive},
    bounce::Category,
    config::Config,
    model::{envelope::ArchiveState, status::RecipientStatus},
    store::{MessageFilter, RecipientDelivery, Store, StoredMessage},
};
use mail_parser::MimeHeaders;
use serde::Serialize;
use std::{
    io::{BufWriter, Write},
    path::PathBuf,
    time::SystemTime,
};
use time::OffsetDateTime;

/// A listed message, with the path of its copy for tools that open it and where delivery of
/// each recipient stands.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    message: &'a StoredMessage,
    archive_path: Option<PathBuf>,
    deliveries: Vec<DeliveryState<'a>>,
}

/// A recipient's state in `ls --json`: the attempts themselves only in `show --json`.
#[derive(Serialize)]
struct DeliveryState<'a> {
    address: &'a str,
    orig_to: Option<&'a str>,
    status: RecipientStatus,
    category: Option<Category>,
    dsn: Option<&'a str>,
    attempts: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    final_at: Option<OffsetDateTime>,
}

impl<'a> From<&'a RecipientDelivery> for DeliveryState<'a> {
    fn from(r: &'a RecipientDelivery) -> Self {
        DeliveryState {
            address: &r.address,
            orig_to: r.orig_to.as_deref(),
            status: r.status,
            category: r.category,
            dsn: r.dsn.as_deref(),
            attempts: r.attempts,
            final_at: r.final_at,
        }
    }
}

/// `show --json`: the message, its copy's path and every recipient with its attempts.
#[derive(Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    message: &'a StoredMessage,
    archive_path: Option<PathBuf>,
    deliveries: &'a [RecipientDelivery],
}

pub fn archive_command(
    config: &Config,
    command: ArchiveCommand,
    out: &mut impl Write,
) -> Result<(), CliError> {
    match command {
        ArchiveCommand::Ls(args) => ls(config, args, out),
        ArchiveCommand::Show {
            id,
            raw,
            headers,
            json,
        } => show(config, &id, raw, headers, json, out),
        ArchiveCommand::Export { ids, eml, mbox } => export(config, &ids, eml, mbox, out),
        ArchiveCommand::Expire { dry_run, json } => {
            let report = sweep::expire_archive(config, SystemTime::now(), dry_run)?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::from)?;
                writeln!(out)?;
            } else {
                let verb = if dry_run { "would delete" } else { "deleted" };
                for copy in &report.expired {
                    writeln!(out, "{verb} {} ({} bytes)", copy.name, copy.bytes)?;
                }
                writeln!(
                    out,
                    "{} copies {verb}, {} kept (retention {})",
                    report.expired.len(),
                    report.kept,
                    humantime::format_duration(config.archive.retention)
                )?;
            }
            Ok(())
        }
    }
}

pub(super) fn open_store(config: &Config) -> Result<Store, CliError> {
    if !config.store.path.exists() {
        return Err(CliError::NotFound(format!(
            "no store at {}: has `mailtrail run` recorded anything with this configuration?",
            config.store.path.display()
        )));
    }
    Ok(Store::open(&config.store.path)?)
}

fn ls(config: &Config, args: LsArgs, out: &mut impl Write) -> Result<(), CliError> {
    let store = open_store(config)?;
    let filter = MessageFilter {
        since: args.since.map(|d| OffsetDateTime::now_utc() - d),
        from: args.from,
        to: args.to,
        subject: args.subject,
        limit: Some(args.limit),
    };
    let messages = store.list_messages(&filter)?;
    let archive = Archive::open_existing(&config.archive.dir);
    if args.json {
        let deliveries = messages
            .iter()
            .map(|m| store.deliveries(m.id))
            .collect::<Result<Vec<_>, _>>()?;
        let listed: Vec<Listed> = messages
            .iter()
            .zip(&deliveries)
            .map(|(m, d)| Listed {
                message: m,
                archive_path: m
                    .envelope
                    .archive_name
                    .as_deref()
                    .and_then(|n| archive.path_of(n)),
                deliveries: d.iter().map(DeliveryState::from).collect(),
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &listed).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>6}  {:<20}  {:<12}  {:<30}  {:<30}  SUBJECT",
        "ID", "ARRIVED (UTC)", "QUEUE ID", "FROM", "TO"
    )?;
    for m in &messages {
        let e = &m.envelope;
        let to = match e.recipients.as_slice() {
            [] => String::new(),
            [one] => one.address.clone(),
            [first, rest @ ..] => format!("{} +{}", first.address, rest.len()),
        };
        writeln!(
            out,
            "{:>6}  {:<20}  {:<12}  {:<30}  {:<30}  {}",
            m.id,
            format_time(e.arrived_at),
            e.queue_id.as_deref().unwrap_or("-"),
            printable(if e.mail_from.is_empty() {
                "<>"
            } else {
                &e.mail_from
            }),
            printable(&to),
            printable(e.subject.as_deref().unwrap_or("")),
        )?;
    }
    Ok(())
}

/// A row id when the text is a number that exists, else the newest message with that queue id.
fn find(store: &Store, id: &str) -> Result<StoredMessage, CliError> {
    if let Ok(n) = id.parse::<i64>()
        && let Some(m) = store.message(n)?
    {
        return Ok(m);
    }
    store
        .messages_by_queue_id(id)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            CliError::NotFound(format!("no message with id or queue id {}", printable(id)))
        })
}

fn copy_of(config: &Config, m: &StoredMessage) -> Result<Vec<u8>, CliError> {
    match (&m.envelope.archive_name, m.envelope.archive_state) {
        (Some(name), ArchiveState::Stored) => {
            Ok(Archive::open_existing(&config.archive.dir).read(name)?)
        }
        (_, state) => Err(CliError::NotFound(format!(
            "message {} has no archived copy (archive state: {})",
            m.id,
            state.as_str()
        ))),
    }
}

fn show(
    config: &Config,
    id: &str,
    raw: bool,
    headers_only: bool,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let store = open_store(config)?;
    let m = find(&store, id)?;
    if json {
        let shown = Shown {
            message: &m,
            archive_path: m
                .envelope
                .archive_name
                .as_deref()
                .and_then(|n| Archive::open_existing(&config.archive.dir).path_of(n)),
            deliveries: &store.deliveries(m.id)?,
        };
        serde_json::to_writer_pretty(&mut *out, &shown).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    if raw {
        out.write_all(&copy_of(config, &m)?)?;
        return Ok(());
    }
    if headers_only {
        let copy = copy_of(config, &m)?;
        let end = find_header_end(&copy);
        out.write_all(&copy[..end])?;
        return Ok(());
    }
    let e = &m.envelope;
    let field = |v: &Option<String>| v.as_deref().map(printable).unwrap_or_else(|| "-".into());
    writeln!(out, "Message:     {}", m.id)?;
    writeln!(out, "Queue id:    {}", field(&e.queue_id))?;
    writeln!(out, "Arrived:     {}", format_time(e.arrived_at))?;
    writeln!(out, "MTA:         {}", field(&e.mta_host))?;
    writeln!(
        out,
        "Client:      {} [{}]",
        field(&e.client_name),
        field(&e.client_addr)
    )?;
    writeln!(out, "HELO:        {}", field(&e.helo))?;
    writeln!(out, "SASL user:   {}", field(&e.sasl_user))?;
    writeln!(
        out,
        "From:        <{}> {}",
        printable(&e.mail_from),
        printable(&e.mail_args.join(" "))
    )?;
    for r in &e.recipients {
        writeln!(
            out,
            "To:          <{}> {}",
            printable(&r.address),
            printable(&r.args.join(" "))
        )?;
    }
    if e.recipients_dropped > 0 {
        writeln!(
            out,
            "To:          ... and {} more not recorded",
            e.recipients_dropped
        )?;
    }
    writeln!(out, "Size:        {} bytes", e.size)?;
    writeln!(out, "Message-ID:  {}", field(&e.message_id))?;
    writeln!(out, "Subject:     {}", field(&e.subject))?;
    writeln!(out, "Mode:        {} (receipts {:?})", e.mode, e.receipts)?;
    writeln!(
        out,
        "Archive:     {} {}",
        e.archive_state.as_str(),
        field(&e.archive_name)
    )?;
    write_deliveries(&store.deliveries(m.id)?, out)?;
    if let Ok(copy) = copy_of(config, &m)
        && let Some(parsed) = mail_parser::MessageParser::default().parse(&copy)
    {
        writeln!(out)?;
        if let Some(text) = parsed.body_text(0) {
            writeln!(out, "{}", printable_text(&text))?;
        }
        for attachment in parsed.attachments() {
            writeln!(
                out,
                "[attachment: {} ({} bytes)]",
                printable(attachment.attachment_name().unwrap_or("unnamed")),
                attachment.contents().len()
            )?;
        }
    }
    Ok(())
}

/// Each recipient's state and its attempts, oldest first:
///
/// ```text
/// Delivery:
///   <grey@dest.example>  sent, 3 attempts, final 2026-11-23 19:50:04
///     2026-11-23 19:50:01  deferred  mx.dest.example[192.0.2.25]:25  4.7.1  greylisting-issues
///                          451 4.7.1 Greylisting in effect (in reply to RCPT TO command)
/// ```
fn write_deliveries(
    deliveries: &[RecipientDelivery],
    out: &mut impl Write,
) -> Result<(), CliError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "Delivery:")?;
    for r in deliveries {
        let orig = r
            .orig_to
            .as_deref()
            .map(|o| format!(" (to <{}>)", printable(o)))
            .unwrap_or_default();
        let category = r.category.map(|c| format!(" [{c}]")).unwrap_or_default();
        let final_at = r
            .final_at
            .map(|t| format!(", final {}", format_time(t)))
            .unwrap_or_default();
        let plural = if r.attempts == 1 { "" } else { "s" };
        writeln!(
            out,
            "  <{}>{orig}  {}{category}, {} attempt{plural}{final_at}",
            printable(&r.address),
            r.status,
            r.attempts,
        )?;
        for a in &r.attempt_list {
            let relay = match (&a.relay_host, &a.relay_ip, a.relay_port) {
                (Some(h), Some(ip), Some(p)) => format!("{}[{}]:{p}", printable(h), printable(ip)),
                (Some(h), Some(ip), None) => format!("{}[{}]", printable(h), printable(ip)),
                (Some(h), None, _) => printable(h),
                _ => "-".into(),
            };
            writeln!(
                out,
                "    {}  {:<8}  {}  {}  {}",
                format_time(a.at),
                a.status.as_str(),
                relay,
                a.dsn
                    .as_deref()
                    .map(printable)
                    .unwrap_or_else(|| "-".into()),
                a.category.map_or("-", Category::as_str),
            )?;
            if !a.reply.is_empty() {
                writeln!(out, "{:25}{}", "", printable(&a.reply))?;
            }
        }
    }
    Ok(())
}

fn export(
    config: &Config,
    ids: &[String],
    eml: Option<PathBuf>,
    mbox: Option<PathBuf>,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let store = open_store(config)?;
    // Resolve everything first: a typo must not leave a half-written export.
    let messages = ids
        .iter()
        .map(|id| {
            let m = find(&store, id)?;
            let copy = copy_of(config, &m)?;
            Ok((m, copy))
        })
        .collect::<Result<Vec<_>, CliError>>()?;
    if let Some(dir) = eml {
        for (m, copy) in &messages {
            let name = m.envelope.archive_name.as_deref().unwrap_or("message");
            let path = archive::export_eml(&dir, name, copy).map_err(|source| CliError::Io {
                path: dir.clone(),
                source,
            })?;
            writeln!(out, "{}", path.display())?;
        }
    } else if let Some(path) = mbox {
        let io_err = |source| CliError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err)?;
        let mut file = BufWriter::new(file);
        for (m, copy) in &messages {
            archive::export_mbox(
                &mut file,
                &m.envelope.mail_from,
                m.envelope.arrived_at,
                copy,
            )
            .map_err(io_err)?;
        }
        file.flush().map_err(io_err)?;
        writeln!(
            out,
            "{} messages appended to {}",
            messages.len(),
            path.display()
        )?;
    }
    Ok(())
}

fn find_header_end(message: &[u8]) -> usize {
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| message.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(message.len())
}

fn format_time(t: OffsetDateTime) -> String {
    t.format(&time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

/// Body text keeps its line breaks (CRLF printed as LF) and tabs; other control characters
/// are replaced.
fn printable_text(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
