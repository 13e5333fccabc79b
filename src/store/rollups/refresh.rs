//! [`Store::refresh_stats`]: recomputes the rollups of the days that changed (see the parent
//! module for what is recomputed when).
//!
//! Speed: a first refresh after importing a million log lines aggregates ~260,000 rows into
//! ~460,000 rollup rows. Strings are interned once per refresh, so the maps are keyed by numbers
//! (no allocation per row), and rows are written in primary-key order, so that each insert
//! appends to the same B-tree pages instead of touching a random one.

use super::ALL_DOMAINS;
use crate::model::status::DeliveryStatus;
use crate::stats::{
    DelayHistogram, Dimension, RefreshReport, StatsCounts, date_of, domain_of, local_day_hour,
    month_index,
};
use crate::store::{Store, StoreError};
use rusqlite::{OptionalExtension, Row, Statement, Transaction, params};
use std::collections::{BTreeSet, HashMap};
use time::{OffsetDateTime, UtcOffset};

/// foldhash instead of SipHash: these maps take a million lookups per refresh. Addresses come
/// from mail, but each map lives for one refresh under a fresh random seed, so inputs cannot be
/// lined up to collide (HashDoS) the way they could against a fixed or long-lived hash.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Names in `stats_state`.
const STATE_OFFSET: &str = "offset";
const STATE_MESSAGE_ID: &str = "message_id";
const STATE_ATTEMPT_ID: &str = "attempt_id";
const STATE_REJECT_ID: &str = "reject_id";
pub(super) const STATE_REFRESHED_AT: &str = "refreshed_at";

/// The strings of one refresh (addresses, domains, hosts, categories), each stored once; the
/// rollup keys hold their numbers.
#[derive(Default)]
struct Names {
    ids: FastMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    /// The id of the domain of the address with id `i`, once asked for; `NO_ID` before.
    domains: Vec<u32>,
}

const NO_ID: u32 = u32::MAX;

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 names in a refresh");
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// Each name's place in the sorted list of all names: keys compared by rank are ordered as
    /// SQLite's BINARY collation orders their texts, without comparing strings.
    fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.names.len() as u32).collect();
        order.sort_unstable_by(|a, b| self.names[*a as usize].cmp(&self.names[*b as usize]));
        let mut ranks = vec![0; order.len()];
        for (rank, id) in order.into_iter().enumerate() {
            ranks[id as usize] = rank as u32;
        }
        ranks
    }

    /// The id of the domain of the address `address` (an id), see [`domain_of`].
    fn domain_of(&mut self, address: u32) -> u32 {
        let i = address as usize;
        if self.domains.len() <= i {
            self.domains.resize(i + 1, NO_ID);
        }
        if self.domains[i] == NO_ID {
            let domain = domain_of(&self.names[i]);
            self.domains[i] = self.id(&domain);
        }
        self.domains[i]
    }
}

#[derive(Default)]
struct HourRollup {
    counts: StatsCounts,
    delays: DelayHistogram,
}

/// A `stats_hour` row's key: (local day, hour, sender domain).
type HourKey = (i64, u8, u32);

/// A `stats_key` row's key (`period` a day), or a `stats_key_month` row's (`period` a month):
/// both tables' primary key is (dimension, sender domain, period, key, key2).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct KeyRow {
    dim: Dimension,
    domain: u32,
    period: i64,
    key: u32,
    key2: u32,
}

/// Rollups of a set of days, built in memory before they replace the stored ones.
struct Rollups {
    names: Names,
    /// The id of [`ALL_DOMAINS`].
    all: u32,
    /// The id of the empty string (an absent key2).
    empty: u32,
    hours: FastMap<HourKey, HourRollup>,
    keys: FastMap<KeyRow, StatsCounts>,
}

impl Rollups {
    fn new() -> Self {
        let mut names = Names::default();
        let all = names.id(ALL_DOMAINS);
        let empty = names.id("");
        Rollups {
            names,
            all,
            empty,
            hours: FastMap::default(),
            keys: FastMap::default(),
        }
    }

    /// Each event counts for its sender's domain and for all domains.
    fn hour(&mut self, day: i64, hour: u8, domain: u32) -> [&mut HourRollup; 2] {
        let (own, all) = ((day, hour, domain), (day, hour, self.all));
        self.hours.entry(own).or_default();
        self.hours.entry(all).or_default();
        // Two distinct keys: no domain is ALL_DOMAINS (a domain has no `@`).
        match self.hours.get_disjoint_mut([&own, &all]) {
            [Some(a), Some(b)] => [a, b],
            _ => unreachable!("both entries were just inserted"),
        }
    }

    fn key(
        &mut self,
        dim: Dimension,
        day: i64,
        domain: u32,
        key: u32,
        key2: u32,
        f: impl Fn(&mut StatsCounts),
    ) {
        for domain in [domain, self.all] {
            f(self
                .keys
                .entry(KeyRow {
                    dim,
                    domain,
                    period: day,
                    key,
                    key2,
                })
                .or_default());
        }
    }
}

fn state_value(tx: &Transaction, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT value FROM stats_state WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?)
}

/// Consecutive runs of days: `[first, last]` each.
fn runs(days: &BTreeSet<i64>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &d in days {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == d => *last = d,
            _ => out.push((d, d)),
        }
    }
    out
}

impl Store {
    /// Whether rows were added since the last [`Store::refresh_stats`] (or there was none): a
    /// reader that must not miss them (the CLI after an import) refreshes first.
    pub fn stats_behind(&mut self) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        for (table, mark) in [
            ("message", STATE_MESSAGE_ID),
            ("attempt", STATE_ATTEMPT_ID),
            ("reject", STATE_REJECT_ID),
        ] {
            let Some(mark) = state_value(&tx, mark)? else {
                return Ok(true);
            };
            // Names come from the list above, never from input.
            let newer: bool = tx.query_row(
                &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id > ?1)"),
                [mark],
                |r| r.get(0),
            )?;
            if newer {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Brings the rollups up to date (see the module comment for what is recomputed). Reads
    /// from one snapshot without holding the write lock; writes in one short transaction.
    pub fn refresh_stats(
        &mut self,
        offset: UtcOffset,
        now: OffsetDateTime,
    ) -> Result<RefreshReport, StoreError> {
        let offset_secs = i64::from(offset.whole_seconds());
        let mut report = RefreshReport::default();
        let mut rollups = Rollups::new();
        let (days, marks, totals) = {
            // A deferred transaction: every read below sees the same snapshot.
            let tx = self.conn.transaction()?;
            let max_id = |table: &str| -> Result<i64, StoreError> {
                Ok(tx.query_row(
                    &format!("SELECT COALESCE(MAX(id), 0) FROM {table}"),
                    [],
                    |r| r.get(0),
                )?)
            };
            let marks = [max_id("message")?, max_id("attempt")?, max_id("reject")?];
            let last_offset = state_value(&tx, STATE_OFFSET)?;
            let last_refresh = state_value(&tx, STATE_REFRESHED_AT)?;
            report.full = last_offset != Some(offset_secs) || last_refresh.is_none();
            let days = changed_days(&tx, report.full, offset_secs, now, last_refresh)?;
            for (first, last) in runs(&days) {
                let (start, end) = (
                    first * 86400 - offset_secs,
                    (last + 1) * 86400 - offset_secs,
                );
                aggregate(&tx, &mut rollups, &mut report, start, end, offset_secs)?;
            }
            // The store-wide totals of /metrics, from the same snapshot: counted here, in the
            // background, so that no request scans the tables.
            let totals = crate::store::summaries::count_totals(&tx)?;
            tx.commit()?;
            (days, marks, totals)
        };
        report.days = days.len();

        let tx = self.write_transaction()?;
        replace_rollups(&tx, &rollups, &days, report.full)?;
        save_state(&tx, offset_secs, marks, now, &totals)?;
        tx.commit()?;
        Ok(report)
    }
}

/// The local days whose rollups a refresh recomputes: every day with rows for a full one;
/// else the days of rows added since the last refresh (an attempt also dirties the day its
/// message arrived), plus today and yesterday of the last refresh and of this one.
fn changed_days(
    tx: &Transaction,
    full: bool,
    offset_secs: i64,
    now: OffsetDateTime,
    last_refresh: Option<i64>,
) -> Result<BTreeSet<i64>, StoreError> {
    let local = |unix: i64| local_day_hour(unix, offset_secs).0;
    let mut days = BTreeSet::new();
    let mut collect = |sql: &str, arg: i64| -> Result<(), StoreError> {
        let mut stmt = tx.prepare(sql)?;
        let rows = stmt.query_map(params![arg, offset_secs], |r| r.get::<_, i64>(0))?;
        for d in rows {
            days.insert(d?);
        }
        Ok(())
    };
    // Day numbers in SQL too: (unix + offset) / 86400, floored.
    let day_sql =
        |col: &str| format!("(({col} + ?2) - (({col} + ?2) % 86400 + 86400) % 86400) / 86400");
    if full {
        for (table, col) in [
            ("message", "arrived_at"),
            ("attempt", "at"),
            ("reject", "at"),
        ] {
            let d = day_sql(col);
            collect(
                &format!("SELECT DISTINCT {d} FROM {table} WHERE id > ?1"),
                0,
            )?;
        }
    } else {
        let mark = |name| state_value(tx, name).map(|v| v.unwrap_or(0));
        let (m, a, r) = (
            mark(STATE_MESSAGE_ID)?,
            mark(STATE_ATTEMPT_ID)?,
            mark(STATE_REJECT_ID)?,
        );
        let d = day_sql("arrived_at");
        collect(
            &format!("SELECT DISTINCT {d} FROM message WHERE id > ?1"),
            m,
        )?;
        let d = day_sql("at");
        collect(
            &format!("SELECT DISTINCT {d} FROM attempt WHERE id > ?1"),
            a,
        )?;
        collect(&format!("SELECT DISTINCT {d} FROM reject WHERE id > ?1"), r)?;
        let d = day_sql("m.arrived_at");
        collect(
            &format!(
                "SELECT DISTINCT {d} FROM attempt a JOIN recipient r ON r.id = a.recipient
                 JOIN message m ON m.id = r.message WHERE a.id > ?1"
            ),
            a,
        )?;
        for t in [Some(now.unix_timestamp()), last_refresh]
            .into_iter()
            .flatten()
        {
            days.insert(local(t));
            days.insert(local(t) - 1);
        }
    }
    Ok(days)
}

/// Replaces the rollups of `days` (of every day when `full`) with `rollups`.
fn replace_rollups(
    tx: &Transaction,
    rollups: &Rollups,
    days: &BTreeSet<i64>,
    full: bool,
) -> Result<(), StoreError> {
    if full {
        tx.execute("DELETE FROM stats_hour", [])?;
        tx.execute("DELETE FROM stats_key", [])?;
        tx.execute("DELETE FROM stats_key_month", [])?;
    } else {
        let mut del_hour =
            tx.prepare_cached("DELETE FROM stats_hour WHERE day BETWEEN ?1 AND ?2")?;
        let mut del_key = tx.prepare_cached("DELETE FROM stats_key WHERE day BETWEEN ?1 AND ?2")?;
        for (first, last) in runs(days) {
            // The month sums lose what these days had; they get the new rows below.
            subtract_from_months(tx, first, last)?;
            del_hour.execute(params![first, last])?;
            del_key.execute(params![first, last])?;
        }
    }
    write_rollups(tx, rollups)?;
    if !full {
        tx.execute(
            "DELETE FROM stats_key_month WHERE messages = 0 AND recipients = 0 AND bytes = 0
            AND sent = 0 AND deferred = 0 AND bounced = 0 AND expired = 0 AND rejected = 0",
            [],
        )?;
    }
    Ok(())
}

/// Saves what the next refresh starts from (offset, id marks, time) and the store-wide totals.
fn save_state(
    tx: &Transaction,
    offset_secs: i64,
    marks: [i64; 3],
    now: OffsetDateTime,
    totals: &[(String, i64)],
) -> Result<(), StoreError> {
    let mut put_state = tx.prepare_cached(
        "INSERT INTO stats_state (name, value) VALUES (?1, ?2)
     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?;
    for (name, value) in [
        (STATE_OFFSET, offset_secs),
        (STATE_MESSAGE_ID, marks[0]),
        (STATE_ATTEMPT_ID, marks[1]),
        (STATE_REJECT_ID, marks[2]),
        (STATE_REFRESHED_AT, now.unix_timestamp()),
    ] {
        put_state.execute(params![name, value])?;
    }
    // Statuses that no longer occur must not keep their old count.
    tx.execute("DELETE FROM stats_state WHERE name GLOB 'total.*'", [])?;
    for (name, value) in totals {
        put_state.execute(params![name, value])?;
    }
    drop(put_state);
    Ok(())
}

/// Inserts the day and hour rows of `rollups` and adds their sums to the month rows, each table
/// in its primary key's order.
fn write_rollups(tx: &Transaction, rollups: &Rollups) -> Result<(), StoreError> {
    let names = &rollups.names;
    let rank = names.ranks();
    let rank = |id: u32| rank[id as usize];
    let mut hours: Vec<(&HourKey, &HourRollup)> = rollups.hours.iter().collect();
    // PRIMARY KEY (day, hour, sender_domain).
    hours.sort_unstable_by_key(|((day, hour, domain), _)| (*day, *hour, rank(*domain)));
    let mut put_hour = tx.prepare_cached(
        "INSERT INTO stats_hour (day, hour, sender_domain, messages, recipients, bytes, sent,
            deferred, bounced, expired, rejected, delay_hist)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for ((day, hour, domain), r) in hours {
        put_hour.raw_bind_parameter(1, day)?;
        put_hour.raw_bind_parameter(2, hour)?;
        put_hour.raw_bind_parameter(3, names.name(*domain))?;
        bind_counts(&mut put_hour, 4, &r.counts)?;
        put_hour.raw_bind_parameter(12, r.delays.encode())?;
        put_hour.raw_execute()?;
    }

    let mut days: Vec<(&KeyRow, &StatsCounts)> = rollups.keys.iter().collect();
    let key_order = |k: &KeyRow| (k.dim, rank(k.domain), k.period, rank(k.key), rank(k.key2));
    days.sort_unstable_by_key(|(k, _)| key_order(k));
    let mut put_day = tx.prepare_cached(
        "INSERT INTO stats_key (dimension, sender_domain, day, key, key2, messages,
            recipients, bytes, sent, deferred, bounced, expired, rejected)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let mut month_of_day: FastMap<i64, i64> = FastMap::default();
    // Fewer months than days: at most as many rows as the day rows.
    let mut months: FastMap<KeyRow, StatsCounts> =
        FastMap::with_capacity_and_hasher(days.len(), Default::default());
    for (k, c) in days {
        put_key_row(&mut put_day, names, k, c)?;
        let month = *month_of_day
            .entry(k.period)
            .or_insert_with(|| month_index(date_of(k.period)));
        months
            .entry(KeyRow {
                period: month,
                ..*k
            })
            .or_default()
            .add(c);
    }

    let mut months: Vec<(KeyRow, StatsCounts)> = months.into_iter().collect();
    months.sort_unstable_by_key(|(k, _)| key_order(k));
    let mut add_month = tx.prepare_cached(
        "INSERT INTO stats_key_month (dimension, sender_domain, month, key, key2, messages,
            recipients, bytes, sent, deferred, bounced, expired, rejected)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (dimension, sender_domain, month, key, key2) DO UPDATE SET
            messages = messages + excluded.messages, recipients = recipients + excluded.recipients,
            bytes = bytes + excluded.bytes, sent = sent + excluded.sent,
            deferred = deferred + excluded.deferred, bounced = bounced + excluded.bounced,
            expired = expired + excluded.expired, rejected = rejected + excluded.rejected",
    )?;
    for (k, c) in &months {
        put_key_row(&mut add_month, names, k, c)?;
    }
    Ok(())
}

/// Binds a key row to an insert into `stats_key` or `stats_key_month` and runs it.
fn put_key_row(
    stmt: &mut Statement,
    names: &Names,
    k: &KeyRow,
    c: &StatsCounts,
) -> Result<(), StoreError> {
    stmt.raw_bind_parameter(1, k.dim.as_str())?;
    stmt.raw_bind_parameter(2, names.name(k.domain))?;
    stmt.raw_bind_parameter(3, k.period)?;
    stmt.raw_bind_parameter(4, names.name(k.key))?;
    stmt.raw_bind_parameter(5, names.name(k.key2))?;
    bind_counts(stmt, 6, c)?;
    stmt.raw_execute()?;
    Ok(())
}

/// Binds the eight counters, in their column order (messages … rejected), from parameter
/// `first` on.
fn bind_counts(stmt: &mut Statement, first: usize, c: &StatsCounts) -> rusqlite::Result<()> {
    let counts = [
        c.messages,
        c.recipients,
        c.bytes,
        c.delivered,
        c.deferred,
        c.bounced,
        c.expired,
        c.rejected,
    ];
    for (i, n) in counts.into_iter().enumerate() {
        stmt.raw_bind_parameter(first + i, i64::try_from(n).unwrap_or(i64::MAX))?;
    }
    Ok(())
}

/// Subtracts the stored `stats_key` rows of days `first..=last` from their months' sums.
fn subtract_from_months(tx: &Transaction, first: i64, last: i64) -> Result<(), StoreError> {
    // Day numbers are local dates counted like unix days, so SQLite's UTC calendar applies; it
    // numbers months as `month_index` does.
    let month = "(CAST(strftime('%Y', day * 86400, 'unixepoch') AS INTEGER) * 12
        + CAST(strftime('%m', day * 86400, 'unixepoch') AS INTEGER) - 1)";
    tx.prepare_cached(&format!(
        "UPDATE stats_key_month AS m SET messages = m.messages - d.messages,
            recipients = m.recipients - d.recipients, bytes = m.bytes - d.bytes,
            sent = m.sent - d.sent, deferred = m.deferred - d.deferred,
            bounced = m.bounced - d.bounced, expired = m.expired - d.expired,
            rejected = m.rejected - d.rejected
         FROM (SELECT dimension, sender_domain, {month} AS month, key, key2,
                SUM(messages) AS messages, SUM(recipients) AS recipients, SUM(bytes) AS bytes,
                SUM(sent) AS sent, SUM(deferred) AS deferred, SUM(bounced) AS bounced,
                SUM(expired) AS expired, SUM(rejected) AS rejected
               FROM stats_key WHERE day BETWEEN ?1 AND ?2
               GROUP BY dimension, sender_domain, month, key, key2) AS d
         WHERE m.dimension = d.dimension AND m.sender_domain = d.sender_domain
            AND m.month = d.month AND m.key = d.key AND m.key2 = d.key2"
    ))?
    .execute(params![first, last])?;
    Ok(())
}

/// A text column, borrowed from the row.
fn text<'r>(row: &'r Row, i: usize) -> rusqlite::Result<Option<&'r str>> {
    Ok(row.get_ref(i)?.as_str_or_null()?)
}

/// Adds the rows of `[start, end)` (unix seconds) to `rollups`: messages by arrival, attempts
/// and refused commands by their time.
fn aggregate(
    tx: &Transaction,
    rollups: &mut Rollups,
    report: &mut RefreshReport,
    start: i64,
    end: i64,
    offset_secs: i64,
) -> Result<(), StoreError> {
    let span = Span {
        start,
        end,
        offset_secs,
    };
    aggregate_messages(tx, rollups, report, &span)?;
    aggregate_attempts(tx, rollups, report, &span)?;
    aggregate_rejects(tx, rollups, report, &span)
}

/// Unix times `[start, end)` and the UTC offset of their local days and hours.
struct Span {
    start: i64,
    end: i64,
    offset_secs: i64,
}

impl Span {
    /// The local day number and hour of `unix`.
    fn hour_of(&self, unix: i64) -> (i64, u8) {
        let (day, hour) = local_day_hour(unix, self.offset_secs);
        (day, hour as u8)
    }
}

fn aggregate_messages(
    tx: &Transaction,
    rollups: &mut Rollups,
    report: &mut RefreshReport,
    span: &Span,
) -> Result<(), StoreError> {
    let empty = rollups.empty;
    let mut stmt = tx.prepare_cached(
        "SELECT m.arrived_at, m.mail_from, m.size,
            (SELECT COUNT(*) FROM recipient r WHERE r.message = m.id)
         FROM message m WHERE m.arrived_at >= ?1 AND m.arrived_at < ?2 AND m.handed_to IS NULL",
    )?;
    let mut rows = stmt.query(params![span.start, span.end])?;
    while let Some(row) = rows.next()? {
        report.messages += 1;
        let (day, hour) = span.hour_of(row.get(0)?);
        let sender = rollups.names.id(text(row, 1)?.unwrap_or(""));
        let size = row.get::<_, i64>(2)?.max(0) as u64;
        let recipients = row.get::<_, i64>(3)?.max(0) as u64;
        let domain = rollups.names.domain_of(sender);
        for h in rollups.hour(day, hour, domain) {
            h.counts.messages += 1;
            h.counts.recipients += recipients;
            h.counts.bytes += size;
        }
        rollups.key(Dimension::Sender, day, domain, sender, empty, |c| {
            c.messages += 1;
            c.recipients += recipients;
            c.bytes += size;
        });
    }
    Ok(())
}

fn aggregate_attempts(
    tx: &Transaction,
    rollups: &mut Rollups,
    report: &mut RefreshReport,
    span: &Span,
) -> Result<(), StoreError> {
    let empty = rollups.empty;
    let mut stmt = tx.prepare_cached(
        "SELECT a.at, a.status, a.relay_host, a.delay, a.category, r.address, m.mail_from
         FROM attempt a JOIN recipient r ON r.id = a.recipient JOIN message m ON m.id = r.message
         WHERE a.at >= ?1 AND a.at < ?2",
    )?;
    let mut rows = stmt.query(params![span.start, span.end])?;
    while let Some(row) = rows.next()? {
        report.attempts += 1;
        let (day, hour) = span.hour_of(row.get(0)?);
        // Only names mailtrail wrote are stored; anything else is counted as no outcome.
        let status: Option<DeliveryStatus> = text(row, 1)?.and_then(|t| t.parse().ok());
        let delay: Option<f64> = row.get(3)?;
        let sender = rollups.names.id(text(row, 6)?.unwrap_or(""));
        let domain = rollups.names.domain_of(sender);
        for h in rollups.hour(day, hour, domain) {
            if let Some(status) = status {
                h.counts.count_attempt(status);
            }
            if status == Some(DeliveryStatus::Sent)
                && let Some(d) = delay
            {
                h.delays.record(d);
            }
        }
        let count = |c: &mut StatsCounts| {
            if let Some(status) = status {
                c.count_attempt(status);
            }
        };
        rollups.key(Dimension::Sender, day, domain, sender, empty, count);
        let address = rollups.names.id(text(row, 5)?.unwrap_or(""));
        let rcpt_domain = rollups.names.domain_of(address);
        rollups.key(
            Dimension::RcptDomain,
            day,
            domain,
            rcpt_domain,
            empty,
            count,
        );
        let relay = text(row, 2)?.filter(|r| !r.is_empty()).unwrap_or("none");
        let relay = rollups.names.id(relay);
        rollups.key(Dimension::Relay, day, domain, relay, empty, count);
        if matches!(
            status,
            Some(DeliveryStatus::Bounced | DeliveryStatus::Expired)
        ) {
            let category = rollups.names.id(text(row, 4)?.unwrap_or("unclassified"));
            rollups.key(Dimension::Category, day, domain, category, empty, count);
        }
    }
    Ok(())
}

fn aggregate_rejects(
    tx: &Transaction,
    rollups: &mut Rollups,
    report: &mut RefreshReport,
    span: &Span,
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT at, code, dsn, sender, category FROM reject WHERE at >= ?1 AND at < ?2",
    )?;
    let mut rows = stmt.query(params![span.start, span.end])?;
    while let Some(row) = rows.next()? {
        report.rejects += 1;
        let (day, hour) = span.hour_of(row.get(0)?);
        let code: Option<i64> = row.get(1)?;
        let sender = rollups.names.id(text(row, 3)?.unwrap_or(""));
        let domain = rollups.names.domain_of(sender);
        for h in rollups.hour(day, hour, domain) {
            h.counts.rejected += 1;
        }
        let code = rollups
            .names
            .id(&code.map(|c| c.to_string()).unwrap_or_default());
        let dsn = rollups.names.id(text(row, 2)?.unwrap_or(""));
        rollups.key(Dimension::SmtpError, day, domain, code, dsn, |c| {
            c.rejected += 1
        });
        // A refusal with a category counts under it too (the suppression list's refusals as
        // `suppression-list`), beside the bounces of that category.
        if let Some(category) = text(row, 4)? {
            let category = rollups.names.id(category);
            let empty = rollups.empty;
            rollups.key(Dimension::Category, day, domain, category, empty, |c| {
                c.rejected += 1
            });
        }
    }
    Ok(())
}
