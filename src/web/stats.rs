//! The statistics pages: `/stats` with every section (a server-drawn SVG chart and the table under
//! it), `/stats.json` with all of it, and each section's table as `/stats/SECTION.json` and
//! `/stats/SECTION.csv`. All read the precomputed rollups ([`Store::stats`]).
//!
//! Query: `period` (this-month, last-month, year, or any `mailtrail stats --period` value) and,
//! for a user who may see several domains, `domain` to narrow to one sender domain; a domain
//! outside the user's scope is refused (403) without reading anything.
//!
//! [`Store::stats`]: crate::store::Store::stats

use super::{CurrentUser, WebError, WebState, csv, views};
use crate::{
    chart::{self, Series},
    store::{DomainScope, Stats, StatsPeriod, StatsRow},
};
use axum::{
    Json,
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
};
use maud::{Markup, PreEscaped, html};

/// The period picker's choices.
pub const PERIODS: [(&str, &str); 3] = [
    ("this-month", "This month"),
    ("last-month", "Last month"),
    ("year", "This year"),
];
/// Bars of a horizontal (hosts, senders ...) chart; the table lists the whole top list.
const CHART_TOP: usize = 15;
const CHART_WIDTH: u32 = 760;

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub(super) struct StatsQuery {
    period: Option<String>,
    domain: Option<String>,
}

/// One section of the statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Summary,
    Month,
    Day,
    Weekday,
    Hour,
    RecipientDomain,
    RelayHost,
    Sender,
    SmtpErrors,
    Categories,
}

impl Section {
    pub const ALL: [Section; 10] = [
        Section::Summary,
        Section::Month,
        Section::Day,
        Section::Weekday,
        Section::Hour,
        Section::RecipientDomain,
        Section::RelayHost,
        Section::Sender,
        Section::SmtpErrors,
        Section::Categories,
    ];

    /// The name in URLs.
    pub fn slug(self) -> &'static str {
        match self {
            Section::Summary => "summary",
            Section::Month => "month",
            Section::Day => "day",
            Section::Weekday => "weekday",
            Section::Hour => "hour",
            Section::RecipientDomain => "recipient-domain",
            Section::RelayHost => "relay-host",
            Section::Sender => "sender",
            Section::SmtpErrors => "smtp-errors",
            Section::Categories => "categories",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Section::Summary => "Summary",
            Section::Month => "By month",
            Section::Day => "By day of month",
            Section::Weekday => "By weekday",
            Section::Hour => "By hour",
            Section::RecipientDomain => "By recipient domain",
            Section::RelayHost => "By relay host",
            Section::Sender => "By sender",
            Section::SmtpErrors => "SMTP errors of rejected commands",
            Section::Categories => "Bounce categories",
        }
    }

    fn from_slug(slug: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.slug() == slug)
    }

    fn rows(self, s: &Stats) -> &[StatsRow] {
        match self {
            Section::Month => &s.by_month,
            Section::Day => &s.by_day,
            Section::Weekday => &s.by_weekday,
            Section::Hour => &s.by_hour,
            Section::RecipientDomain => &s.by_recipient_domain,
            Section::RelayHost => &s.by_relay_host,
            Section::Sender => &s.by_sender,
            Section::Summary | Section::SmtpErrors | Section::Categories => &[],
        }
    }

    /// The section's data as JSON.
    fn json(self, s: &Stats) -> serde_json::Value {
        let value = match self {
            Section::Summary => serde_json::to_value(&s.summary),
            Section::SmtpErrors => serde_json::to_value(&s.smtp_errors),
            Section::Categories => serde_json::to_value(&s.categories),
            other => serde_json::to_value(other.rows(s)),
        };
        value.unwrap_or(serde_json::Value::Null)
    }
}

/// A table: header and rows of cells, the same for HTML and CSV.
pub struct Table {
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

fn optional(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_default()
}

/// The table of `section`.
pub fn table(section: Section, s: &Stats) -> Table {
    let attempts = ["delivered", "deferred", "bounced", "expired"];
    let attempt_cells = |r: &StatsRow| {
        let c = &r.counts;
        [c.delivered, c.deferred, c.bounced, c.expired].map(|n| n.to_string())
    };
    match section {
        Section::Summary => {
            let c = &s.summary.counts;
            let rows = [
                ("messages", c.messages.to_string()),
                ("recipients", c.recipients.to_string()),
                ("bytes", c.bytes.to_string()),
                ("delivered", c.delivered.to_string()),
                ("deferred", c.deferred.to_string()),
                ("bounced", c.bounced.to_string()),
                ("expired", c.expired.to_string()),
                ("rejected", c.rejected.to_string()),
                ("delivery_rate", optional(s.summary.delivery_rate, 4)),
                ("delay_p50", optional(s.summary.delay_p50, 1)),
                ("delay_p95", optional(s.summary.delay_p95, 1)),
            ];
            Table {
                header: vec!["field", "value"],
                rows: rows.into_iter().map(|(k, v)| vec![k.into(), v]).collect(),
            }
        }
        Section::SmtpErrors => Table {
            header: vec!["code", "dsn", "count"],
            rows: s
                .smtp_errors
                .iter()
                .map(|e| {
                    vec![
                        e.code.map(|c| c.to_string()).unwrap_or_default(),
                        e.dsn.clone(),
                        e.count.to_string(),
                    ]
                })
                .collect(),
        },
        Section::Categories => Table {
            header: vec!["category", "count"],
            rows: s
                .categories
                .iter()
                .map(|c| vec![c.category.clone(), c.count.to_string()])
                .collect(),
        },
        Section::RecipientDomain | Section::RelayHost => {
            let mut header = vec![if section == Section::RelayHost {
                "relay_host"
            } else {
                "recipient_domain"
            }];
            header.extend(attempts);
            Table {
                header,
                rows: section
                    .rows(s)
                    .iter()
                    .map(|r| {
                        let mut row = vec![r.key.clone()];
                        row.extend(attempt_cells(r));
                        row
                    })
                    .collect(),
            }
        }
        _ => {
            let key = match section {
                Section::Month => "month",
                Section::Day => "day",
                Section::Weekday => "weekday",
                Section::Hour => "hour",
                _ => "sender",
            };
            let mut header = vec![key, "messages", "recipients", "bytes"];
            header.extend(attempts);
            header.push("rejected");
            Table {
                header,
                rows: section
                    .rows(s)
                    .iter()
                    .map(|r| {
                        let c = &r.counts;
                        let mut row = vec![
                            r.key.clone(),
                            c.messages.to_string(),
                            c.recipients.to_string(),
                            c.bytes.to_string(),
                        ];
                        row.extend(attempt_cells(r));
                        row.push(c.rejected.to_string());
                        row
                    })
                    .collect(),
            }
        }
    }
}

/// The chart of `section` as an SVG document.
pub fn chart_svg(section: Section, s: &Stats) -> Result<String, chart::ChartError> {
    let labels = |rows: &[StatsRow]| rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
    let height = |bars: usize| 60 + 22 * bars.max(1) as u32;
    let single = |values: Vec<u64>| vec![Series::new("count", chart::NEUTRAL, values)];
    match section {
        Section::Summary => {
            let c = &s.summary.counts;
            let bars = [
                ("delivered", chart::DELIVERED, c.delivered),
                ("deferred", chart::DEFERRED, c.deferred),
                ("bounced", chart::BOUNCED, c.bounced),
                ("expired", chart::EXPIRED, c.expired),
                ("rejected", chart::NEUTRAL, c.rejected),
            ];
            let labels: Vec<String> = bars.iter().map(|b| b.0.to_string()).collect();
            // One series per bar, so each gets its status colour.
            let series: Vec<Series> = bars
                .iter()
                .enumerate()
                .map(|(i, (name, color, n))| {
                    let mut values = vec![0; bars.len()];
                    values[i] = *n;
                    Series::new(name, *color, values)
                })
                .collect();
            chart::svg(CHART_WIDTH, 240, |root| {
                chart::vertical_bars(root, "Attempts and rejects", &labels, &series)
            })
        }
        Section::Month | Section::Day | Section::Weekday | Section::Hour => {
            let rows = section.rows(s);
            chart::svg(CHART_WIDTH, 260, |root| {
                chart::vertical_bars(
                    root,
                    "Delivery attempts",
                    &labels(rows),
                    &chart::status_series(rows),
                )
            })
        }
        Section::RecipientDomain | Section::RelayHost | Section::Sender => {
            let rows = &section.rows(s)[..section.rows(s).len().min(CHART_TOP)];
            chart::svg(CHART_WIDTH, height(rows.len()), |root| {
                chart::horizontal_bars(
                    root,
                    "Delivery attempts",
                    &labels(rows),
                    &chart::status_series(rows),
                )
            })
        }
        Section::SmtpErrors => {
            let rows = &s.smtp_errors[..s.smtp_errors.len().min(CHART_TOP)];
            let labels: Vec<String> = rows
                .iter()
                .map(|e| {
                    let code = e.code.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
                    format!("{code} {}", e.dsn)
                })
                .collect();
            chart::svg(CHART_WIDTH, height(rows.len()), |root| {
                chart::horizontal_bars(
                    root,
                    "Rejected commands",
                    &labels,
                    &single(rows.iter().map(|e| e.count).collect()),
                )
            })
        }
        Section::Categories => {
            let rows = &s.categories[..s.categories.len().min(CHART_TOP)];
            let labels: Vec<String> = rows.iter().map(|c| c.category.clone()).collect();
            chart::svg(CHART_WIDTH, height(rows.len()), |root| {
                chart::horizontal_bars(
                    root,
                    "Bounced and expired attempts",
                    &labels,
                    &single(rows.iter().map(|c| c.count).collect()),
                )
            })
        }
    }
}

/// The period and scope of a request; 400 on a bad period, 403 for a domain outside the user's.
fn request(
    state: &WebState,
    user: &CurrentUser,
    q: &StatsQuery,
) -> Result<(StatsPeriod, DomainScope, String), WebError> {
    let text = q
        .period
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or("this-month")
        .to_string();
    let period = StatsPeriod::parse(&text, state.now().date())
        .map_err(|e| WebError::BadRequest(e.to_string()))?;
    let scope = match q.domain.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => user.scope(),
        Some(domain) => {
            let domain = domain.to_ascii_lowercase();
            let allowed = match user.scope() {
                DomainScope::All => true,
                DomainScope::Only(list) => list.contains(&domain),
            };
            if !allowed {
                return Err(WebError::Forbidden);
            }
            DomainScope::Only(vec![domain])
        }
    };
    Ok((period, scope, text))
}

async fn read_stats(
    state: &WebState,
    user: &CurrentUser,
    q: &StatsQuery,
) -> Result<(Stats, String), WebError> {
    let (period, scope, text) = request(state, user, q)?;
    let stats = state.read(move |s| s.stats(&period, &scope)).await?;
    Ok((stats, text))
}

pub(super) async fn page(
    State(state): State<WebState>,
    user: CurrentUser,
    Query(q): Query<StatsQuery>,
) -> Result<Response, WebError> {
    let (stats, period) = read_stats(&state, &user, &q).await?;
    let mut charts = Vec::new();
    for section in Section::ALL {
        // A chart that fails to draw leaves its table standing.
        let svg = chart_svg(section, &stats).unwrap_or_else(|e| {
            tracing::warn!("stats chart {}: {e}", section.slug());
            String::new()
        });
        charts.push(svg);
    }
    let domain = q.domain.unwrap_or_default();
    Ok(view(
        &user,
        &stats,
        &period,
        domain.trim(),
        &charts,
        state.inner.offset,
    )
    .into_response())
}

pub(super) async fn all_json(
    State(state): State<WebState>,
    user: CurrentUser,
    Query(q): Query<StatsQuery>,
) -> Result<Response, WebError> {
    let (stats, _) = read_stats(&state, &user, &q).await?;
    Ok(Json(stats).into_response())
}

/// `/stats/SECTION.json` and `/stats/SECTION.csv`.
pub(super) async fn section_export(
    State(state): State<WebState>,
    user: CurrentUser,
    Path(file): Path<String>,
    Query(q): Query<StatsQuery>,
) -> Result<Response, WebError> {
    let (slug, ext) = file.rsplit_once('.').ok_or(WebError::NotFound)?;
    let section = Section::from_slug(slug).ok_or(WebError::NotFound)?;
    if !matches!(ext, "json" | "csv") {
        return Err(WebError::NotFound);
    }
    let (stats, _) = read_stats(&state, &user, &q).await?;
    if ext == "json" {
        return Ok(Json(serde_json::json!({
            "from": stats.from,
            "to": stats.to,
            "refreshed_at": stats.refreshed_at,
            section.slug(): section.json(&stats),
        }))
        .into_response());
    }
    let t = table(section, &stats);
    let body = csv::document(&t.header, t.rows);
    Ok(csv::response(
        &format!("stats-{}.csv", section.slug()),
        body,
    ))
}

fn view(
    user: &CurrentUser,
    stats: &Stats,
    period: &str,
    domain: &str,
    charts: &[String],
    offset: time::UtcOffset,
) -> Markup {
    let mut query = format!("period={}", views::url_encode(period));
    if !domain.is_empty() {
        query.push_str(&format!("&domain={}", views::url_encode(domain)));
    }
    let body = html! {
        form.filter method="get" action="/stats" {
            label { "Period" select name="period" {
                @for (value, label) in PERIODS {
                    option value=(value) selected[period == value] { (label) }
                }
                @if !PERIODS.iter().any(|(v, _)| *v == period) {
                    option value=(period) selected { (period) }
                }
            } }
            @if user.user.domains.len() != 1 {
                label { "Sender domain" input name="domain" value=(domain) placeholder="all"; }
            }
            button type="submit" { "Show" }
        }
        p {
            (stats.from) " to " (stats.to) " (end exclusive) · "
            @match stats.refreshed_at {
                Some(at) => { "as of " (views::time(at, offset)) }
                None => { "not computed yet" }
            }
            " · " a href={ "/stats.json?" (query) } { "JSON" }
        }
        nav.sections {
            @for section in Section::ALL { a href={ "#" (section.slug()) } { (section.title()) } " " }
        }
        @for (section, svg) in Section::ALL.iter().zip(charts) {
            section id=(section.slug()) {
                h2 { (section.title()) }
                p {
                    a href={ "/stats/" (section.slug()) ".json?" (query) } { "JSON" } " · "
                    a href={ "/stats/" (section.slug()) ".csv?" (query) } { "CSV" }
                }
                // Drawn by plotters, whose SVG backend escapes every text it writes.
                div.chart { (PreEscaped(svg)) }
                (table_html(&table(*section, stats)))
            }
        }
    };
    views::layout("Statistics", "/stats", Some(user), body)
}

fn table_html(t: &Table) -> Markup {
    html! {
        table {
            thead { tr { @for h in &t.header { th { (h) } } } }
            tbody {
                @for row in &t.rows {
                    tr { @for (i, cell) in row.iter().enumerate() {
                        @if i == 0 { td { (cell) } } @else { td.num { (cell) } }
                    } }
                }
            }
        }
    }
}
