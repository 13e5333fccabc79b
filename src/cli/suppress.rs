//! `mailtrail suppress`: the suppression list on the command line. Changes go to the store; a
//! running daemon applies them at RCPT within a second or two.

use super::{CliError, printable};
use crate::{
    config::Config,
    store::{DomainScope, Store, suppression::SuppressionFilter},
    suppression::{CSV_COLUMNS, NewSuppression, import::read_csv},
};
use std::io::Write;
use time::UtcOffset;

#[derive(Debug, clap::Subcommand)]
pub enum SuppressCommand {
    /// The entries in force, newest first
    List {
        /// Only the entries for mail from this sender domain ("*": those for every sender)
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Suppress an address (user@example.com) or a whole domain (*@example.com) for mail from
    /// a sender domain ("*": every sender)
    Add {
        address: String,
        #[arg(long, value_name = "DOMAIN")]
        domain: String,
        /// Why, for the operators (not sent to anyone)
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Remove an entry, learned or added by hand
    Remove {
        address: String,
        #[arg(long, value_name = "DOMAIN")]
        domain: String,
    },
    /// Add the entries of a CSV file whose first line names its columns: sender_domain,
    /// address and optionally reason (an export reads back). Nothing is added while a line is
    /// bad, unless --skip-bad
    Import {
        file: std::path::PathBuf,
        /// Add the good lines and report the bad ones
        #[arg(long)]
        skip_bad: bool,
    },
    /// Every entry in force as CSV, to standard output
    Export,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

pub fn suppress_command(
    config: &Config,
    command: SuppressCommand,
    offset: UtcOffset,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let mut store = Store::open(&config.store.path)?;
    if config.suppression.mode == crate::suppression::Mode::Off
        && !matches!(
            command,
            SuppressCommand::List { .. } | SuppressCommand::Export
        )
    {
        // Said, not refused: an operator may fill the list before turning it on.
        eprintln!("note: [suppression] mode is \"off\": the list is kept but not enforced");
    }
    match command {
        SuppressCommand::List { domain, json } => {
            let mut filter = SuppressionFilter::new(DomainScope::All);
            filter.sender_domain = domain
                .map(|d| crate::suppression::parse_sender_domain(&d))
                .transpose()
                .map_err(usage)?;
            let entries = store.suppression_list(&filter, now())?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &entries).map_err(std::io::Error::from)?;
                writeln!(out)?;
                return Ok(());
            }
            if entries.is_empty() {
                writeln!(out, "no entries")?;
            }
            for e in &entries {
                let since = crate::render::local_time(e.created_at, offset);
                let until = e.expires_at.map_or("until removed".into(), |t| {
                    format!("until {}", crate::render::local_time(t, offset))
                });
                writeln!(
                    out,
                    "{:<24} {:<32} {:<7} {} ({until})  {}",
                    e.sender_domain,
                    printable(&e.target),
                    e.source.as_str(),
                    since,
                    printable(&e.why())
                )?;
            }
        }
        SuppressCommand::Add {
            address,
            domain,
            reason,
        } => {
            let entry =
                NewSuppression::parse(&address, &domain, reason.as_deref()).map_err(usage)?;
            store.suppression_add(std::slice::from_ref(&entry), now())?;
            writeln!(
                out,
                "suppressed {} for mail from {}",
                entry.target,
                crate::suppression::sender_label(&entry.sender_domain)
            )?;
        }
        SuppressCommand::Remove { address, domain } => {
            let entry = NewSuppression::parse(&address, &domain, None).map_err(usage)?;
            if !store.suppression_remove(&entry.sender_domain, &entry.target, now())? {
                return Err(CliError::NotFound(format!(
                    "{} is not suppressed for mail from {}",
                    entry.target,
                    crate::suppression::sender_label(&entry.sender_domain)
                )));
            }
            writeln!(
                out,
                "removed {} for mail from {}",
                entry.target, entry.sender_domain
            )?;
        }
        SuppressCommand::Import { file, skip_bad } => {
            let reader = std::fs::File::open(&file).map_err(|source| CliError::Io {
                path: file.clone(),
                source,
            })?;
            let (entries, bad) = read_csv(std::io::BufReader::new(reader))
                .map_err(|e| usage(format!("{}: {e}", file.display())))?;
            for line in &bad {
                eprintln!("{}: {}", file.display(), printable(&line.to_string()));
            }
            if !bad.is_empty() && !skip_bad {
                return Err(usage(format!(
                    "{}: {} bad lines, nothing imported (fix them, or --skip-bad to import the {} good ones)",
                    file.display(),
                    bad.len(),
                    entries.len()
                )));
            }
            let added = store.suppression_add(&entries, now())?;
            writeln!(
                out,
                "{added} entries imported, {} bad lines skipped",
                bad.len()
            )?;
        }
        SuppressCommand::Export => {
            let entries =
                store.suppression_list(&SuppressionFilter::new(DomainScope::All), now())?;
            let mut csv = csv::Writer::from_writer(&mut *out);
            csv.write_record(CSV_COLUMNS)
                .map_err(std::io::Error::from)?;
            for e in &entries {
                csv.write_record(e.csv_fields(offset))
                    .map_err(std::io::Error::from)?;
            }
            csv.flush()?;
        }
    }
    Ok(())
}
