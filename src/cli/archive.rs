//! `mailtrail archive ls|show|export|expire`: all read the store and the Maildir.

use super::{ArchiveCommand, CliError, LsArgs, printable};
use crate::{
    archive::{self, Archive},
    config::Config,
    envelope::ArchiveState,
    store::{MessageFilter, Store, StoredMessage},
    sweep,
};
use mail_parser::MimeHeaders;
use serde::Serialize;
use std::{
    io::{BufWriter, Write},
    path::PathBuf,
    time::SystemTime,
};
use time::OffsetDateTime;

/// A listed message, with the path of its copy for tools that open it.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    message: &'a StoredMessage,
    archive_path: Option<PathBuf>,
}

pub fn archive_command(
    config: &Config,
    command: ArchiveCommand,
    out: &mut impl Write,
) -> Result<(), CliError> {
    match command {
        ArchiveCommand::Ls(args) => ls(config, args, out),
        ArchiveCommand::Show { id, raw, headers } => show(config, &id, raw, headers, out),
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

fn open_store(config: &Config) -> Result<Store, CliError> {
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
        let listed: Vec<Listed> = messages
            .iter()
            .map(|m| Listed {
                message: m,
                archive_path: m
                    .envelope
                    .archive_name
                    .as_deref()
                    .and_then(|n| archive.path_of(n)),
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
    out: &mut impl Write,
) -> Result<(), CliError> {
    let store = open_store(config)?;
    let m = find(&store, id)?;
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

/// Body text keeps its line breaks and tabs; other control characters are replaced.
fn printable_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '?'
            } else {
                c
            }
        })
        .collect()
}
