//! One message: its envelope, recipients with every attempt, notices and the archived copy
//! (rendered safely, or downloaded as `.eml`).

use super::{CurrentUser, WebError, WebState, fleet::CopyBytes, records::MessageKey, views};
use crate::store::StoredMessage;
use axum::{
    Json,
    extract::{Path, Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// `?host=`: which host's message, on the dashboard.
#[derive(serde::Deserialize)]
pub(super) struct HostParam {
    host: Option<String>,
}

/// The message if it exists and this user may see it; 404 otherwise (never "forbidden", which
/// would tell that the id exists).
async fn visible_message(
    state: &WebState,
    user: &CurrentUser,
    key: &MessageKey,
) -> Result<StoredMessage, WebError> {
    match state.stored_message(key).await? {
        Some(m) if user.user.may_see(&m.envelope.mail_from) => Ok(m),
        _ => Err(WebError::NotFound),
    }
}

/// The message as the page shows it: a next hop on its host (after sendmail's submission
/// program or a content filter) with what the hop before it knew — the milter's envelope and
/// copy — and that hop, for a link.
pub(super) async fn with_hop(
    state: &WebState,
    mut message: StoredMessage,
) -> Result<(StoredMessage, Option<StoredMessage>), WebError> {
    let Some(qid) = message.envelope.queue_id.clone() else {
        return Ok((message, None));
    };
    let at = message.envelope.arrived_at.unix_timestamp();
    let hop = state.handed_over_to(message.host.clone(), qid, at).await?;
    if let Some(hop) = &hop {
        message.envelope.fill_from_hop(&hop.envelope);
    }
    Ok((message, hop))
}

#[derive(Serialize)]
struct MessageJson {
    message: StoredMessage,
    recipients: Vec<crate::store::RecipientDelivery>,
    notices: Vec<crate::store::MessageNotice>,
}

pub(super) async fn page(
    State(state): State<WebState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(param): Query<HostParam>,
) -> Result<Response, WebError> {
    let (id, json) = match id.strip_suffix(".json") {
        Some(id) => (id, true),
        None => (id.as_str(), false),
    };
    let key = MessageKey {
        host: param.host,
        id: id.parse().map_err(|_| WebError::NotFound)?,
    };
    let message = visible_message(&state, &user, &key).await?;
    let (message, hop) = with_hop(&state, message).await?;
    let (recipients, notices) = state.delivery_story(&key).await?;
    if json {
        return Ok(Json(MessageJson {
            message,
            recipients,
            notices,
        })
        .into_response());
    }
    let archived = match state.archived_copy(&message).await? {
        CopyBytes::Kept(bytes) => views::Copy::Shown(archived_view(&bytes)),
        CopyBytes::None => views::Copy::Absent,
        CopyBytes::Unreachable { host } => views::Copy::Unreachable { host },
    };
    Ok(views::message(
        &user,
        &message,
        &recipients,
        &notices,
        &archived,
        hop.as_ref(),
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

pub(super) async fn eml(
    State(state): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(param): Query<HostParam>,
) -> Result<Response, WebError> {
    let key = MessageKey {
        host: param.host,
        id,
    };
    let message = visible_message(&state, &user, &key).await?;
    let (message, _) = with_hop(&state, message).await?;
    let bytes = match state.archived_copy(&message).await? {
        CopyBytes::Kept(bytes) => bytes,
        CopyBytes::None => return Err(WebError::NotFound),
        CopyBytes::Unreachable { host } => {
            return Err(WebError::Unavailable(format!(
                "the copy is on {host}, which does not answer"
            )));
        }
    };
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
