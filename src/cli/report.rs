//! `mailtrail report weekly`: the weekly summary printed, written to a file or sent now.

use super::{CliError, ReportCommand, WeeklyArgs};
use crate::{
    config::Config,
    notify::weekly::{self as report, ReportWeek},
    store::Store,
};
use std::io::Write;
use time::{OffsetDateTime, UtcOffset};

pub fn report_command(
    config: &Config,
    command: ReportCommand,
    offset: UtcOffset,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let ReportCommand::Weekly(args) = command;
    weekly(config, &args, offset, OffsetDateTime::now_utc(), out)
}

fn weekly(
    config: &Config,
    args: &WeeklyArgs,
    offset: UtcOffset,
    now: OffsetDateTime,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let week = match &args.date {
        Some(text) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            let day = time::Date::parse(text, format)
                .map_err(|_| CliError::Usage(format!("--date {text:?}: expected YYYY-MM-DD")))?;
            ReportWeek::ending_on(day.with_time(config.report.at).assume_offset(offset))
        }
        None => ReportWeek::ending_on(report::latest_due(
            now,
            offset,
            config.report.weekday,
            config.report.at,
        )),
    };
    let to = if args.to.is_empty() {
        config.report.recipients.clone()
    } else {
        args.to.clone()
    };
    if args.send && to.is_empty() {
        return Err(CliError::Usage(
            "--send: no recipients (set report.recipients or give --to)".into(),
        ));
    }
    if !config.store.path.exists() {
        return Err(CliError::NotFound(format!(
            "no store at {}: nothing recorded yet",
            config.store.path.display()
        )));
    }
    let mut store = Store::open(&config.store.path)?;
    let weekly = report::build(config, &mut store, week, offset, now)?;
    if args.print {
        // The text part, exactly as mailed.
        out.write_all(weekly.to_text().as_bytes())?;
    }
    if args.eml.is_none() && !args.send {
        return Ok(());
    }
    let from = report::sender(config);
    // A message needs a recipient; a file to look at may go "to" its sender.
    let to = if to.is_empty() {
        vec![from.clone()]
    } else {
        to
    };
    let message = weekly.message(&from, &to)?;
    if let Some(path) = &args.eml {
        std::fs::write(path, message.formatted()).map_err(|source| CliError::Io {
            path: path.clone(),
            source,
        })?;
    }
    if args.send {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(report::submit(config, &message))?;
        writeln!(out, "sent to {}", to.join(", "))?;
    }
    Ok(())
}
