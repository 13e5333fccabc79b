//! The dashboard over a fleet of 5 hosts, each with the generated 1,000,000-line postfix log.
//!
//! Run: `cargo bench --bench dashboard` (as root, with Debian's `postgresql` package). In one
//! run it imports the log with `mailtrail import` into a store of a host in the fleet (outbox
//! on) and refreshes its statistics, starts a private PostgreSQL server, ships that store's
//! records and rollups five times as `relay1` ... `relay5` (as five hosts with the same mail
//! would), then serves the dashboard's router with the clock at the log's end and sends each
//! route `MAILTRAIL_BENCH_SAMPLES` times (default 20) through `tower::ServiceExt::oneshot`,
//! reading the whole body; p50/p95/max per route, and p95 against the p50 of `/healthz` (a
//! one-row read of the fleet database through the same router). Last, one host's incremental
//! statistics refresh: the store's refresh at the log's end (the days it recomputes) and the
//! shipping of those days' rollups.
//!
//! Goals: p95 ≤ 150 ms on every list and statistics page; an incremental refresh ≤ 5 s.

#[path = "common/mod.rs"]
mod common;
#[path = "common/pages.rs"]
mod pages;
#[path = "common/postgres.rs"]
mod postgres;

use axum::http::StatusCode;
use mailtrail::{
    config::{Config, ConfigHandle, Source, WebUser},
    store::{
        DomainScope, Store, SummaryFilter,
        fleet::{
            FleetReader,
            postgres::{HostClaim, Shipper, migrate},
        },
    },
    web::{Clock, WebState},
};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use time::{OffsetDateTime, UtcOffset};

const HOSTS: [&str; 5] = ["relay1", "relay2", "relay3", "relay4", "relay5"];
const GOAL_P95_MS: f64 = 150.0;
const USER: &str = "bench";
const PASSWORD: &str = "bench password";
const ROUTES: &[&str] = &[
    "/healthz",
    "/",
    "/hosts.json",
    "/today",
    "/today.json",
    "/today.csv",
    "/week",
    "/week.json",
    "/week?page=3",
    "/week?status=bounced",
    "/week?status=deferred",
    "/week?category=invalid-mailbox",
    "/week?host=relay3",
    "/week?from=example.com",
    "/week?subject=invoice",
    "/message/{id}?host=relay2",
    "/stats",
    "/stats.json",
    "/stats?period=last-month",
    "/stats?period=year",
    "/stats?host=relay4",
    "/stats/sender.csv",
];

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("dashboard: run with `cargo bench --bench dashboard`");
        return;
    }
    let samples: usize = std::env::var("MAILTRAIL_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let log = common::generated_postfix_log();
    let dir = common::target_dir().join("dashboard-bench");
    let store_path = postgres::fleet_host_store(&dir, &log);
    let mut store = Store::open(&store_path).unwrap();
    let end = newest_message(&store);
    let at_end = OffsetDateTime::from_unix_timestamp(end).unwrap();
    store.refresh_stats(UtcOffset::UTC, at_end).unwrap();
    let rows = store.outbox_batch(usize::MAX).unwrap();
    let rollups = store.rollup_batch(usize::MAX).unwrap();
    println!(
        "one host: {} rows, {} statistics periods ({} rollup rows)",
        rows.rows(),
        rollups.periods.len(),
        rollups.tables.iter().map(|t| t.rows).sum::<usize>()
    );

    let server = postgres::Server::start(&dir.join("pg"), 25_433);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (id, incremental) = runtime.block_on(async {
        let admin = server.connect("postgres").await;
        admin.batch_execute("CREATE DATABASE fleet").await.unwrap();
        let mut fleet = server.connect("fleet").await;
        migrate(&mut fleet).await.unwrap();
        let started = Instant::now();
        let mut shipper = Shipper::default();
        for host in HOSTS {
            let claim = HostClaim {
                host,
                instance: host,
                url: "http://127.0.0.1:8025",
            };
            shipper.ship(&mut fleet, &claim, &rows).await.unwrap();
            shipper
                .ship_rollups(&mut fleet, &claim, &rollups)
                .await
                .unwrap();
        }
        // What autovacuum does on a database that has been up a while.
        fleet.batch_execute("VACUUM ANALYZE").await.unwrap();
        println!(
            "shipped as {} hosts in {:.1} s",
            HOSTS.len(),
            started.elapsed().as_secs_f64()
        );
        store.outbox_shipped(rows.last_seq.unwrap()).unwrap();
        store.rollups_shipped(&rollups).unwrap();

        // One host's incremental refresh: the store's, then shipping the days it rewrote.
        let started = Instant::now();
        store.refresh_stats(UtcOffset::UTC, at_end).unwrap();
        let refreshed = started.elapsed();
        let days = store.rollup_batch(usize::MAX).unwrap();
        let claim = HostClaim {
            host: "relay1",
            instance: "relay1",
            url: "http://127.0.0.1:8025",
        };
        shipper
            .ship_rollups(&mut fleet, &claim, &days)
            .await
            .unwrap();
        store.rollups_shipped(&days).unwrap();
        let incremental = (refreshed, started.elapsed(), days.periods.len());

        let mut filter = SummaryFilter::new(DomainScope::All, end - 7 * 86400);
        filter.status = Some(mailtrail::model::status::RecipientStatus::Bounced);
        filter.limit = 1;
        let id = store.message_summaries(&filter).unwrap()[0].id;
        (id, incremental)
    });

    let mut config = Config::defaults();
    config.web.users = vec![WebUser {
        name: USER.into(),
        password_hash: mailtrail::config::hash_password(PASSWORD).unwrap(),
        domains: Vec::new(),
    }];
    let database = format!("database = \"{}\"", server.url("fleet"));
    let fleet_config = mailtrail::config::parse(
        std::path::Path::new("bench.toml"),
        &format!("[fleet]\n{database}\nhost = \"dashboard\"\n"),
    )
    .unwrap()
    .fleet
    .unwrap();
    let reader = FleetReader::new(&fleet_config).unwrap();
    config.fleet = Some(fleet_config);
    let clock: Clock = Arc::new(move || OffsetDateTime::from_unix_timestamp(end).unwrap());
    let state = WebState::fleet(
        ConfigHandle::new(Source::Defaults, config),
        reader,
        UtcOffset::UTC,
        clock,
    );
    let app = mailtrail::web::dashboard_router(state);
    runtime.block_on(async {
        let cookie = pages::login(&app, USER, PASSWORD).await;
        let mut rows = Vec::new();
        for route in ROUTES {
            let path = route.replace("{id}", &id.to_string());
            // The first request of a route alone: the statistics are then cached for a minute.
            let started = Instant::now();
            let (_, bytes) = pages::get(&app, &path, &cookie).await;
            let first = started.elapsed();
            let mut times = Vec::with_capacity(samples);
            for _ in 0..samples {
                let started = Instant::now();
                let (status, _) = pages::get(&app, &path, &cookie).await;
                times.push(started.elapsed());
                assert_eq!(status, StatusCode::OK, "{path}");
            }
            rows.push((path, Timing::of(&mut times, first), bytes));
        }
        print_table(&rows);
    });
    let (refresh, total, days) = incremental;
    println!(
        "\nincremental statistics refresh of one host: {:.2} s in its store ({days} periods rewritten), {:.2} s with shipping them; goal ≤ 5 s",
        refresh.as_secs_f64(),
        total.as_secs_f64()
    );
}

/// The unix time of the newest imported message: the dashboard's "now".
fn newest_message(store: &Store) -> i64 {
    let mut newest = SummaryFilter::new(DomainScope::All, 0);
    newest.limit = 1;
    store.message_summaries(&newest).unwrap()[0].arrived_at
}

struct Timing {
    first: f64,
    p50: f64,
    p95: f64,
    max: f64,
}

impl Timing {
    /// Milliseconds; nearest-rank percentiles.
    fn of(times: &mut [Duration], first: Duration) -> Timing {
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let rank = |p: f64| ((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1;
        Timing {
            first: ms(first),
            p50: ms(times[rank(0.50)]),
            p95: ms(times[rank(0.95)]),
            max: ms(times[times.len() - 1]),
        }
    }
}

fn print_table(rows: &[(String, Timing, usize)]) {
    let baseline = rows[0].1.p50;
    println!(
        "\n{:<34} {:>9} {:>9} {:>9} {:>9} {:>12} {:>10}  goal p95 ≤ {GOAL_P95_MS} ms",
        "route", "first ms", "p50 ms", "p95 ms", "max ms", "p95/baseline", "body KB"
    );
    let mut missed = 0;
    for (path, t, bytes) in rows {
        let ok = t.p95 <= GOAL_P95_MS;
        missed += usize::from(!ok);
        println!(
            "{:<34} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>11.1}× {:>10.1}  {}",
            path,
            t.first,
            t.p50,
            t.p95,
            t.max,
            t.p95 / baseline,
            *bytes as f64 / 1024.0,
            if ok { "ok" } else { "MISSED" }
        );
    }
    println!(
        "{} of {} routes within the goal",
        rows.len() - missed,
        rows.len()
    );
}
