//! The live page's event stream: new messages of today as server-rendered rows.

use super::lists::LIVE_ROWS;
use super::{CurrentUser, WebState, views};
use crate::store::{LiveCursor, SummaryFilter};
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
    after: Option<String>,
}

/// New messages of today as server-rendered rows, polled from the records every 2 s: the
/// host's store, or on the dashboard the fleet database (each host's rows past where the page
/// stopped).
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
        .map(str::to_owned);
    let after: LiveCursor = resume
        .or(q.after)
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    let start = (state, user, after, true);
    let events = stream::unfold(start, |(state, user, mut after, first)| async move {
        if !first {
            tokio::time::sleep(LIVE_POLL).await;
        }
        let mut filter = SummaryFilter::new(user.scope(), state.day_start(0));
        filter.after = after.clone();
        filter.limit = LIVE_ROWS;
        let rows = match state.summary_rows(filter).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("live events: {e}");
                Vec::new()
            }
        };
        // Oldest first: the page inserts each at the top. Each event's id is the cursor past
        // it, where a reconnecting browser resumes.
        let mut events: Vec<Result<Event, Infallible>> = Vec::with_capacity(rows.len());
        for m in rows.iter().rev() {
            after.advance(std::slice::from_ref(m));
            let row = views::message_row(m, state.inner.offset).into_string();
            events.push(Ok(Event::default().id(after.to_string()).data(row)));
        }
        Some((stream::iter(events), (state, user, after, false)))
    });
    use futures_util::StreamExt;
    Sse::new(events.flatten()).keep_alive(KeepAlive::default())
}
