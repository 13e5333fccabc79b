//! The status pages: an axum server with server-rendered (maud) pages, their JSON and CSV
//! exports, a login with server-side sessions, and `/metrics`. All data comes through
//! [`Store`](crate::store::Store) reads; nothing here writes SQL.

mod assets;
mod auth;
mod csv;
mod fleet;
mod lists;
mod live;
mod message;
mod metrics;
mod raw_log;
mod records;
mod serve;
mod stats;
mod suppression;
mod tls;
mod views;

pub use auth::CurrentUser;

use crate::{
    archive::{Archive, ArchiveError},
    config::ConfigHandle,
    model::health::Health,
    store::{Store, StoreError},
};
use axum::{
    Router,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Instant,
};
use time::{OffsetDateTime, UtcOffset};
use tracing::error;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("store read failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("{0}")]
    BadRequest(String),
    /// Something this page needs does not answer (a host holding a copy).
    #[error("{0}")]
    Unavailable(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("{path}: {reason}", path = path.display())]
    TlsFile {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("TLS certificate and key: {0}")]
    Tls(#[source] rustls::Error),
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::NotFound => (StatusCode::NOT_FOUND, "not found\n").into_response(),
            WebError::Forbidden => (StatusCode::FORBIDDEN, "forbidden\n").into_response(),
            WebError::BadRequest(why) => {
                (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response()
            }
            WebError::Unavailable(why) => {
                (StatusCode::BAD_GATEWAY, format!("{why}\n")).into_response()
            }
            other => {
                // Details go to the log, not to the browser.
                error!("web: {other}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
            }
        }
    }
}

/// Reads the clock; tests pass a fixed one.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// What every handler shares.
#[derive(Clone)]
pub struct WebState {
    inner: Arc<Inner>,
    /// What the milter in this process finds failing (nothing, for pages on their own).
    health: Arc<Health>,
}

struct Inner {
    config: ConfigHandle,
    records: records::Records,
    archive: Option<Archive>,
    sessions: Mutex<HashMap<String, auth::Session>>,
    /// Failed logins per `ip:...` and `user:...` key, newest last.
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    clock: Clock,
    /// Served over HTTPS (fixed at start, like `listen`): the session cookie gets `Secure`.
    tls: bool,
    /// The server's UTC offset: "today" starts at local midnight.
    offset: UtcOffset,
    /// Statistics already read, per period and scope, with the refresh they came from: the
    /// rollups change only when refreshed, so a page after the first is served from here.
    stats_cache: Mutex<HashMap<stats::CacheKey, stats::CachedStats>>,
    /// The dashboard's client for archived copies kept on their hosts.
    copies: fleet::CopyClient,
    /// The users file of the state directory, as last read (with its modification time):
    /// read again when it changes, so `mailtrail user` needs no restart.
    file_users: Mutex<FileUsers>,
}

#[derive(Default)]
struct FileUsers {
    read: Option<(std::path::PathBuf, Option<std::time::SystemTime>)>,
    users: Vec<crate::config::WebUser>,
}

impl WebState {
    /// Opens its own store connection (reads run beside the writers thanks to WAL).
    pub fn new(config: ConfigHandle, offset: UtcOffset, clock: Clock) -> Result<Self, WebError> {
        let current = config.current();
        let store = Store::open(&current.store.path)?;
        let archive = current
            .archive
            .maildir
            .then(|| Archive::open_existing(&current.archive.dir));
        Ok(Self::with_records(
            config,
            records::Records::Local(Mutex::new(store)),
            archive,
            offset,
            clock,
        ))
    }

    /// The dashboard's state: records from the fleet database, copies from their hosts.
    pub fn fleet(
        config: ConfigHandle,
        reader: crate::store::fleet::FleetReader,
        offset: UtcOffset,
        clock: Clock,
    ) -> Self {
        Self::with_records(config, records::Records::Fleet(reader), None, offset, clock)
    }

    fn with_records(
        config: ConfigHandle,
        records: records::Records,
        archive: Option<Archive>,
        offset: UtcOffset,
        clock: Clock,
    ) -> Self {
        let current = config.current();
        WebState {
            inner: Arc::new(Inner {
                config,
                records,
                archive,
                sessions: Mutex::new(HashMap::new()),
                failures: Mutex::new(HashMap::new()),
                clock,
                tls: current.web.tls.is_some(),
                offset,
                stats_cache: Mutex::new(HashMap::new()),
                copies: fleet::CopyClient::new(),
                file_users: Mutex::default(),
            }),
            health: Arc::default(),
        }
    }

    /// Pages that say what the milter beside them finds failing.
    pub fn with_health(self, health: Arc<Health>) -> Self {
        WebState { health, ..self }
    }

    /// What is failing now, in words for a page: "archive copies failing since 2026-12-06
    /// 14:02:11: No space left on device (os error 28)".
    fn problems(&self) -> Vec<String> {
        self.health
            .problems()
            .into_iter()
            .map(|p| {
                let since = OffsetDateTime::from(p.since).unix_timestamp();
                format!(
                    "{} failing since {}: {}",
                    p.part.as_str(),
                    crate::render::local_time(since, self.inner.offset),
                    p.error
                )
            })
            .collect()
    }

    fn now(&self) -> OffsetDateTime {
        (self.inner.clock)().to_offset(self.inner.offset)
    }

    /// Unix seconds of local midnight, `days_back` days before today.
    fn day_start(&self, days_back: i64) -> i64 {
        let now = self.now();
        now.replace_time(time::Time::MIDNIGHT).unix_timestamp() - days_back * 86400
    }

    /// Runs a read of this host's store on the blocking pool (SQLite calls block). The
    /// dashboard has no store: its routes read through [`records`].
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, WebError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || match &inner.records {
            records::Records::Local(store) => {
                let store = store.lock().unwrap_or_else(|e| e.into_inner());
                f(&store).map_err(WebError::from)
            }
            records::Records::Fleet(_) => Err(WebError::NotFound),
        })
        .await?
    }

    /// Writes to this host's store on the blocking pool (the suppression list's forms).
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, WebError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || match &inner.records {
            records::Records::Local(store) => {
                let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
                f(&mut store).map_err(WebError::from)
            }
            records::Records::Fleet(_) => Err(WebError::NotFound),
        })
        .await?
    }

    fn config(&self) -> Arc<crate::config::Config> {
        self.inner.config.current()
    }

    /// The bytes of an archived copy, read on the blocking pool.
    async fn archived(&self, name: String) -> Result<Option<Vec<u8>>, WebError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || match &inner.archive {
            None => Ok(None),
            Some(archive) => match archive.read(&name) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(ArchiveError::NotFound(_)) => Ok(None),
                Err(e) => Err(WebError::Archive(e)),
            },
        })
        .await?
    }
}

/// Every route of the status pages.
pub fn router(state: WebState) -> Router {
    let routes = shared_routes()
        .route("/", get(lists::live))
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(metrics::healthz))
        .route("/fleet/copy/{id}", get(fleet::copy_for_dashboard))
        .route("/suppression", get(suppression::page))
        .route("/suppression.json", get(suppression::json))
        .route("/suppression.csv", get(suppression::csv))
        .route("/suppression/add", post(suppression::add))
        .route("/suppression/remove", post(suppression::remove));
    guarded(routes, state)
}

/// The routes a host's pages and the dashboard both serve (each reads its own records, see
/// `records`): the lists (live, today, the week), a message, the raw log, the statistics,
/// login and the assets.
fn shared_routes() -> Router<WebState> {
    Router::new()
        .route("/today", get(lists::today))
        .route("/today.json", get(lists::today_json))
        .route("/today.csv", get(lists::today_csv))
        .route("/week", get(lists::week))
        .route("/week.json", get(lists::week_json))
        .route("/week.csv", get(lists::week_csv))
        .route("/message/{id}", get(message::page))
        .route("/message/{id}/eml", get(message::eml))
        .route("/raw", get(raw_log::page))
        .route("/raw.json", get(raw_log::json))
        .route("/raw.csv", get(raw_log::csv))
        .route("/raw.txt", get(raw_log::txt))
        .route("/stats", get(stats::page))
        .route("/stats.json", get(stats::all_json))
        .route("/stats/{file}", get(stats::section_export))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/static/style.css", get(assets::stylesheet))
        .route("/live.json", get(lists::live_json))
        .route("/live.csv", get(lists::live_csv))
        .route("/live/events", get(live::events))
        .route("/static/live.js", get(assets::live_script))
}

/// Refuses a state-changing request that a browser sent from another site: a cross-site
/// `POST /login` would log a victim into an attacker's account, a `POST /logout` end their
/// session. Browsers send `Sec-Fetch-Site` (and `Origin` on every POST); scripts such as curl
/// send neither and are not a browser to forge requests through.
async fn same_origin_forms(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if safe || is_same_origin(request.headers()) {
        return next.run(request).await;
    }
    (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response()
}

/// Whether a request's `Sec-Fetch-Site`, else its `Origin`, says it came from these pages.
fn is_same_origin(headers: &axum::http::HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        // `none`: typed or bookmarked by the user, not sent by another page.
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    // `Origin: scheme://host[:port]` against `Host: host[:port]` (a proxy passes `Host` on,
    // see the README's nginx example).
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// Every route of the dashboard (`mailtrail dashboard`), over a [`WebState::fleet`].
pub fn dashboard_router(state: WebState) -> Router {
    fleet::router(state)
}

/// What every router shares: the cross-site check and the security headers.
fn guarded(routes: Router<WebState>, state: WebState) -> Router {
    routes
        .layer(axum::middleware::from_fn(same_origin_forms))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// No inline scripts, no framing, no sniffing: a last line against escaped-text mistakes.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The status pages as a task to run beside the milter, or `None` when `[web] enabled` is off.
pub fn pages(
    config: ConfigHandle,
    offset: UtcOffset,
    health: Arc<Health>,
) -> Result<Option<impl std::future::Future<Output = ()> + Send + 'static>, WebError> {
    let start = config.current();
    if !start.web.enabled {
        return Ok(None);
    }
    let clock: Clock = Arc::new(OffsetDateTime::now_utc);
    let state = WebState::new(config.clone(), offset, clock)?.with_health(health);
    if start.web.users.is_empty() {
        first_run_user(&start);
    }
    Ok(Some(serve_forever(
        start.web.listen,
        start.web.tls.clone(),
        state,
        router,
    )))
}

/// `mailtrail dashboard`: the pages over the whole fleet, read from the fleet database, until
/// the process ends.
pub async fn dashboard(config: ConfigHandle, offset: UtcOffset) -> Result<(), WebError> {
    let start = config.current();
    let Some(fleet) = &start.fleet else {
        return Err(WebError::BadRequest(
            "the dashboard reads the fleet database: configure [fleet] database".into(),
        ));
    };
    let reader = crate::store::fleet::FleetReader::new(fleet)?;
    // Pages answer before any host has shipped; a database not up yet is retried per request.
    if let Err(e) = reader.migrate().await {
        error!("dashboard: fleet database {}: {e}", fleet.database);
    }
    if start.web.users.is_empty() {
        first_run_user(&start);
    }
    let clock: Clock = Arc::new(OffsetDateTime::now_utc);
    let state = WebState::fleet(config.clone(), reader, offset, clock);
    tracing::info!("dashboard of the fleet database {}", fleet.database);
    serve_forever(
        start.web.listen,
        start.web.tls.clone(),
        state,
        fleet::router,
    )
    .await;
    Ok(())
}

/// With no user in the configuration file and no users file yet: makes the user `admin` with a
/// random password, keeps its hash in the state directory and says the address, the name and
/// the password once, on one log line. A failure is logged; the milter runs on regardless.
fn first_run_user(config: &crate::config::Config) {
    use crate::config::users::Users;
    let path = Users::path_in(&config.state_dir);
    let made = (|| -> Result<Option<String>, String> {
        let mut users = Users::load(&path).map_err(|e| e.to_string())?;
        if users.exists() {
            if users.users().is_empty() {
                tracing::warn!(
                    "web: no user in {} nor [[web.user]]: nobody can log in (mailtrail user add NAME)",
                    path.display()
                );
            }
            return Ok(None);
        }
        let password = crate::config::users::random_password()?;
        let password_hash = crate::config::hash_password(&password).map_err(|e| e.to_string())?;
        users
            .add(crate::config::WebUser {
                name: "admin".into(),
                password_hash,
                domains: Vec::new(),
            })
            .map_err(|e| e.to_string())?;
        users.save().map_err(|e| e.to_string())?;
        Ok(Some(password))
    })();
    let scheme = match config.web.tls {
        Some(_) => "https",
        None => "http",
    };
    match made {
        Ok(Some(password)) => tracing::warn!(
            "web: first run: log in at {scheme}://{}/ as admin with password {password} (shown this once; only its hash is kept, in {}; change it with `mailtrail user passwd admin`)",
            config.web.listen,
            path.display()
        ),
        Ok(None) => {}
        Err(e) => tracing::error!("web: cannot make the first user: {e}; nobody can log in"),
    }
}

/// Serves the pages; binding (and reading the TLS files) is retried, so the pages come up once
/// the port is free and the certificate is in place.
async fn serve_forever(
    addr: std::net::SocketAddr,
    tls: Option<crate::config::WebTls>,
    state: WebState,
    routes: fn(WebState) -> Router,
) {
    loop {
        let tls_config = match tls.as_ref().map(tls::server_config).transpose() {
            Ok(config) => config,
            Err(e) => {
                error!("web: {e}; retrying in 30s");
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                continue;
            }
        };
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let scheme = if tls_config.is_some() {
                    "https"
                } else {
                    "http"
                };
                tracing::info!("web pages on {scheme}://{addr}");
                match serve::serve(listener, routes(state.clone()), tls_config).await {
                    Ok(()) => return,
                    Err(e) => error!("web server stopped: {e}"),
                }
            }
            Err(e) => error!("web: cannot listen on {addr}: {e}; retrying in 30s"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
}

#[cfg(test)]
mod tests;
