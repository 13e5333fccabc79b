//! The raw MTA log: filtered lines as a page, JSON, CSV and plain text.

use super::lists::non_empty;
use super::{
    CurrentUser, WebError, WebState, csv,
    views::{self, RawPage},
};
use crate::render::local_time;
use crate::store::{DomainScope, RawLine};
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
