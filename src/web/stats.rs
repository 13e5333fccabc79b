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
use crate::render::local_time;
use crate::stats::{Stats, StatsPeriod, StatsRow, StatsSummary};
use crate::{
    render::chart::{self, Series},
    render::figures,
    render::tables::{self, Cell, Section, Table, table},
    store::DomainScope,
};
use axum::{
    Json,
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
};
use maud::{Markup, PreEscaped, html};
use std::sync::Arc;

/// The period picker's choices.
pub const PERIODS: [(&str, &str); 3] = [
    ("this-month", "This month"),
    ("last-month", "Last month"),
    ("year", "This year"),
];
/// Bars of a horizontal (hosts, senders ...) chart; the table lists the whole top list.
const CHART_TOP: usize = 15;
/// Drawn this wide and scaled to the page's width (the SVG has a viewBox): text stays about
/// the page's size on a common screen.
const CHART_WIDTH: u32 = 1200;

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub(super) struct StatsQuery {
    period: Option<String>,
    domain: Option<String>,
    /// One MTA host's figures, on the dashboard.
    host: Option<String>,
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
            let labels: Vec<String> = rows.iter().map(|c| c.category.to_string()).collect();
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

/// What a request asks for: the period as far as it has come (days not reached yet left out),
/// the stretch to compare it with, the scope and the period as given.
struct Request {
    period: StatsPeriod,
    previous: StatsPeriod,
    scope: DomainScope,
    text: String,
}

/// 400 on a bad period, 403 for a domain outside the user's.
fn request(state: &WebState, user: &CurrentUser, q: &StatsQuery) -> Result<Request, WebError> {
    let text = q
        .period
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or("this-month")
        .to_string();
    let today = state.now().date();
    let asked =
        StatsPeriod::parse(&text, today).map_err(|e| WebError::BadRequest(e.to_string()))?;
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
    Ok(Request {
        period: asked.reached(today),
        previous: asked.previous(today),
        scope,
        text,
    })
}

/// Period and scope of cached statistics.
pub(super) type CacheKey = (time::Date, time::Date, String);
/// Statistics and the refresh (unix seconds) they were read after.
pub(super) type CachedStats = (Option<i64>, Arc<Stats>);
/// Entries kept; the cache starts over beyond (periods × scopes in use is small).
const CACHE_ENTRIES: usize = 64;

/// The statistics a request asks for, and the request.
async fn read_stats(
    state: &WebState,
    user: &CurrentUser,
    q: &StatsQuery,
) -> Result<(Arc<Stats>, Request), WebError> {
    let request = request(state, user, q)?;
    let stats = read_period(state, request.period, &request.scope, q).await?;
    Ok((stats, request))
}

/// The statistics of `period` in `scope` (and `q`'s host, on the dashboard), cached until the
/// rollups change.
async fn read_period(
    state: &WebState,
    period: StatsPeriod,
    scope: &DomainScope,
    q: &StatsQuery,
) -> Result<Arc<Stats>, WebError> {
    if let Some(fleet) = state.fleet_reader() {
        // The hosts' rollups change when each refreshes (every few minutes) and ships: the
        // dashboard reuses what it read within the same minute.
        let host = super::lists::non_empty(&q.host)?;
        let minute = Some(state.now().unix_timestamp().div_euclid(60));
        let key: CacheKey = (period.from, period.to, format!("{scope:?} {host:?}"));
        let cached = state
            .inner
            .stats_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|(at, _)| *at == minute)
            .map(|(_, stats)| stats.clone());
        if let Some(stats) = cached {
            return Ok(stats);
        }
        let stats = Arc::new(fleet.stats(&period, scope, host.as_deref()).await?);
        let mut cache = state
            .inner
            .stats_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, (minute, stats.clone()));
        return Ok(stats);
    }
    let inner = state.inner.clone();
    let scope = scope.clone();
    let stats = state
        .read(move |s| {
            let refreshed = s.stats_refreshed_at()?;
            let key: CacheKey = (period.from, period.to, format!("{scope:?}"));
            let cache = || inner.stats_cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, stats)) = cache().get(&key)
                && *at == refreshed
            {
                return Ok(stats.clone());
            }
            let stats = Arc::new(s.stats(&period, &scope)?);
            let mut cache = cache();
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(key, (refreshed, stats.clone()));
            Ok(stats)
        })
        .await?;
    Ok(stats)
}

pub(super) async fn page(
    State(state): State<WebState>,
    user: CurrentUser,
    Query(q): Query<StatsQuery>,
) -> Result<Response, WebError> {
    let (stats, request) = read_stats(&state, &user, &q).await?;
    let previous = read_period(&state, request.previous, &request.scope, &q).await?;
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
    let host = q.host.unwrap_or_default();
    Ok(view(
        &user,
        (&stats, &previous),
        &request,
        (domain.trim(), host.trim()),
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
    Ok(Json(&*stats).into_response())
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
    let body = csv::document(&t.keys(), t.raw_rows());
    Ok(csv::response(
        &format!("stats-{}.csv", section.slug()),
        body,
    ))
}

/// `(domain, host)`: the page's filters as given.
fn view(
    user: &CurrentUser,
    (stats, previous): (&Stats, &Stats),
    request: &Request,
    (domain, host): (&str, &str),
    charts: &[String],
    offset: time::UtcOffset,
) -> Markup {
    let period = request.text.as_str();
    let mut query = format!("period={}", views::url_encode(period));
    if !domain.is_empty() {
        query.push_str(&format!("&domain={}", views::url_encode(domain)));
    }
    if !host.is_empty() {
        query.push_str(&format!("&host={}", views::url_encode(host)));
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
            @if user.fleet {
                label { "MTA host" input name="host" value=(host) placeholder="all"; }
            }
            button type="submit" { "Show" }
        }
        p.period {
            (request.period.describe()) ", compared with " (request.previous.describe()) " · "
            @match stats.refreshed_at {
                Some(at) => { "as of " (local_time(at, offset)) }
                None => { "not computed yet" }
            }
            " · " a href={ "/stats.json?" (query) } { "JSON" }
        }
        nav.sections {
            @if !stats.by_mta_host.is_empty() { a href="#mta-host" { "By MTA host" } " " }
            @for section in Section::ALL { a href={ "#" (section.slug()) } { (section.title()) } " " }
        }
        @for (section, svg) in Section::ALL.iter().zip(charts) {
            @if *section == Section::Month && !stats.by_mta_host.is_empty() {
                section id="mta-host" {
                    h2 { "By MTA host" }
                    (table_html(&tables::mta_host_table(&stats.by_mta_host), Some(host_link)))
                }
            }
            section id=(section.slug()) {
                h2 { (section.title()) }
                @if *section == Section::Summary {
                    (headline(&stats.summary, &previous.summary))
                }
                p {
                    a href={ "/stats/" (section.slug()) ".json?" (query) } { "JSON" } " · "
                    a href={ "/stats/" (section.slug()) ".csv?" (query) } { "CSV" }
                }
                // Drawn by plotters, whose SVG backend escapes every text it writes.
                div.chart { (PreEscaped(svg)) }
                @if *section != Section::Summary {
                    (table_html(&table(*section, stats), None))
                }
            }
        }
    };
    views::layout("Statistics", "/stats", Some(user), body)
}

/// The summary as figures with their units, each with its change against the earlier period.
fn headline(this: &StatsSummary, previous: &StatsSummary) -> Markup {
    html! {
        dl.headline {
            @for figure in figures::headline(this, previous) {
                div.figure {
                    dt { (figure.label) }
                    dd.value { (figure.this) }
                    dd.change {
                        @if figure.change == "-" {
                            "nothing to compare with"
                        } @else {
                            span class=(figure.trend.class()) { (figure.change) }
                            " · was " (figure.previous)
                        }
                    }
                }
            }
        }
    }
}

fn host_link(host: &str) -> String {
    format!("/stats?host={}", views::url_encode(host))
}

/// `link` makes the first column's cells links (a host to its own statistics).
fn table_html(t: &Table, link: Option<fn(&str) -> String>) -> Markup {
    // A column is set right when its cells are numbers.
    let numeric: Vec<bool> = (0..t.columns.len())
        .map(|i| {
            t.rows
                .first()
                .and_then(|r| r.get(i))
                .is_some_and(Cell::is_number)
        })
        .collect();
    html! {
        table {
            thead { tr { @for (title, num) in t.titles().iter().zip(&numeric) {
                th class=[num.then_some("num")] { (title) }
            } } }
            tbody {
                @for row in &t.rows {
                    tr { @for (i, cell) in row.iter().enumerate() {
                        td class=[cell.is_number().then_some("num")] {
                            @match link.filter(|_| i == 0) {
                                Some(link) => a href=(link(&cell.raw())) { (cell.shown()) },
                                None => (cell.shown()),
                            }
                        }
                    } }
                }
            }
        }
    }
}
