//! `mailtrail status` (the live, today and last-7-days lists of the status pages) and
//! `mailtrail stats` (the statistics of a period, from the rollups).

use super::{CliError, archive::open_store, printable};
use crate::stats::StatsPeriod;
use crate::{
    bounce::Category,
    config::Config,
    render::tables::{Section, table},
    store::{DomainScope, StoreError, SummaryFilter},
};
use std::io::Write;
use time::{OffsetDateTime, UtcOffset};

/// Which list `mailtrail status` prints, as the status pages show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusList {
    /// The last 100 messages of today.
    Live,
    Today,
    /// Today and the 6 days before.
    Week,
}

const LIVE_ROWS: u32 = 100;
/// Longest subject or address printed in a table cell; `--json` has the full text.
const MAX_CELL_CHARS: usize = 40;

fn cut(text: &str) -> String {
    let text = printable(text);
    if text.chars().count() <= MAX_CELL_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_CELL_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Columns padded to their widest cell; columns listed in `right` are right-aligned.
fn write_table(
    out: &mut impl Write,
    header: &[&str],
    rows: &[Vec<String>],
    right: impl Fn(usize) -> bool,
) -> Result<(), CliError> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let w = widths.get(i).copied().unwrap_or(0);
                if right(i) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// `mailtrail status`: the same reads as the status pages' lists (every domain).
/// Runs `read` against the fleet database (`[fleet] database`) on a runtime of its own.
fn with_fleet<T>(
    config: &Config,
    read: impl AsyncFnOnce(crate::store::fleet::FleetReader) -> Result<T, StoreError>,
) -> Result<T, CliError> {
    let fleet = config.fleet.as_ref().ok_or(CliError::NoFleet)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Output)?;
    let reader = crate::store::fleet::FleetReader::new(fleet)?;
    Ok(runtime.block_on(read(reader))?)
}

/// Where `mailtrail status` reads: this host's store, or the fleet database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusSource {
    Local,
    /// Every host's messages, or one host's.
    Fleet {
        host: Option<String>,
    },
}

pub fn status_command(
    config: &Config,
    list: StatusList,
    source: StatusSource,
    json: bool,
    offset: UtcOffset,
    now: OffsetDateTime,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let midnight = now
        .to_offset(offset)
        .replace_time(time::Time::MIDNIGHT)
        .unix_timestamp();
    let since = match list {
        StatusList::Live | StatusList::Today => midnight,
        StatusList::Week => midnight - 6 * 86400,
    };
    let mut filter = SummaryFilter::new(DomainScope::All, since);
    filter.limit = match list {
        StatusList::Live => LIVE_ROWS,
        // Every message of the period, as the pages' CSV download.
        StatusList::Today | StatusList::Week => u32::MAX,
    };
    let (messages, total) = match source {
        StatusSource::Local => {
            let store = open_store(config)?;
            (
                store.message_summaries(&filter)?,
                store.count_summaries(&filter)?,
            )
        }
        StatusSource::Fleet { host } => {
            filter.host = host;
            with_fleet(config, async |reader| {
                let messages = reader.message_summaries(&filter).await?;
                let total = reader.count_summaries_upto(&filter, u64::MAX - 1).await?;
                Ok((messages, total.count))
            })?
        }
    };
    let in_fleet = messages.iter().any(|m| m.host.is_some());
    if json {
        let body = serde_json::json!({ "total": total, "messages": messages });
        serde_json::to_writer_pretty(&mut *out, &body).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = messages
        .iter()
        .map(|m| {
            let mut to = cut(m.first_recipient.as_deref().unwrap_or(""));
            if m.recipients > 1 {
                to.push_str(&format!(" (+{})", m.recipients - 1));
            }
            let host = in_fleet.then(|| printable(m.host.as_deref().unwrap_or("")));
            host.into_iter()
                .chain([
                    crate::render::local_time(m.arrived_at, offset),
                    printable(m.queue_id.as_deref().unwrap_or("")),
                    cut(&m.mail_from),
                    to,
                    cut(m.subject.as_deref().unwrap_or("")),
                    m.size.to_string(),
                    m.status.to_string(),
                    m.category.map_or("", Category::as_str).to_string(),
                ])
                .collect()
        })
        .collect();
    let header: Vec<&str> = in_fleet
        .then_some("host")
        .into_iter()
        .chain([
            "time", "queue id", "from", "to", "subject", "size", "status", "category",
        ])
        .collect();
    let size_column = if in_fleet { 6 } else { 5 };
    write_table(out, &header, &rows, |i| i == size_column)?;
    writeln!(out, "{} of {total} messages", messages.len())?;
    Ok(())
}

/// `mailtrail stats`: refreshes the rollups first when the last refresh is older than
/// `[web] stats_refresh`, or rows were added since (an import), or there was none; then prints
/// every section of `period`.
pub fn stats_command(
    config: &Config,
    period: &str,
    source: StatusSource,
    json: bool,
    offset: UtcOffset,
    now: OffsetDateTime,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let today = now.to_offset(offset).date();
    let period = StatsPeriod::parse(period, today)
        .map_err(|e| CliError::Usage(e.to_string()))?
        .reached(today);
    let stats = match source {
        StatusSource::Local => local_stats(config, &period, offset, now)?,
        StatusSource::Fleet { host } => with_fleet(config, async |reader| {
            reader
                .stats(&period, &DomainScope::All, host.as_deref())
                .await
        })?,
    };
    if json {
        serde_json::to_writer_pretty(&mut *out, &stats).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "Statistics {}{}",
        period.describe(),
        stats
            .refreshed_at
            .map(|at| format!(", as of {}", crate::render::local_time(at, offset)))
            .unwrap_or_default()
    )?;
    for section in Section::ALL {
        let t = table(section, &stats);
        writeln!(out, "\n{}", section.title())?;
        let rows: Vec<Vec<String>> = t
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|c| match c.shown() {
                        shown if shown.is_empty() => "-".into(),
                        shown => cut(&shown),
                    })
                    .collect()
            })
            .collect();
        write_table(out, &t.titles(), &rows, |i| i > 0)?;
    }
    if !stats.by_mta_host.is_empty() {
        writeln!(out, "\nBy MTA host")?;
        let t = crate::render::tables::mta_host_table(&stats.by_mta_host);
        let rows: Vec<Vec<String>> = t
            .rows
            .iter()
            .map(|r| r.iter().map(|c| printable(&c.shown())).collect())
            .collect();
        write_table(out, &t.titles(), &rows, |i| i > 0)?;
    }
    Ok(())
}

/// This host's statistics, refreshed first when the last refresh is older than
/// `[web] stats_refresh` or behind the records.
fn local_stats(
    config: &Config,
    period: &StatsPeriod,
    offset: UtcOffset,
    now: OffsetDateTime,
) -> Result<crate::stats::Stats, CliError> {
    let mut store = open_store(config)?;
    let max_age = i64::try_from(config.web.stats_refresh.as_secs()).unwrap_or(i64::MAX);
    let stale = match store.stats_refreshed_at()? {
        None => true,
        Some(at) => now.unix_timestamp().saturating_sub(at) >= max_age || store.stats_behind()?,
    };
    if stale {
        store.refresh_stats(offset, now)?;
    }
    Ok(store.stats(period, &DomainScope::All)?)
}
