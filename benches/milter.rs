//! Milter throughput and end-of-message latency over loopback.
//!
//! 16 concurrent MTA connections (indymilter-test clients) each send 10 KB messages; printed are
//! messages/s and p50/p99 end-of-message latency for
//!   (a) a no-op indymilter milter (the baseline: protocol and loopback cost only), and
//!   (b) mailtrail with the archive Maildir and the store on, every message durable, and
//!   (c) (b) with the suppression list enforced (`mode = "refuse"`) and 1,000,000 entries in it
//!       (half of them for the benchmark's own sender domain), none matching its recipient:
//!       every RCPT is looked up. Also printed: RCPT latency, and the resident memory the
//!       daemon holds once started, (c) against (b): the index's size.
//!
//! Both milters listen on a unix socket: indymilter-test writes each command in several small
//! writes and cannot turn Nagle's algorithm off, so over TCP its own 40 ms delayed-ACK stalls would
//! be measured instead of the milters. (mailtrail sets TCP_NODELAY on its side for real MTAs.)
//!
//! Run: `cargo bench --bench milter` (MESSAGES=N to change the count per run).

use indymilter::{Callbacks, Status as MilterStatus};
use indymilter_test::{MacroStage, Status, TestConnection};
use mailtrail::config::{ConfigHandle, Source};
use std::{
    ffi::CString,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{net::UnixListener, sync::oneshot};

const CONNECTIONS: usize = 16;
const MESSAGE_BYTES: usize = 10 * 1024;

struct Figures {
    messages: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    rcpt_latencies: Vec<Duration>,
    /// Resident memory the milter added by the time it was ready (in-process runs).
    ready_rss: Option<u64>,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }

    fn rcpt_percentile(&self, p: f64) -> Duration {
        let i = ((self.rcpt_latencies.len() as f64 - 1.0) * p).round() as usize;
        self.rcpt_latencies[i]
    }
}

/// This process's resident memory, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Entries of the suppression list for (c): half for the benchmark's sender domain.
const SUPPRESSED: usize = 1_000_000;

/// A store with [`SUPPRESSED`] entries, none for `rcpt@example.net`.
fn suppressed_store(state: &Path) {
    let mut store = mailtrail::store::Store::open(&state.join("mailtrail.db")).unwrap();
    let entries: Vec<mailtrail::suppression::NewSuppression> = (0..SUPPRESSED)
        .map(|n| mailtrail::suppression::NewSuppression {
            sender_domain: match n % 2 {
                0 => "example.com".into(),
                _ => format!("sender{}.example", n % 99),
            },
            target: format!("user{n}@dest{}.example", n % 5000),
            reason: None,
        })
        .collect();
    let started = Instant::now();
    store.suppression_add(&entries, 1_796_083_200).unwrap();
    // As a store that has been up a while: the bulk insert's write-ahead log copied back, and
    // on disk (its writeback would otherwise slow the run's syncs).
    store.checkpoint().unwrap();
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    println!(
        "(c) {SUPPRESSED} suppression entries stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let messages: usize = std::env::var("MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(16_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Warm up both paths (page cache, SQLite file growth) before measuring.
        let _ = noop_milter(messages / 8).await;
        let _ = mailtrail_milter(messages / 8, false).await;
        let baseline = noop_milter(messages).await;
        let durable = mailtrail_milter(messages, false).await;
        let suppressing = mailtrail_milter(messages, true).await;

        println!("milter benchmark: {CONNECTIONS} connections, {MESSAGE_BYTES} byte messages, {messages} per run");
        println!("{:<42} {:>12} {:>10} {:>10} {:>10}", "", "messages/s", "p50 eom", "p99 eom", "p99 rcpt");
        for (name, f) in [
            ("(a) no-op indymilter milter", &baseline),
            ("(b) mailtrail, archive + store", &durable),
            ("(c) (b) + 1M-entry suppression list", &suppressing),
        ] {
            println!(
                "{name:<42} {:>12.0} {:>8.2}ms {:>8.2}ms {:>8.3}ms",
                f.rate(),
                f.percentile(0.50).as_secs_f64() * 1e3,
                f.percentile(0.99).as_secs_f64() * 1e3,
                f.rcpt_percentile(0.99).as_secs_f64() * 1e3
            );
        }
        println!("mailtrail / no-op throughput ratio: {:.2}", durable.rate() / baseline.rate());
        println!(
            "with the suppression list: throughput {:.2} of (b), p99 eom {:.2} of (b), p99 rcpt {:.2} of (b)",
            suppressing.rate() / durable.rate(),
            suppressing.percentile(0.99).as_secs_f64() / durable.percentile(0.99).as_secs_f64(),
            suppressing.rcpt_percentile(0.99).as_secs_f64() / durable.rcpt_percentile(0.99).as_secs_f64()
        );
        if let (Some(with), Some(without)) = (suppressing.ready_rss, durable.ready_rss) {
            println!(
                "resident memory at start: {:.1} MB with the list, {:.1} MB without: the index of {SUPPRESSED} entries takes {:.1} MB",
                with as f64 / 1e6,
                without as f64 / 1e6,
                with.saturating_sub(without) as f64 / 1e6
            );
        }
    });
}

async fn noop_milter(messages: usize) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let addr = dir.path().join("noop.sock");
    let listener = UnixListener::bind(&addr).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    // Every stage mailtrail uses, each answering at once: the same protocol traffic.
    let callbacks = Callbacks::<()>::new()
        .on_connect(|_, _, _| Box::pin(async { MilterStatus::Continue }))
        .on_helo(|_, _| Box::pin(async { MilterStatus::Continue }))
        .on_mail(|_, _| Box::pin(async { MilterStatus::Continue }))
        .on_rcpt(|_, _| Box::pin(async { MilterStatus::Continue }))
        .on_header(|_, _, _| Box::pin(async { MilterStatus::Continue }))
        .on_eoh(|_| Box::pin(async { MilterStatus::Continue }))
        .on_body(|_, _| Box::pin(async { MilterStatus::Continue }))
        .on_eom(|_| Box::pin(async { MilterStatus::Continue }));
    let server = tokio::spawn(indymilter::run(
        listener,
        callbacks,
        Default::default(),
        stopped,
    ));
    let figures = drive(&addr, messages).await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    figures
}

async fn mailtrail_milter(messages: usize, suppression: bool) -> Figures {
    // The state directory lives under target/, on the same disk as a real installation would.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let socket = dir.path().join("milter.sock");
    let config_path = dir.path().join("mailtrail.toml");
    std::fs::write(
        &config_path,
        format!(
            "[state]\ndir = \"{}\"\n[maillog]\nsource = \"off\"\n[web]\nenabled = false\n[milter]\nlisten = \"unix:{}\"\n[suppression]\nmode = \"{}\"\n",
            dir.path().join("state").display(),
            socket.display(),
            if suppression { "refuse" } else { "off" }
        ),
    )
    .unwrap();
    if suppression {
        suppressed_store(&dir.path().join("state"));
    }
    // What the runs before freed goes back to the system, so that the figure below is what
    // the daemon holds.
    // SAFETY: glibc's malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
    let source = Source::File(config_path);
    let handle = ConfigHandle::new(source.clone(), source.load().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let (ready, is_ready) = oneshot::channel();
    let server = tokio::spawn(mailtrail::run(
        handle,
        time::UtcOffset::UTC,
        stopped,
        move || {
            let _ = ready.send(());
        },
    ));
    let before = rss();
    is_ready.await.unwrap();
    let ready_rss = rss().saturating_sub(before);
    let mut figures = drive(&socket, messages).await;
    figures.ready_rss = Some(ready_rss);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let archived = std::fs::read_dir(dir.path().join("state/archive/new"))
        .unwrap()
        .count();
    assert_eq!(archived, messages, "every message must be archived");
    figures
}

async fn drive(addr: &Path, messages: usize) -> Figures {
    let addr: PathBuf = addr.to_path_buf();
    let body = Arc::new({
        let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
        line.iter()
            .copied()
            .cycle()
            .take(MESSAGE_BYTES)
            .collect::<Vec<u8>>()
    });
    let start = Instant::now();
    let mut clients = Vec::new();
    for c in 0..CONNECTIONS {
        let body = body.clone();
        let addr = addr.clone();
        let count = messages / CONNECTIONS + usize::from(c < messages % CONNECTIONS);
        clients.push(tokio::spawn(async move {
            let mut conn = TestConnection::configure().open_unix(&addr).await.unwrap();
            conn.connect("client.example.org", [192, 0, 2, 1])
                .await
                .unwrap();
            conn.helo("client.example.org").await.unwrap();
            let mut latencies = Vec::with_capacity(count);
            let mut rcpt_latencies = Vec::with_capacity(count);
            for n in 0..count {
                conn.mail(["<sender@example.com>"]).await.unwrap();
                let sent = Instant::now();
                let status = conn.rcpt(["<rcpt@example.net>"]).await.unwrap();
                rcpt_latencies.push(sent.elapsed());
                assert_eq!(status, Status::Continue);
                conn.header("From", "sender@example.com").await.unwrap();
                conn.header("To", "rcpt@example.net").await.unwrap();
                conn.header("Subject", format!("benchmark {c}-{n}"))
                    .await
                    .unwrap();
                conn.header("Message-ID", format!("<{c}.{n}@example.com>"))
                    .await
                    .unwrap();
                conn.eoh().await.unwrap();
                conn.body(body.as_slice().to_vec()).await.unwrap();
                let qid = CString::new(format!("Q{c:02}X{n:06}")).unwrap();
                conn.macros(MacroStage::Eom, [(CString::new("i").unwrap(), qid)])
                    .await
                    .unwrap();
                let sent = Instant::now();
                let (_, status) = conn.eom().await.unwrap();
                latencies.push(sent.elapsed());
                assert_eq!(status, Status::Continue);
            }
            conn.close().await.unwrap();
            (latencies, rcpt_latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(messages);
    let mut rcpt_latencies = Vec::with_capacity(messages);
    for client in clients {
        let (eom, rcpt) = client.await.unwrap();
        latencies.extend(eom);
        rcpt_latencies.extend(rcpt);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    rcpt_latencies.sort();
    Figures {
        messages,
        elapsed,
        latencies,
        rcpt_latencies,
        ready_rss: None,
    }
}
