//! The suppression list on the pages: the entries a user may see (an unscoped user every one,
//! a domain-scoped user those of their sender domains), as HTML, JSON and CSV, with forms to
//! add and remove entries (POSTs, refused when another site sends them: `same_origin_forms`).

use super::{CurrentUser, WebError, WebState, csv, lists::non_empty, views};
use crate::{
    store::suppression::SuppressionFilter,
    suppression::{ALL_SENDERS, CSV_COLUMNS, NewSuppression, Suppression},
};
use axum::{
    Form, Json,
    extract::{Query, State},
    response::{IntoResponse, Redirect, Response},
};

/// Entries on the page; the downloads have every one.
const PAGE_ROWS: u32 = 500;

#[derive(serde::Deserialize, Default)]
pub(super) struct ListQuery {
    /// A sender domain.
    domain: Option<String>,
    /// A substring of the address.
    address: Option<String>,
    /// What the last form did, said once on the page it redirects to.
    done: Option<String>,
}

#[derive(serde::Deserialize)]
pub(super) struct EntryForm {
    address: String,
    domain: String,
    reason: Option<String>,
}

async fn entries(
    state: &WebState,
    user: &CurrentUser,
    query: &ListQuery,
    limit: u32,
) -> Result<Vec<Suppression>, WebError> {
    let mut filter = SuppressionFilter::new(user.scope());
    filter.sender_domain = non_empty(&query.domain)?
        .map(|d| crate::suppression::parse_sender_domain(&d))
        .transpose()
        .map_err(|e| WebError::BadRequest(e.to_string()))?;
    filter.target = non_empty(&query.address)?;
    filter.limit = limit;
    let now = state.now().unix_timestamp();
    state.read(move |s| s.suppression_list(&filter, now)).await
}

pub(super) async fn page(
    State(state): State<WebState>,
    user: CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let rows = entries(&state, &user, &query, PAGE_ROWS).await?;
    let config = state.config();
    let page = views::SuppressionPage {
        mode: config.suppression.mode,
        domain: query.domain.as_deref().unwrap_or(""),
        address: query.address.as_deref().unwrap_or(""),
        done: query.done.as_deref(),
        rows: &rows,
        capped: rows.len() as u32 == PAGE_ROWS,
    };
    Ok(views::suppression(&user, page, state.inner.offset).into_response())
}

pub(super) async fn json(
    State(state): State<WebState>,
    user: CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    Ok(Json(entries(&state, &user, &query, u32::MAX).await?).into_response())
}

pub(super) async fn csv(
    State(state): State<WebState>,
    user: CurrentUser,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let rows = entries(&state, &user, &query, u32::MAX).await?;
    let offset = state.inner.offset;
    let body = csv::document(&CSV_COLUMNS, rows.iter().map(|e| e.csv_fields(offset)));
    Ok(csv::response("suppression.csv", body))
}

/// The entry a form names, if this user may change it: a scoped user only for their own
/// sender domains (never an entry for every sender).
fn checked(user: &CurrentUser, form: &EntryForm) -> Result<NewSuppression, WebError> {
    let entry = NewSuppression::parse(&form.address, &form.domain, form.reason.as_deref())
        .map_err(|e| WebError::BadRequest(e.to_string()))?;
    let scoped = !user.user.domains.is_empty();
    if scoped
        && (entry.sender_domain == ALL_SENDERS || !user.user.domains.contains(&entry.sender_domain))
    {
        return Err(WebError::Forbidden);
    }
    Ok(entry)
}

fn back(done: &str) -> Response {
    Redirect::to(&format!("/suppression?done={}", views::url_encode(done))).into_response()
}

pub(super) async fn add(
    State(state): State<WebState>,
    user: CurrentUser,
    Form(form): Form<EntryForm>,
) -> Result<Response, WebError> {
    let entry = checked(&user, &form)?;
    let now = state.now().unix_timestamp();
    let said = format!(
        "{} suppressed for mail from {}",
        entry.target, entry.sender_domain
    );
    tracing::info!(
        "suppression: {} added by {} on the pages",
        said,
        user.user.name
    );
    state
        .write(move |s| s.suppression_add(std::slice::from_ref(&entry), now))
        .await?;
    Ok(back(&said))
}

pub(super) async fn remove(
    State(state): State<WebState>,
    user: CurrentUser,
    Form(form): Form<EntryForm>,
) -> Result<Response, WebError> {
    let entry = checked(&user, &form)?;
    let now = state.now().unix_timestamp();
    let (domain, target) = (entry.sender_domain.clone(), entry.target.clone());
    let removed = state
        .write(move |s| s.suppression_remove(&domain, &target, now))
        .await?;
    if !removed {
        return Err(WebError::NotFound);
    }
    let said = format!(
        "{} removed for mail from {}",
        entry.target, entry.sender_domain
    );
    tracing::info!("suppression: {} by {} on the pages", said, user.user.name);
    Ok(back(&said))
}
