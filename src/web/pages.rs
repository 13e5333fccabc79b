//! Route handlers: each list as HTML, JSON and CSV, the message detail, the raw log, the live
//! event stream, `/metrics` and `/healthz`.

use super::{
    CurrentUser, WebError, WebState, csv,
    views::{self, ListPage, ListQuery, RawPage},
};
use crate::render::local_time;
use crate::store::{
    DomainScope, MessageCount, MessageSummary, RawLine, StoredMessage, SummaryFilter,
};
use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::stream::{self, Stream};
use serde::Serialize;
use std::{convert::Infallible, fmt::Write, time::Duration};

const PER_PAGE: u32 = 50;
const LIVE_ROWS: u32 = 100;
/// Rows of a list's CSV download (all pages of the filtered list, up to this many).
const CSV_MAX_ROWS: u32 = 100_000;
/// Lines shown on the raw page; downloads get up to [`RAW_DOWNLOAD_LINES`].
const RAW_PAGE_LINES: u32 = 2000;
const RAW_DOWNLOAD_LINES: u32 = 200_000;
/// Matches a list counts at most: past this many the pager says "10,000+" (counting every
/// match of a big period would scan all of them on each page view).
pub(super) const COUNT_CAP: u64 = 10_000;
const LIVE_POLL: Duration = Duration::from_secs(2);

/// Which list a request is for.
#[derive(Clone, Copy)]
enum Period {
    Live,
    Today,
    Week,
}

impl Period {
    fn path(self) -> &'static str {
        match self {
            Period::Live => "/live",
            Period::Today => "/today",
            Period::Week => "/week",
        }
    }
}

/// Longest filter text accepted: longer is no search a person types, and SQLite refuses
/// `LIKE` patterns of 50,000 bytes with an error.
const MAX_FILTER_LEN: usize = 500;

/// A query parameter, trimmed, `None` when empty; `Err` (400) when over [`MAX_FILTER_LEN`].
fn non_empty(v: &Option<String>) -> Result<Option<String>, WebError> {
    let v = v.as_deref().map(str::trim).filter(|v| !v.is_empty());
    match v {
        Some(v) if v.len() > MAX_FILTER_LEN => Err(WebError::BadRequest(format!(
            "a filter holds at most {MAX_FILTER_LEN} bytes"
        ))),
        v => Ok(v.map(str::to_owned)),
    }
}

/// The store filter for a list request; `Err` on an unknown status.
fn list_filter(
    state: &WebState,
    user: &CurrentUser,
    period: Period,
    q: &ListQuery,
) -> Result<(SummaryFilter, u32), WebError> {
    let since = match period {
        Period::Live | Period::Today => state.day_start(0),
        Period::Week => state.day_start(6),
    };
    let mut filter = SummaryFilter::new(user.scope(), since);
    filter.from = non_empty(&q.from)?;
    filter.to = non_empty(&q.to)?;
    filter.subject = non_empty(&q.subject)?;
    filter.category = non_empty(&q.category)?;
    filter.status = non_empty(&q.status)?;
    if let Some(status) = &filter.status
        && !views::STATUSES.contains(&status.as_str())
    {
        return Err(WebError::BadRequest(format!("unknown status {status:?}")));
    }
    let page = match non_empty(&q.page)? {
        None => 1,
        Some(p) => p
            .parse::<u32>()
            .ok()
            .filter(|p| (1..=100_000).contains(p))
            .ok_or_else(|| WebError::BadRequest("page must be a positive number".into()))?,
    };
    match period {
        Period::Live => filter.limit = LIVE_ROWS,
        Period::Today | Period::Week => {
            filter.limit = PER_PAGE;
            filter.offset = (page - 1) * PER_PAGE;
        }
    }
    Ok((filter, page))
}

#[derive(Serialize)]
struct ListJson {
    page: u32,
    per_page: u32,
    /// The matches, at most [`COUNT_CAP`].
    total: u64,
    /// More than `total` messages match.
    total_capped: bool,
    messages: Vec<MessageSummary>,
}

async fn fetch(
    state: &WebState,
    filter: SummaryFilter,
) -> Result<(Vec<MessageSummary>, MessageCount), WebError> {
    state
        .read(move |s| {
            Ok((
                s.message_summaries(&filter)?,
                s.count_summaries_upto(&filter, COUNT_CAP)?,
            ))
        })
        .await
}

/// The rows alone, for downloads (no pager, so no count).
async fn fetch_rows(
    state: &WebState,
    filter: SummaryFilter,
) -> Result<Vec<MessageSummary>, WebError> {
    state.read(move |s| s.message_summaries(&filter)).await
}

async fn list_html(
    state: WebState,
    user: CurrentUser,
    period: Period,
    q: ListQuery,
) -> Result<Response, WebError> {
    let (filter, page) = list_filter(&state, &user, period, &q)?;
    let (rows, total) = fetch(&state, filter).await?;
    let offset = state.inner.offset;
    if let Period::Live = period {
        return Ok(views::live(&user, &rows, offset).into_response());
    }
    let title = match period {
        Period::Week => "Last 7 days",
        _ => "Today",
    };
    let page_view = ListPage {
        title,
        path: period.path(),
        query: &q,
        rows: &rows,
        page,
        pages: total.count.div_ceil(u64::from(PER_PAGE)) as u32,
        total,
    };
    Ok(views::list(&user, page_view, offset).into_response())
}

async fn list_json(
    state: WebState,
    user: CurrentUser,
    period: Period,
    q: ListQuery,
) -> Result<Response, WebError> {
    let (filter, page) = list_filter(&state, &user, period, &q)?;
    let per_page = filter.limit;
    let (messages, total) = fetch(&state, filter).await?;
    Ok(Json(ListJson {
        page,
        per_page,
        total: total.count,
        total_capped: total.capped,
        messages,
    })
    .into_response())
}

const LIST_CSV_HEADER: [&str; 10] = [
    "id",
    "arrived_at",
    "queue_id",
    "from",
    "first_recipient",
    "recipients",
    "subject",
    "size",
    "status",
    "category",
];

async fn list_csv(
    state: WebState,
    user: CurrentUser,
    period: Period,
    q: ListQuery,
) -> Result<Response, WebError> {
    let (mut filter, _) = list_filter(&state, &user, period, &q)?;
    if !matches!(period, Period::Live) {
        // A download is the whole filtered list, not one page of it.
        filter.limit = CSV_MAX_ROWS;
        filter.offset = 0;
    }
    let rows = fetch_rows(&state, filter).await?;
    let offset = state.inner.offset;
    let body = csv::document(
        &LIST_CSV_HEADER,
        rows.into_iter().map(|m| {
            vec![
                m.id.to_string(),
                local_time(m.arrived_at, offset),
                m.queue_id.unwrap_or_default(),
                m.mail_from,
                m.first_recipient.unwrap_or_default(),
                m.recipients.to_string(),
                m.subject.unwrap_or_default(),
                m.size.to_string(),
                m.status,
                m.category.unwrap_or_default(),
            ]
        }),
    );
    let name = format!("{}.csv", period.path().trim_start_matches('/'));
    Ok(csv::response(&name, body))
}

macro_rules! list_routes {
    ($($name:ident => $render:ident, $period:expr;)*) => {$(
        pub(super) async fn $name(
            State(state): State<WebState>,
            user: CurrentUser,
            Query(q): Query<ListQuery>,
        ) -> Result<Response, WebError> {
            $render(state, user, $period, q).await
        }
    )*};
}

list_routes! {
    live => list_html, Period::Live;
    live_json => list_json, Period::Live;
    live_csv => list_csv, Period::Live;
    today => list_html, Period::Today;
    today_json => list_json, Period::Today;
    today_csv => list_csv, Period::Today;
    week => list_html, Period::Week;
    week_json => list_json, Period::Week;
    week_csv => list_csv, Period::Week;
}

#[derive(serde::Deserialize)]
pub(super) struct LiveQuery {
    after: Option<i64>,
}

/// New messages of today as server-rendered rows, polled from the store every 2 s.
pub(super) async fn live_events(
    State(state): State<WebState>,
    user: CurrentUser,
    headers: HeaderMap,
    Query(q): Query<LiveQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // A reconnecting browser says where it stopped.
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let after = resume.or(q.after).unwrap_or(0);
    let start = (state, user, after, true);
    let events = stream::unfold(start, |(state, user, mut after, first)| async move {
        if !first {
            tokio::time::sleep(LIVE_POLL).await;
        }
        let mut filter = SummaryFilter::new(user.scope(), state.day_start(0));
        filter.after_id = Some(after);
        filter.limit = LIVE_ROWS;
        let rows = match state.read(move |s| s.message_summaries(&filter)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("live events: {e}");
                Vec::new()
            }
        };
        // Oldest first: the page inserts each at the top.
        let events: Vec<Result<Event, Infallible>> = rows
            .iter()
            .rev()
            .map(|m| {
                let row = views::message_row(m, state.inner.offset).into_string();
                Ok(Event::default().id(m.id.to_string()).data(row))
            })
            .collect();
        after = rows.iter().map(|m| m.id).max().unwrap_or(after).max(after);
        Some((stream::iter(events), (state, user, after, false)))
    });
    use futures_util::StreamExt;
    Sse::new(events.flatten()).keep_alive(KeepAlive::default())
}

/// The message if it exists and this user may see it; 404 otherwise (never "forbidden", which
/// would tell that the id exists).
async fn visible_message(
    state: &WebState,
    user: &CurrentUser,
    id: i64,
) -> Result<StoredMessage, WebError> {
    let found = state.read(move |s| s.message(id)).await?;
    match found {
        Some(m) if user.user.may_see(&m.envelope.mail_from) => Ok(m),
        _ => Err(WebError::NotFound),
    }
}

#[derive(Serialize)]
struct MessageJson {
    message: StoredMessage,
    recipients: Vec<crate::store::RecipientDelivery>,
    notices: Vec<crate::store::MessageNotice>,
}

pub(super) async fn message(
    State(state): State<WebState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let (id, json) = match id.strip_suffix(".json") {
        Some(id) => (id, true),
        None => (id.as_str(), false),
    };
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    let message = visible_message(&state, &user, id).await?;
    let (recipients, notices) = state
        .read(move |s| Ok((s.deliveries(id)?, s.message_notices(id)?)))
        .await?;
    if json {
        return Ok(Json(MessageJson {
            message,
            recipients,
            notices,
        })
        .into_response());
    }
    let archived = match &message.envelope.archive_name {
        Some(name) => state
            .archived(name.clone())
            .await?
            .map(|bytes| archived_view(&bytes)),
        None => None,
    };
    Ok(views::message(
        &user,
        &message,
        &recipients,
        &notices,
        archived.as_ref(),
        state.inner.offset,
    )
    .into_response())
}

/// Headers as written (unfolded), the first text part, the HTML part and the attachment list.
fn archived_view(bytes: &[u8]) -> views::ArchivedView {
    use mail_parser::MimeHeaders;
    let head_end = memchr::memmem::find(bytes, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(bytes, b"\n\n"))
        .unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_string(), value.trim().to_string()));
        }
    }
    let parsed = mail_parser::MessageParser::default().parse(bytes);
    let (text, html, attachments) = match &parsed {
        None => (None, None, Vec::new()),
        Some(msg) => (
            msg.body_text(0).map(|t| t.into_owned()),
            // The first real HTML part (`body_html` would render a text part as HTML).
            msg.parts.iter().find_map(|p| match &p.body {
                mail_parser::PartType::Html(html) => Some(html.to_string()),
                _ => None,
            }),
            msg.attachments()
                .map(|a| {
                    let ctype = a
                        .content_type()
                        .map(|c| match c.subtype() {
                            Some(sub) => format!("{}/{sub}", c.ctype()),
                            None => c.ctype().to_string(),
                        })
                        .unwrap_or_else(|| "application/octet-stream".into());
                    (
                        a.attachment_name().unwrap_or("unnamed").to_string(),
                        ctype,
                        a.contents().len(),
                    )
                })
                .collect(),
        ),
    };
    views::ArchivedView {
        headers,
        text,
        html,
        attachments,
    }
}

pub(super) async fn message_eml(
    State(state): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let message = visible_message(&state, &user, id).await?;
    let Some(name) = message.envelope.archive_name else {
        return Err(WebError::NotFound);
    };
    let bytes = state.archived(name).await?.ok_or(WebError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, "message/rfc822".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"message-{id}.eml\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(serde::Deserialize, Default)]
pub(super) struct RawQuery {
    days: Option<String>,
    q: Option<String>,
    queue_id: Option<String>,
}

struct RawRequest {
    days: u32,
    q: String,
    queue_id: String,
}

async fn raw_lines(
    state: &WebState,
    user: &CurrentUser,
    query: RawQuery,
    limit: u32,
) -> Result<(RawRequest, Vec<RawLine>), WebError> {
    let days = match non_empty(&query.days)?.as_deref() {
        None | Some("1") => 1,
        Some("7") => 7,
        Some(_) => return Err(WebError::BadRequest("days must be 1 or 7".into())),
    };
    let request = RawRequest {
        days,
        q: non_empty(&query.q)?.unwrap_or_default(),
        queue_id: non_empty(&query.queue_id)?.unwrap_or_default(),
    };
    let since = state.day_start(i64::from(days) - 1);
    let scope: DomainScope = user.scope();
    let (q, qid) = (request.q.clone(), request.queue_id.clone());
    let lines = state
        .read(move |s| {
            s.raw_lines(
                &scope,
                since,
                Some(q.as_str()).filter(|q| !q.is_empty()),
                Some(qid.as_str()).filter(|q| !q.is_empty()),
                limit,
            )
        })
        .await?;
    Ok((request, lines))
}

pub(super) async fn raw(
    State(state): State<WebState>,
    user: CurrentUser,
    Query(query): Query<RawQuery>,
) -> Result<Response, WebError> {
    let (request, lines) = raw_lines(&state, &user, query, RAW_PAGE_LINES + 1).await?;
    let truncated = lines.len() > RAW_PAGE_LINES as usize;
    let shown = &lines[..lines.len().min(RAW_PAGE_LINES as usize)];
    let page = RawPage {
        days: request.days,
        q: &request.q,
        queue_id: &request.queue_id,
        lines: shown,
        truncated,
    };
    Ok(views::raw(&user, page, state.inner.offset).into_response())
}

pub(super) async fn raw_json(
    State(state): State<WebState>,
    user: CurrentUser,
    Query(query): Query<RawQuery>,
) -> Result<Response, WebError> {
    let (_, lines) = raw_lines(&state, &user, query, RAW_DOWNLOAD_LINES).await?;
    Ok(Json(serde_json::json!({ "lines": lines })).into_response())
}

pub(super) async fn raw_csv(
    State(state): State<WebState>,
    user: CurrentUser,
    Query(query): Query<RawQuery>,
) -> Result<Response, WebError> {
    let (_, lines) = raw_lines(&state, &user, query, RAW_DOWNLOAD_LINES).await?;
    let offset = state.inner.offset;
    let body = csv::document(
        &["id", "at", "queue_id", "line"],
        lines.into_iter().map(|l| {
            vec![
                l.id.to_string(),
                local_time(l.at, offset),
                l.queue_id.unwrap_or_default(),
                l.line,
            ]
        }),
    );
    Ok(csv::response("raw-log.csv", body))
}

pub(super) async fn raw_txt(
    State(state): State<WebState>,
    user: CurrentUser,
    Query(query): Query<RawQuery>,
) -> Result<Response, WebError> {
    let (_, lines) = raw_lines(&state, &user, query, RAW_DOWNLOAD_LINES).await?;
    let mut body = String::new();
    for l in lines {
        body.push_str(&l.line);
        body.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"raw-log.txt\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// Prometheus text format. Totals cross domains, so scoped users get 403.
pub(super) async fn metrics(
    State(state): State<WebState>,
    user: CurrentUser,
) -> Result<Response, WebError> {
    if !user.user.domains.is_empty() {
        return Err(WebError::Forbidden);
    }
    let (totals, counters, refreshed_at, notices, newest_line) = state
        .read(|s| {
            Ok((
                s.totals()?,
                s.counters()?,
                s.stats_refreshed_at()?,
                s.notices_sent_between(0, i64::MAX)?,
                s.newest_log_line_at()?,
            ))
        })
        .await?;
    let now = state.now().unix_timestamp();
    let out = prometheus_text(&totals, counters, refreshed_at, notices, newest_line, now);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// The metrics in Prometheus's text format.
fn prometheus_text(
    totals: &crate::store::Totals,
    counters: std::collections::BTreeMap<String, u64>,
    refreshed_at: Option<i64>,
    notices: std::collections::BTreeMap<String, u64>,
    newest_line: Option<i64>,
    now: i64,
) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "mailtrail_messages",
        "gauge",
        "Messages in the store (as of the last statistics refresh).",
        &[(String::new(), totals.messages)],
    );
    metric(
        "mailtrail_archived_messages",
        "gauge",
        "Messages whose copy is in the archive (as of the last statistics refresh).",
        &[(String::new(), totals.archived_messages)],
    );
    metric(
        "mailtrail_archive_bytes",
        "gauge",
        "Bytes of the archived copies (as of the last statistics refresh).",
        &[(String::new(), totals.archived_bytes)],
    );
    let labelled = |pairs: &[(String, u64)], label: &str| -> Vec<(String, u64)> {
        pairs
            .iter()
            .map(|(value, n)| (format!("{{{label}=\"{}\"}}", prom_escape(value)), *n))
            .collect()
    };
    metric(
        "mailtrail_attempts",
        "gauge",
        "Delivery attempts in the store by status (as of the last statistics refresh).",
        &labelled(&totals.attempts, "status"),
    );
    metric(
        "mailtrail_recipients",
        "gauge",
        "Recipients in the store by state (as of the last statistics refresh).",
        &labelled(&totals.recipients, "status"),
    );
    let notices: Vec<(String, u64)> = notices.into_iter().collect();
    metric(
        "mailtrail_notices_sent",
        "gauge",
        "Notices sent to senders, by kind.",
        &labelled(&notices, "kind"),
    );
    if let Some(at) = refreshed_at {
        metric(
            "mailtrail_stats_refreshed_timestamp_seconds",
            "gauge",
            "When the statistics (and the totals above) were last refreshed.",
            &[(String::new(), at.max(0) as u64)],
        );
    }
    if let Some(at) = newest_line {
        metric(
            "mailtrail_log_lag_seconds",
            "gauge",
            "Age of the newest MTA log line recorded.",
            &[(String::new(), (now - at).max(0) as u64)],
        );
    }
    metric(
        "mailtrail_web_connections_refused_total",
        "counter",
        "Connections to these pages closed at once because the most allowed were open (since start).",
        &[(
            String::new(),
            super::serve::REFUSED_CONNECTIONS.load(std::sync::atomic::Ordering::Relaxed),
        )],
    );
    let counters: Vec<(String, u64)> = counters.into_iter().collect();
    metric(
        "mailtrail_events_total",
        "counter",
        "mailtrail's own error and activity counters.",
        &labelled(&counters, "name"),
    );
    out
}

fn prom_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Liveness: answers without a login, and checks that the store answers.
pub(super) async fn healthz(State(state): State<WebState>) -> Result<&'static str, WebError> {
    state.read(|s| s.counters().map(|_| ())).await?;
    Ok("ok\n")
}

pub(super) async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("static/style.css"),
    )
}

pub(super) async fn live_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("static/live.js"),
    )
}
