//! The live page's event stream: new messages of today as server-rendered rows.

use super::lists::LIVE_ROWS;
use super::{CurrentUser, WebState, views};
use crate::store::SummaryFilter;
use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::stream::{self, Stream};
use std::{convert::Infallible, time::Duration};

/// How often the stream asks the store for new messages.
const LIVE_POLL: Duration = Duration::from_secs(2);

#[derive(serde::Deserialize)]
pub(super) struct LiveQuery {
    after: Option<i64>,
}

/// New messages of today as server-rendered rows, polled from the store every 2 s.
pub(super) async fn events(
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
