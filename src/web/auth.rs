//! Logins: argon2id password hashes from the config, random session tokens kept in memory,
//! HTTP Basic for scripts (Prometheus, curl), and a limit on failed attempts.

use super::{WebError, WebState, views};
use crate::{
    config::{DUMMY_HASH, WebUser, verify_password},
    store::DomainScope,
};
use axum::{
    Form,
    extract::{ConnectInfo, FromRequestParts, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

const COOKIE: &str = "mailtrail_session";
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed logins allowed per IP and per user name within [`FAILURE_WINDOW`].
const MAX_FAILURES: usize = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

pub(super) struct Session {
    user: String,
    expires: Instant,
}

/// The logged-in user of a request.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub user: WebUser,
    /// On the fleet's dashboard (its navigation, a host on every row).
    pub fleet: bool,
}

impl CurrentUser {
    pub fn scope(&self) -> DomainScope {
        match self.user.domains.is_empty() {
            true => DomainScope::All,
            false => DomainScope::Only(self.user.domains.clone()),
        }
    }
}

/// Why a request has no user: pages redirect to the login form, data routes answer 401.
pub enum AuthRejection {
    Page,
    Api,
    TooMany,
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::Page => Redirect::to("/login").into_response(),
            AuthRejection::Api => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"mailtrail\"")],
                "login required\n",
            )
                .into_response(),
            AuthRejection::TooMany => {
                (StatusCode::TOO_MANY_REQUESTS, "too many failed logins\n").into_response()
            }
        }
    }
}

impl FromRequestParts<WebState> for CurrentUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let fleet = state.fleet_reader().is_some();
        if let Some(user) = cookie_token(&parts.headers).and_then(|t| state.session_user(&t)) {
            return Ok(CurrentUser { user, fleet });
        }
        if let Some((name, password)) = basic_credentials(&parts.headers) {
            let ip = client_ip(parts);
            return match state.check_password(&ip, &name, password).await {
                Ok(Some(user)) => Ok(CurrentUser { user, fleet }),
                Ok(None) => Err(AuthRejection::Api),
                Err(()) => Err(AuthRejection::TooMany),
            };
        }
        let path = parts.uri.path();
        let api = [".json", ".csv", ".txt", "/eml"]
            .iter()
            .any(|suffix| path.ends_with(suffix))
            || path.starts_with("/live/events")
            || path == "/metrics";
        Err(if api {
            AuthRejection::Api
        } else {
            AuthRejection::Page
        })
    }
}

fn client_ip(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".into(), |c| c.0.ip().to_string())
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_string())
        })
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64_decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}

/// Standard base64 with padding; `None` on anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

impl WebState {
    fn session_user(&self, token: &str) -> Option<WebUser> {
        let name = {
            let mut sessions = self
                .inner
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let session = sessions.get(token)?;
            if session.expires <= Instant::now() {
                sessions.remove(token);
                return None;
            }
            session.user.clone()
        };
        // Looked up in the running config: a user removed by a reload is logged out.
        self.user(&name)
    }

    /// A user of the configuration file, else of the state directory's users file.
    fn user(&self, name: &str) -> Option<WebUser> {
        let config = self.inner.config.current();
        if let Some(user) = config.web.users.iter().find(|u| u.name == name) {
            return Some(user.clone());
        }
        let path = crate::config::users::Users::path_in(&config.state_dir);
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let mut file = self
            .inner
            .file_users
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let current = Some((path.clone(), modified));
        if file.read != current {
            file.users = match crate::config::users::Users::load(&path) {
                Ok(users) => {
                    for u in users.users() {
                        if config.web.users.iter().any(|c| c.name == u.name) {
                            tracing::error!(
                                "web: user `{}` is in {} and in [[web.user]]: the file's cannot log in",
                                u.name,
                                path.display()
                            );
                        }
                    }
                    users.users().to_vec()
                }
                Err(e) => {
                    // Its users cannot log in until it reads again; mail goes on.
                    tracing::error!("web: users file: {e}");
                    Vec::new()
                }
            };
            file.read = current;
        }
        file.users.iter().find(|u| u.name == name).cloned()
    }

    /// `Err(())` when this IP or user name has failed too often recently; otherwise the user
    /// if the password matches. Every attempt counts against both before its slow check, so
    /// parallel requests cannot all pass the limit; a successful one is taken back.
    async fn check_password(
        &self,
        ip: &str,
        name: &str,
        password: String,
    ) -> Result<Option<WebUser>, ()> {
        let keys = [format!("ip:{ip}"), format!("user:{name}")];
        let attempt = self.count_attempt(&keys)?;
        let user = self.user(name);
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let ok = tokio::task::spawn_blocking(move || {
            // Unknown users still cost a verification, so timing does not tell names apart.
            let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_string());
            verify_password(&hash, &password)
        })
        .await
        .unwrap_or(false);
        match (ok, user) {
            (true, Some(user)) => {
                self.take_back_attempt(&keys, attempt);
                Ok(Some(user))
            }
            _ => Ok(None),
        }
    }

    /// Records an attempt against every key, unless one of them is at the limit already.
    fn count_attempt(&self, keys: &[String]) -> Result<Instant, ()> {
        let now = Instant::now();
        let mut attempts = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Bounded memory: old entries go whenever an attempt is counted.
        attempts.retain(|_, times| {
            times.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
            !times.is_empty()
        });
        if keys
            .iter()
            .any(|k| attempts.get(k).is_some_and(|t| t.len() >= MAX_FAILURES))
        {
            return Err(());
        }
        for key in keys {
            attempts.entry(key.clone()).or_default().push_back(now);
        }
        Ok(now)
    }

    /// Forgets the attempt [`Self::count_attempt`] recorded at `at`: it succeeded.
    fn take_back_attempt(&self, keys: &[String], at: Instant) {
        let mut attempts = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if let Some(times) = attempts.get_mut(key)
                && let Some(i) = times.iter().position(|t| *t == at)
            {
                times.remove(i);
            }
        }
    }

    fn new_session(&self, user: &str) -> Result<String, WebError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| WebError::Hash(e.to_string()))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            token.clone(),
            Session {
                user: user.to_string(),
                expires: now + SESSION_LIFETIME,
            },
        );
        Ok(token)
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = match self.inner.tls || self.inner.config.current().web.secure_cookie {
            true => "; Secure",
            false => "",
        };
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }
}

#[derive(serde::Deserialize)]
pub(super) struct LoginForm {
    name: String,
    password: String,
}

pub(super) async fn login_form() -> Response {
    views::login(None).into_response()
}

/// The peer's IP, or `unknown` when served without connect info (tests).
pub(super) struct ClientIp(String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}

pub(super) async fn login(
    State(state): State<WebState>,
    ClientIp(ip): ClientIp,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    match state.check_password(&ip, &form.name, form.password).await {
        Err(()) => Ok((
            StatusCode::TOO_MANY_REQUESTS,
            views::login(Some("Too many failed logins; wait a minute.")),
        )
            .into_response()),
        Ok(None) => Ok((
            StatusCode::UNAUTHORIZED,
            views::login(Some("Wrong name or password.")),
        )
            .into_response()),
        Ok(Some(user)) => {
            let token = state.new_session(&user.name)?;
            Ok((
                [(
                    header::SET_COOKIE,
                    state.cookie(&token, SESSION_LIFETIME.as_secs()),
                )],
                Redirect::to("/"),
            )
                .into_response())
        }
    }
}

pub(super) async fn logout(State(state): State<WebState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie_token(&headers) {
        state
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&token);
    }
    (
        [(header::SET_COOKIE, state.cookie("", 0))],
        Redirect::to("/login"),
    )
        .into_response()
}
