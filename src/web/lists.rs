//! The message lists (live, today, the last 7 days) as HTML, JSON and CSV: one filter, one
//! fetch, three renderings.

use super::{
    CurrentUser, WebError, WebState, csv,
    views::{self, ListPage, ListQuery},
};
use crate::render::local_time;
use crate::store::{MessageSummary, SummaryFilter};
use axum::{
    Json,
    extract::{Query, State},
    response::{IntoResponse, Response},
};
use serde::Serialize;

const PER_PAGE: u32 = 50;
pub(super) const LIVE_ROWS: u32 = 100;
/// Rows of a list's CSV download (all pages of the filtered list, up to this many).
const CSV_MAX_ROWS: u32 = 100_000;
/// Matches a list counts at most: past this many the pager says "10,000+" (counting every
/// match of a big period would scan all of them on each page view).
pub(super) const COUNT_CAP: u64 = 10_000;

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
pub(super) fn non_empty(v: &Option<String>) -> Result<Option<String>, WebError> {
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
    if user.fleet {
        filter.host = non_empty(&q.host)?;
    }
    filter.category = non_empty(&q.category)?
        .map(|c| c.parse())
        .transpose()
        .map_err(|e| WebError::BadRequest(format!("{e}")))?;
    filter.status = non_empty(&q.status)?
        .map(|s| s.parse())
        .transpose()
        .map_err(|e| WebError::BadRequest(format!("{e}")))?;
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

async fn list_html(
    state: WebState,
    user: CurrentUser,
    period: Period,
    q: ListQuery,
) -> Result<Response, WebError> {
    let (filter, page) = list_filter(&state, &user, period, &q)?;
    let (rows, total) = state.summaries(filter, COUNT_CAP).await?;
    let offset = state.inner.offset;
    if let Period::Live = period {
        return Ok(views::live(&user, &rows, &state.problems(), offset).into_response());
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
    let (messages, total) = state.summaries(filter, COUNT_CAP).await?;
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
    let rows = state.summary_rows(filter).await?;
    let offset = state.inner.offset;
    // The dashboard's rows lead with their host.
    let header: Vec<&str> = user
        .fleet
        .then_some("host")
        .into_iter()
        .chain(LIST_CSV_HEADER)
        .collect();
    let body = csv::document(
        &header,
        rows.into_iter().map(|m| {
            let host = user.fleet.then(|| m.host.clone().unwrap_or_default());
            host.into_iter()
                .chain([
                    m.id.to_string(),
                    local_time(m.arrived_at, offset),
                    m.queue_id.unwrap_or_default(),
                    m.mail_from,
                    m.first_recipient.unwrap_or_default(),
                    m.recipients.to_string(),
                    m.subject.unwrap_or_default(),
                    m.size.to_string(),
                    m.status.to_string(),
                    m.category.map(|c| c.to_string()).unwrap_or_default(),
                ])
                .collect()
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
