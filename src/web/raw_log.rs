//! The raw MTA log: filtered lines as a page, JSON, CSV and plain text.

use super::lists::non_empty;
use super::{
    CurrentUser, WebError, WebState, csv,
    views::{self, RawPage},
};
use crate::render::local_time;
use crate::store::{RawFilter, RawLine};
use axum::{
    Json,
    extract::{Query, State},
    http::header,
    response::{IntoResponse, Response},
};

/// Lines shown on the raw page; downloads get up to [`RAW_DOWNLOAD_LINES`].
const RAW_PAGE_LINES: u32 = 2000;
const RAW_DOWNLOAD_LINES: u32 = 200_000;

#[derive(serde::Deserialize, Default)]
pub(super) struct RawQuery {
    days: Option<String>,
    q: Option<String>,
    queue_id: Option<String>,
    /// One MTA host's lines, on the dashboard.
    host: Option<String>,
}

struct RawRequest {
    days: u32,
    q: String,
    queue_id: String,
    host: String,
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
        host: match user.fleet {
            true => non_empty(&query.host)?.unwrap_or_default(),
            false => String::new(),
        },
    };
    let given = |v: &String| Some(v.clone()).filter(|v| !v.is_empty());
    let filter = RawFilter {
        scope: user.scope(),
        since: state.day_start(i64::from(days) - 1),
        text: given(&request.q),
        queue_id: given(&request.queue_id),
        host: given(&request.host),
        limit,
    };
    let lines = match state.fleet_reader() {
        Some(fleet) => fleet.raw_lines(&filter).await?,
        None => state.read(move |s| s.raw_lines(&filter)).await?,
    };
    Ok((request, lines))
}

pub(super) async fn page(
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
        host: &request.host,
        lines: shown,
        truncated,
    };
    Ok(views::raw(&user, page, state.inner.offset).into_response())
}

pub(super) async fn json(
    State(state): State<WebState>,
    user: CurrentUser,
    Query(query): Query<RawQuery>,
) -> Result<Response, WebError> {
    let (_, lines) = raw_lines(&state, &user, query, RAW_DOWNLOAD_LINES).await?;
    Ok(Json(serde_json::json!({ "lines": lines })).into_response())
}

pub(super) async fn csv(
    State(state): State<WebState>,
    user: CurrentUser,
    Query(query): Query<RawQuery>,
) -> Result<Response, WebError> {
    let (_, lines) = raw_lines(&state, &user, query, RAW_DOWNLOAD_LINES).await?;
    let offset = state.inner.offset;
    // The dashboard's lines lead with their host.
    let header: Vec<&str> = user
        .fleet
        .then_some("host")
        .into_iter()
        .chain(["id", "at", "queue_id", "line"])
        .collect();
    let body = csv::document(
        &header,
        lines.into_iter().map(|l| {
            let host = user.fleet.then(|| l.host.unwrap_or_default());
            host.into_iter()
                .chain([
                    l.id.to_string(),
                    local_time(l.at, offset),
                    l.queue_id.unwrap_or_default(),
                    l.line,
                ])
                .collect()
        }),
    );
    Ok(csv::response("raw-log.csv", body))
}

pub(super) async fn txt(
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
