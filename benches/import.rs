//! `mailtrail import` against pflogsumm on the 1,000,000-line generated postfix log.
//!
//! Run: `cargo bench --bench import` (pflogsumm: `apt-get install -y pflogsumm`; without it
//! its column is skipped). In one run it:
//! - generates the log into `target/` if missing (as `benches/maillog_parse.rs`);
//! - runs pflogsumm and the real `mailtrail import` binary alternately, `ROUNDS` times each
//!   (`MAILTRAIL_BENCH_ROUNDS`, default 3), each import into a fresh store, and keeps the best
//!   wall time and the best CPU time of each: the machine is shared, so the ratios of the same
//!   run are what counts. The binary is the one cargo builds for benches
//!   (`CARGO_BIN_EXE_mailtrail`, release settings), run as a child so that its peak memory is
//!   its own (`ru_maxrss` from `wait4`);
//! - after each import, times the first `mailtrail stats` (it computes the statistics rollups
//!   from what was imported: the part of the work that pflogsumm's report corresponds to) and
//!   prints pflogsumm against import + stats too;
//! - times the library parser over the file's lines against a loop that only splits lines;
//! - checks the import's delivery totals, so that a fast but wrong import fails the bench.

/// The allocator of the `mailtrail` binary (src/main.rs), so that the parser is timed as it
/// runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use mailtrail::maillog::{self, ParseOutcome, Parser, ParserOptions};
use time::macros::{datetime, offset};

/// What the default-seed 1,000,000-line log must import as: (sent, deferred, bounced, expired).
const EXPECTED: (u64, u64, u64, u64) = (114_768, 52_909, 4_316, 341);

/// A finished child: wall seconds, CPU seconds (user + system), peak resident MB, stdout.
struct Run {
    wall: f64,
    cpu: f64,
    peak_mb: f64,
    stdout: String,
}

/// Runs `cmd` to its end and measures it through `wait4`, which reports the child's own
/// resource usage (not that of every child so far, as RUSAGE_CHILDREN would).
// The child is reaped by `wait4`, which clippy does not see.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command) -> Run {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).expect("read stdout");
    }
    let mut status = 0;
    // SAFETY: all-zero is a valid `rusage`; the pid is our own unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed: status {status}"
    );
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Run {
        wall,
        cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
        // Linux reports kilobytes.
        peak_mb: usage.ru_maxrss as f64 / 1024.0,
        stdout,
    }
}

fn pflogsumm() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("pflogsumm"))
        .find(|p| p.is_file())
}

/// (sent, deferred, bounced, expired) from the import's summary line
/// `deliveries: sent N, deferred N, bounced N, expired N; ...`.
fn totals(summary: &str) -> Option<(u64, u64, u64, u64)> {
    let line = summary.lines().find(|l| l.starts_with("deliveries: "))?;
    let count = |name: &str| -> Option<u64> {
        let rest = &line[line.find(&format!("{name} "))? + name.len() + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    Some((
        count("sent")?,
        count("deferred")?,
        count("bounced")?,
        count("expired")?,
    ))
}

fn remove_store(store: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = store.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Best of `rounds` of (a) splitting lines only, (b) the full parser: seconds each.
fn parse_times(data: &str, rounds: usize) -> (f64, f64) {
    let mut best_split = f64::MAX;
    let mut best_parse = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        let mut bytes = 0usize;
        for l in maillog::lines(data) {
            bytes = bytes.wrapping_add(l.len());
        }
        std::hint::black_box(bytes);
        best_split = best_split.min(t.elapsed().as_secs_f64());

        let mut p = Parser::new(ParserOptions {
            now: datetime!(2026-11-23 12:00 UTC),
            syslog_names: vec!["postfix".into()],
            default_offset: offset!(+2),
        });
        let t = Instant::now();
        let mut events = 0usize;
        for l in maillog::lines(data) {
            let out = p.parse(l);
            events += matches!(out, ParseOutcome::Event(..)) as usize;
            std::hint::black_box(&out);
        }
        std::hint::black_box(events);
        best_parse = best_parse.min(t.elapsed().as_secs_f64());
    }
    (best_split, best_parse)
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("import: run with `cargo bench --bench import`");
        return;
    }
    let rounds: usize = std::env::var("MAILTRAIL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let log = common::generated_postfix_log();
    println!(
        "log: {} ({} MB); {rounds} rounds, best of each",
        log.display(),
        std::fs::metadata(&log).map_or(0, |m| m.len()) / 1_000_000
    );

    let dir = common::target_dir().join("import-bench");
    std::fs::create_dir_all(&dir).expect("create bench dir");
    let store = dir.join("store.db");
    let config = dir.join("mailtrail.toml");
    std::fs::write(
        &config,
        format!("[store]\npath = {:?}\n", store.display().to_string()),
    )
    .expect("write config");

    let pflogsumm = pflogsumm();
    if pflogsumm.is_none() {
        println!("pflogsumm not found: `apt-get install -y pflogsumm` adds its column");
    }
    let (mut pf_wall, mut pf_cpu) = (f64::MAX, f64::MAX);
    let (mut im_wall, mut im_cpu, mut im_peak) = (f64::MAX, f64::MAX, 0f64);
    let (mut st_wall, mut st_cpu, mut st_peak) = (f64::MAX, f64::MAX, 0f64);
    for round in 0..rounds {
        // Alternated, so that other people's load hits both alike.
        if let Some(pf) = &pflogsumm {
            let run = measure(Command::new(pf).arg(&log));
            assert!(run.stdout.contains("Grand Totals"), "pflogsumm output");
            pf_wall = pf_wall.min(run.wall);
            pf_cpu = pf_cpu.min(run.cpu);
        }
        remove_store(&store);
        let run = measure(
            Command::new(env!("CARGO_BIN_EXE_mailtrail"))
                .arg("--config")
                .arg(&config)
                .arg("import")
                .arg(&log),
        );
        assert_eq!(
            totals(&run.stdout),
            Some(EXPECTED),
            "import totals (sent, deferred, bounced, expired); output:\n{}",
            run.stdout
        );
        im_wall = im_wall.min(run.wall);
        im_cpu = im_cpu.min(run.cpu);
        im_peak = im_peak.max(run.peak_mb);
        // What pflogsumm's report corresponds to: the statistics, computed by the first
        // `mailtrail stats` after the import (a full rebuild of the rollups).
        let stats = measure(
            Command::new(env!("CARGO_BIN_EXE_mailtrail"))
                .arg("--config")
                .arg(&config)
                .args(["stats", "--period", "2026"]),
        );
        assert!(stats.stdout.contains("Summary"), "stats output");
        st_wall = st_wall.min(stats.wall);
        st_cpu = st_cpu.min(stats.cpu);
        st_peak = st_peak.max(stats.peak_mb);
        println!(
            "round {}: import {:.2} s wall, {:.2} s CPU, {:.0} MB peak; then stats {:.2} s wall, {:.0} MB peak",
            round + 1,
            run.wall,
            run.cpu,
            run.peak_mb,
            stats.wall,
            stats.peak_mb
        );
    }
    remove_store(&store);

    // Read only now: a child forked while this process held the whole log would count those
    // pages in its peak memory until its exec.
    let data = std::fs::read_to_string(&log).expect("read log");
    let lines = data.lines().count();
    let (split, parse) = parse_times(&data, rounds);
    let parse_rate = lines as f64 / parse;
    let split_rate = lines as f64 / split;

    let pf = |v: f64| match pflogsumm {
        Some(_) => format!("{v:.2}"),
        None => "-".to_owned(),
    };
    let ratio = |p: f64, i: f64| match pflogsumm {
        Some(_) => format!("{:.1}x", p / i),
        None => "-".to_owned(),
    };
    println!();
    println!("| measure                          | wall    | CPU     |");
    println!("| -------------------------------- | ------- | ------- |");
    println!(
        "| pflogsumm s                      | {:>7} | {:>7} |",
        pf(pf_wall),
        pf(pf_cpu)
    );
    println!("| import s                         | {im_wall:>7.2} | {im_cpu:>7.2} |");
    println!(
        "| ratio pflogsumm/import (goal ≥5) | {:>7} | {:>7} |",
        ratio(pf_wall, im_wall),
        ratio(pf_cpu, im_cpu)
    );
    println!("| then `mailtrail stats` s         | {st_wall:>7.2} | {st_cpu:>7.2} |");
    println!(
        "| ratio pflogsumm/(import + stats) | {:>7} | {:>7} |",
        ratio(pf_wall, im_wall + st_wall),
        ratio(pf_cpu, im_cpu + st_cpu)
    );
    println!("| parse lines/s (goal ≥ 2,000,000) | {parse_rate:>17.0} |");
    println!(
        "| parse ratio (split / parse)      | {:>16.1}x |",
        split_rate / parse_rate
    );
    println!("| import peak MB (goal ≤ 200)      | {im_peak:>17.0} |");
    println!("| stats peak MB                    | {st_peak:>17.0} |");
    println!("({lines} lines)");
    println!(
        "import totals checked: sent {}, deferred {}, bounced {}, expired {}",
        EXPECTED.0, EXPECTED.1, EXPECTED.2, EXPECTED.3
    );
}
