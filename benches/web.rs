//! Every page and export route of the status pages against a big store: the generated
//! 1,000,000-line postfix log imported, plus 1,000,000 milter records.
//!
//! Run: `cargo bench --bench web`. In one run it:
//! - builds the store into `target/web-bench/` once (reused while `complete` is there; delete
//!   the directory to rebuild): `mailtrail import` of the generated log (as
//!   `benches/import.rs`), raw lines kept, then 1,000,000 milter envelopes through
//!   `Store::insert_envelopes` in batches of 10,000, spread over the 7 days that end with the
//!   log's last message;
//! - serves the router with the clock at that end (so "today" and "last 7 days" hold the data)
//!   and a logged-in session, and sends each route `MAILTRAIL_BENCH_SAMPLES` times (default 20)
//!   through `tower::ServiceExt::oneshot`, reading the whole body;
//! - prints p50/p95/max per route and p95 against the p50 of `/healthz` (a one-row store read
//!   through the same router, session check and blocking pool), measured in the same run.
//!
//! Goal: p95 ≤ 100 ms on every route.

mod common;
#[path = "common/pages.rs"]
mod pages;

use axum::http::StatusCode;
use mailtrail::{
    config::{Config, ConfigHandle, Receipts, Source, WebUser},
    model::envelope::{ArchiveState, Envelope, Recipient},
    store::{DomainScope, Store, SummaryFilter},
    web::{Clock, WebState},
};
use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};
use time::{OffsetDateTime, UtcOffset};

/// Milter records added to the imported log.
const MILTER_RECORDS: usize = 1_000_000;
/// Envelopes per `insert_envelopes` transaction.
const BATCH: usize = 10_000;
/// The goal for every route.
const GOAL_P95_MS: f64 = 100.0;

// ─── ROUTES ────────────────────────────────────────────────────────────────────────────────
// Every page and export route, timed in this order. `{id}` becomes a bounced message of the
// last 7 days. Add new routes here (the statistics pages: `/stats`, `/stats.json`, ... once they
// exist); `/live/events` (a stream that does not end) is not timed.
const ROUTES: &[&str] = &[
    "/healthz",
    "/",
    "/live.json",
    "/live.csv",
    "/today",
    "/today.json",
    "/today.csv",
    "/week",
    "/week.json",
    "/week?page=100",
    "/week?status=bounced",
    "/week?subject=invoice",
    "/week?from=shop",
    "/week.csv",
    "/week.csv?status=bounced",
    "/message/{id}",
    "/raw",
    "/raw?days=7&q=status%3Dbounced",
    "/raw?queue_id={queue_id}",
    "/raw.json",
    "/raw.csv",
    "/raw.txt",
    "/metrics",
    "/stats",
    "/stats.json",
    "/stats?period=year",
    "/stats/sender.csv",
];
/// The route whose p50 the others are compared with.
const BASELINE: &str = "/healthz";
// ───────────────────────────────────────────────────────────────────────────────────────────

const USER: &str = "bench";
const PASSWORD: &str = "bench password";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("web: bench");
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("web: run with `cargo bench --bench web`");
        return;
    }
    let samples: usize = std::env::var("MAILTRAIL_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);

    let dir = common::target_dir().join("web-bench");
    let store_path = dir.join("store.db");
    let end = build_store(&dir, &store_path);
    // The statistics pages read rollups the daemon refreshes; bring them up to date once.
    let mut store = Store::open(&store_path).expect("open store");
    let started = Instant::now();
    store
        .refresh_stats(
            UtcOffset::UTC,
            OffsetDateTime::from_unix_timestamp(end).unwrap(),
        )
        .expect("refresh statistics");
    println!(
        "statistics refreshed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(store);

    let mut config = Config::defaults();
    config.store.path = store_path.clone();
    config.archive.maildir = false;
    config.web.users = vec![WebUser {
        name: USER.into(),
        password_hash: mailtrail::config::hash_password(PASSWORD).expect("hash"),
        domains: Vec::new(),
    }];
    let clock: Clock = Arc::new(move || OffsetDateTime::from_unix_timestamp(end).unwrap());
    let state = WebState::new(
        ConfigHandle::new(Source::Defaults, config),
        UtcOffset::UTC,
        clock,
    )
    .expect("web state");
    let app = mailtrail::web::router(state);

    let (id, queue_id) = bounced_message(&store_path, end);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let cookie = pages::login(&app, USER, PASSWORD).await;
        let mut rows = Vec::new();
        for route in ROUTES {
            let path = route
                .replace("{id}", &id.to_string())
                .replace("{queue_id}", &queue_id);
            // One untimed request first: SQLite's page cache warms up as in a running daemon.
            let (_, bytes) = pages::get(&app, &path, &cookie).await;
            let mut times = Vec::with_capacity(samples);
            for _ in 0..samples {
                let started = Instant::now();
                let (status, _) = pages::get(&app, &path, &cookie).await;
                times.push(started.elapsed());
                assert_eq!(status, StatusCode::OK, "{path}");
            }
            rows.push((path, Stats::of(&mut times), bytes));
        }
        print_table(&rows);
    });
}

/// The unix time of the newest imported message: the store's "now". Builds the store first
/// when `dir` holds no complete one.
fn build_store(dir: &Path, store_path: &Path) -> i64 {
    let marker = dir.join("complete");
    if let Ok(text) = std::fs::read_to_string(&marker)
        && let Ok(end) = text.trim().parse()
    {
        println!("reusing the store in {}", dir.display());
        return end;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("create bench dir");
    let log = common::generated_postfix_log();

    let mut config = Config::defaults();
    config.store.path = store_path.to_path_buf();
    // Every line of the log stays in the raw table, however old it is.
    config.maillog.raw_retention = Duration::from_secs(100 * 365 * 86400);
    let started = Instant::now();
    let stats = mailtrail::cli::import(
        &config,
        std::slice::from_ref(&log),
        false,
        UtcOffset::UTC,
        &mut std::io::sink(),
    )
    .expect("import the generated log");
    println!(
        "imported {} in {:.1} s: {:?}",
        log.display(),
        started.elapsed().as_secs_f64(),
        stats
    );

    let mut store = Store::open(store_path).expect("open store");
    let mut newest = SummaryFilter::new(DomainScope::All, 0);
    newest.limit = 1;
    let end = store.message_summaries(&newest).expect("newest message")[0].arrived_at;
    let started = Instant::now();
    for batch in 0..MILTER_RECORDS / BATCH {
        let envelopes: Vec<Envelope> = (0..BATCH)
            .map(|i| synthetic_envelope(batch * BATCH + i, end))
            .collect();
        let refs: Vec<&Envelope> = envelopes.iter().collect();
        store.insert_envelopes(&refs).expect("insert envelopes");
    }
    store.checkpoint().expect("checkpoint");
    println!(
        "inserted {MILTER_RECORDS} milter records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&marker, end.to_string()).expect("write marker");
    end
}

/// Milter record `n` of [`MILTER_RECORDS`], evenly spread over the 7 days before `end`.
fn synthetic_envelope(n: usize, end: i64) -> Envelope {
    const SUBJECTS: [&str; 5] = [
        "Your invoice",
        "Order confirmation",
        "Password reset",
        "Weekly newsletter",
        "Meeting notes",
    ];
    let week = 7 * 86400;
    let at = end - week + (n as i64 * week) / MILTER_RECORDS as i64;
    let recipients = (0..1 + n % 3)
        .map(|r| Recipient {
            address: format!("rcpt{}@dest{}.example", (n + r) % 5000, n % 97),
            args: Vec::new(),
        })
        .collect();
    Envelope {
        queue_id: Some(format!("M{n:010X}")),
        arrived_at: OffsetDateTime::from_unix_timestamp(at).unwrap(),
        mta_host: Some("mail.example.net".into()),
        client_name: Some("client.example.org".into()),
        client_addr: Some("192.0.2.10".into()),
        helo: Some("client.example.org".into()),
        sasl_user: Some(format!("user{}", n % 400)),
        mail_from: format!("sender{}@shop{}.example", n % 400, n % 50),
        mail_args: vec!["SIZE=20000".into()],
        recipients,
        recipients_dropped: 0,
        size: 2_000 + (n as u64 % 50_000),
        message_id: Some(format!("<m{n}@shop.example>")),
        subject: Some(format!("{} #{n}", SUBJECTS[n % SUBJECTS.len()])),
        archive_name: None,
        archive_state: ArchiveState::Disabled,
        mode: "normal".into(),
        receipts: Receipts::Off,
        is_notice: false,
    }
}

/// A bounced message of the last 7 days (id and queue id), for the detail and raw routes.
fn bounced_message(store_path: &Path, end: i64) -> (i64, String) {
    let store = Store::open(store_path).expect("open store");
    let mut filter = SummaryFilter::new(DomainScope::All, end - 7 * 86400);
    filter.status = Some(mailtrail::model::status::RecipientStatus::Bounced);
    filter.limit = 1;
    let m = store
        .message_summaries(&filter)
        .expect("bounced messages")
        .into_iter()
        .next()
        .expect("the generated log has bounces in its last week");
    (m.id, m.queue_id.unwrap_or_default())
}

struct Stats {
    p50: f64,
    p95: f64,
    max: f64,
}

impl Stats {
    /// Milliseconds; nearest-rank percentiles.
    fn of(times: &mut [Duration]) -> Stats {
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let rank = |p: f64| ((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
        Stats {
            p50: ms(times[rank(0.50)]),
            p95: ms(times[rank(0.95)]),
            max: ms(times[times.len() - 1]),
        }
    }
}

fn print_table(rows: &[(String, Stats, usize)]) {
    let baseline = rows
        .iter()
        .find(|(path, ..)| path == BASELINE)
        .map(|(_, s, _)| s.p50)
        .expect("baseline route timed");
    println!(
        "\n{:<34} {:>9} {:>9} {:>9} {:>12} {:>10}  goal p95 ≤ {GOAL_P95_MS} ms",
        "route", "p50 ms", "p95 ms", "max ms", "p95/baseline", "body KB"
    );
    let mut missed = Vec::new();
    for (path, s, bytes) in rows {
        let ok = s.p95 <= GOAL_P95_MS;
        if !ok {
            missed.push(path.as_str());
        }
        println!(
            "{:<34} {:>9.2} {:>9.2} {:>9.2} {:>11.1}× {:>10.1}  {}",
            path,
            s.p50,
            s.p95,
            s.max,
            s.p95 / baseline,
            *bytes as f64 / 1024.0,
            if ok { "ok" } else { "MISSED" }
        );
    }
    println!("baseline: {BASELINE} p50 {baseline:.3} ms");
    match missed.is_empty() {
        true => println!("every route within the goal"),
        false => println!("over the goal: {}", missed.join(", ")),
    }
}
