//! `/metrics` in Prometheus's text format and the `/healthz` liveness check.

use super::{CurrentUser, WebError, WebState};
use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use std::fmt::Write;

/// Prometheus text format. Totals cross domains, so scoped users get 403.
pub(super) async fn metrics(
    State(state): State<WebState>,
    user: CurrentUser,
) -> Result<Response, WebError> {
    if !user.user.domains.is_empty() {
        return Err(WebError::Forbidden);
    }
    let in_fleet = state.inner.config.current().fleet.is_some();
    let (totals, counters, refreshed_at, notices, newest_line, fleet_lag) = state
        .read(move |s| {
            Ok((
                s.totals()?,
                s.counters()?,
                s.stats_refreshed_at()?,
                s.notices_sent_between(0, i64::MAX)?,
                s.newest_log_line_at()?,
                in_fleet.then(|| s.outbox_lag()).transpose()?,
            ))
        })
        .await?;
    let now = state.now().unix_timestamp();
    let mut out = prometheus_text(&totals, counters, refreshed_at, notices, newest_line, now);
    if let Some(lag) = fleet_lag {
        out += &fleet_lag_text(lag, now);
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// How far the fleet database is behind this host.
fn fleet_lag_text(lag: crate::store::fleet::OutboxLag, now: i64) -> String {
    format!(
        "# HELP mailtrail_fleet_lag_records Changes not yet confirmed by the fleet database.
# TYPE mailtrail_fleet_lag_records gauge
mailtrail_fleet_lag_records {}
# HELP mailtrail_fleet_lag_seconds Age of the oldest change not yet in the fleet database.
# TYPE mailtrail_fleet_lag_seconds gauge
mailtrail_fleet_lag_seconds {}
",
        lag.records,
        lag.seconds(now)
    )
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

pub(super) fn prom_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Liveness: answers without a login, and checks that the store answers.
/// 503 with the reasons while archive copies or envelope records are failing, so a monitor
/// notices a full disk before the users do.
pub(super) async fn healthz(State(state): State<WebState>) -> Result<Response, WebError> {
    state.read(|s| s.counters().map(|_| ())).await?;
    let problems = state.problems();
    if problems.is_empty() {
        return Ok("ok\n".into_response());
    }
    let text: String = problems.iter().map(|p| format!("{p}\n")).collect();
    Ok((axum::http::StatusCode::SERVICE_UNAVAILABLE, text).into_response())
}
