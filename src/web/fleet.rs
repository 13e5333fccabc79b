//! The fleet on the pages: the dashboard's routes (`mailtrail dashboard`), its hosts page, and
//! archived copies, which stay on the host that archived them — each host serves its copies to
//! the dashboard at `/fleet/copy/{id}`, authenticated with the fleet's shared token.

use super::{CurrentUser, WebError, WebState, csv, message, records::MessageKey, views};
use crate::{model::envelope::ArchiveState, store::StoredMessage};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use std::time::Duration;
use tracing::warn;

/// How long the dashboard waits for a host's copy.
const COPY_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest copy the dashboard takes from a host (the archive's own limit is 50 MB by default).
const MAX_COPY_BYTES: usize = 200 * 1024 * 1024;

/// The dashboard's routes: the lists, the message page, the raw log and the hosts page over the
/// fleet database, with the statistics summed over the hosts' rollups. (`/metrics` is each
/// host's own.)
pub(super) fn router(state: WebState) -> Router {
    let routes = super::shared_routes()
        .route("/", get(hosts_page))
        .route("/live", get(super::lists::live))
        .route("/hosts.json", get(hosts_json))
        .route("/hosts.csv", get(hosts_csv))
        .route("/healthz", get(healthz))
        .route("/metrics", get(fleet_metrics));
    super::guarded(routes, state)
}

async fn hosts_of_week(
    state: &WebState,
    user: &CurrentUser,
) -> Result<Vec<crate::store::fleet::FleetHost>, WebError> {
    let fleet = state.fleet_reader().ok_or(WebError::NotFound)?;
    // Today and the 6 local days before, as the statistics number days.
    let since = crate::stats::day_number(state.now().date()) - 6;
    let mut hosts = fleet.hosts(&user.scope(), since).await?;
    if !user.user.domains.is_empty() {
        // Where hosts answer and what claimed their names is the operators' business.
        for host in &mut hosts {
            host.url.clear();
            host.conflicts = 0;
        }
    }
    Ok(hosts)
}

async fn hosts_page(
    State(state): State<WebState>,
    user: CurrentUser,
) -> Result<Response, WebError> {
    let hosts = hosts_of_week(&state, &user).await?;
    Ok(views::hosts(&user, &hosts, state.inner.offset).into_response())
}

async fn hosts_json(
    State(state): State<WebState>,
    user: CurrentUser,
) -> Result<Response, WebError> {
    Ok(Json(hosts_of_week(&state, &user).await?).into_response())
}

async fn hosts_csv(State(state): State<WebState>, user: CurrentUser) -> Result<Response, WebError> {
    let hosts = hosts_of_week(&state, &user).await?;
    let offset = state.inner.offset;
    let body = csv::document(
        &[
            "host",
            "url",
            "last_seen",
            "messages",
            "recipients",
            "sent",
            "deferred",
            "bounced",
            "expired",
            "conflicts",
        ],
        hosts.into_iter().map(|h| {
            vec![
                h.name,
                h.url,
                crate::render::local_time(h.last_seen, offset),
                h.messages.to_string(),
                h.recipients.to_string(),
                h.sent.to_string(),
                h.deferred.to_string(),
                h.bounced.to_string(),
                h.expired.to_string(),
                h.conflicts.to_string(),
            ]
        }),
    );
    Ok(csv::response("hosts.csv", body))
}

/// `/metrics` of the dashboard, in Prometheus's text format: per host, how long ago its last
/// batch arrived (a host that stopped shipping shows here), refused claims of its name, and its
/// statistics of the last 7 days. Totals cross domains, so scoped users get 403.
async fn fleet_metrics(
    State(state): State<WebState>,
    user: CurrentUser,
) -> Result<Response, WebError> {
    if !user.user.domains.is_empty() {
        return Err(WebError::Forbidden);
    }
    let hosts = hosts_of_week(&state, &user).await?;
    let now = state.now().unix_timestamp();
    let mut out = String::new();
    let mut gauge =
        |name: &str, help: &str, value: &dyn Fn(&crate::store::fleet::FleetHost) -> i64| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for h in &hosts {
                let host = super::metrics::prom_escape(&h.name);
                out.push_str(&format!("{name}{{host=\"{host}\"}} {}\n", value(h)));
            }
        };
    gauge(
        "mailtrail_fleet_host_last_batch_age_seconds",
        "Seconds since the host's last batch reached the fleet database.",
        &|h| (now - h.last_seen).max(0),
    );
    gauge(
        "mailtrail_fleet_host_name_conflicts",
        "Other stores refused the host's name (their records are not merged).",
        &|h| h.conflicts as i64,
    );
    gauge(
        "mailtrail_fleet_host_messages",
        "Messages of the host's last 7 days (its statistics, as of its last refresh).",
        &|h| h.messages as i64,
    );
    gauge(
        "mailtrail_fleet_host_bounced",
        "Bounced delivery attempts of the host's last 7 days.",
        &|h| h.bounced as i64,
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// The dashboard answers when the fleet database does.
async fn healthz(State(state): State<WebState>) -> Response {
    let Some(fleet) = state.fleet_reader() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match fleet.hosts(&crate::store::DomainScope::All, i64::MAX).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            // The reason goes to the log: this answer needs no login.
            warn!("dashboard: health check: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the fleet database does not answer\n",
            )
                .into_response()
        }
    }
}

/// An archived copy as the pages get it.
pub(super) enum CopyBytes {
    Kept(Vec<u8>),
    None,
    Unreachable { host: String },
}

/// Fetches copies from the hosts, over HTTP or HTTPS (certificates checked against the
/// system's roots, where an internal CA goes).
pub(super) struct CopyClient {
    client: Option<Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>>,
}

impl CopyClient {
    pub(super) fn new() -> CopyClient {
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_native_roots();
        let client = match connector {
            Ok(builder) => Some(
                Client::builder(TokioExecutor::new())
                    .build(builder.https_or_http().enable_http1().build()),
            ),
            Err(e) => {
                warn!("dashboard: no root certificates ({e}): hosts' copies cannot be fetched");
                None
            }
        };
        CopyClient { client }
    }

    async fn fetch(&self, base: &str, id: i64, token: &str) -> Result<Option<Vec<u8>>, String> {
        let client = self.client.as_ref().ok_or("no root certificates")?;
        let request = hyper::Request::get(format!("{base}/fleet/copy/{id}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(COPY_TIMEOUT, client.request(request))
            .await
            .map_err(|_| "no answer within 10 s".to_string())?
            .map_err(|e| crate::store::fleet::error_chain(&e))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            other => return Err(format!("answered {other}")),
        }
        let body = tokio::time::timeout(
            COPY_TIMEOUT,
            Limited::new(response.into_body(), MAX_COPY_BYTES).collect(),
        )
        .await
        .map_err(|_| "the copy did not arrive within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
        Ok(Some(body.to_bytes().to_vec()))
    }
}

impl WebState {
    /// The message's archived copy: from this host's archive, or on the dashboard from the
    /// host that holds it.
    pub(super) async fn archived_copy(
        &self,
        message: &StoredMessage,
    ) -> Result<CopyBytes, WebError> {
        let envelope = &message.envelope;
        let Some(name) = envelope.archive_name.clone() else {
            return Ok(CopyBytes::None);
        };
        let (Some(fleet), Some(host)) = (self.fleet_reader(), &message.host) else {
            return Ok(match self.archived(name).await? {
                Some(bytes) => CopyBytes::Kept(bytes),
                None => CopyBytes::None,
            });
        };
        if envelope.archive_state != ArchiveState::Stored {
            return Ok(CopyBytes::None);
        }
        let config = self.inner.config.current();
        let token = config.fleet.as_ref().and_then(|f| f.token.clone());
        let (Some(url), Some(token)) = (fleet.host_url(host).await?, token) else {
            warn!("dashboard: no [fleet] token or no address for {host}: copies cannot be fetched");
            return Ok(CopyBytes::Unreachable { host: host.clone() });
        };
        match self
            .inner
            .copies
            .fetch(&url, message.id, token.secret())
            .await
        {
            Ok(Some(bytes)) => Ok(CopyBytes::Kept(bytes)),
            Ok(None) => Ok(CopyBytes::None),
            Err(reason) => {
                warn!(
                    "dashboard: the copy of message {} on {host} ({url}): {reason}",
                    message.id
                );
                Ok(CopyBytes::Unreachable { host: host.clone() })
            }
        }
    }
}

/// Whether `offered` is the token, compared in constant time.
fn token_matches(offered: &[u8], token: &[u8]) -> bool {
    offered.len() == token.len()
        && offered
            .iter()
            .zip(token)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// On each host: the copy of message `id` for the dashboard, with the fleet's token as a
/// bearer credential. 404 without `[fleet] token`, for a wrong token, or without a copy.
pub(super) async fn copy_for_dashboard(
    State(state): State<WebState>,
    Path(id): Path<i64>,
    headers: axum::http::HeaderMap,
) -> Result<Response, WebError> {
    let config = state.inner.config.current();
    let Some(token) = config.fleet.as_ref().and_then(|f| f.token.clone()) else {
        return Err(WebError::NotFound);
    };
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if !token_matches(offered, token.secret().as_bytes()) {
        return Ok((StatusCode::UNAUTHORIZED, "fleet token required\n").into_response());
    }
    let key = MessageKey { host: None, id };
    let Some(found) = state.stored_message(&key).await? else {
        return Err(WebError::NotFound);
    };
    let (found, _) = message::with_hop(&state, found).await?;
    match state.archived_copy(&found).await? {
        CopyBytes::Kept(bytes) => {
            Ok(([(header::CONTENT_TYPE, "message/rfc822")], bytes).into_response())
        }
        CopyBytes::None | CopyBytes::Unreachable { .. } => Err(WebError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn only_the_whole_token_matches() {
        assert!(token_matches(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!token_matches(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!token_matches(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!token_matches(b"", b"0123456789abcdef"));
    }
}
