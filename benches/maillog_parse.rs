//! Parser throughput on the 1,000,000-line generated postfix log (default seed).
//! Run: `cargo bench --bench maillog_parse`. Prints lines/s for a baseline that only splits
//! lines and for the full parser, and the per-status counts as a sanity check. Both split lines
//! with `maillog::lines`, as `mailtrail import` does.

/// The allocator of the `mailtrail` binary (src/main.rs), so that the parser is timed as it
/// runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use mailtrail::maillog::{self, Event, ParseOutcome, Parser, ParserOptions};
use time::macros::{datetime, offset};

/// CPU seconds used by this thread (utime + stime from /proc, 10 ms ticks): on a shared
/// machine wall time also counts other people's builds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the `(comm)`; utime and stime are fields 14 and 15 of the whole line.
    let after = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split(' ').collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: do nothing then, a
    // debug build of this would only cost minutes.
    if !std::env::args().any(|a| a == "--bench") {
        println!("maillog_parse: run with `cargo bench --bench maillog_parse`");
        return;
    }
    let path = common::generated_postfix_log();
    let data = std::fs::read_to_string(&path).expect("read log");
    let lines = data.lines().count();
    println!(
        "log: {} ({lines} lines, {} MB)",
        path.display(),
        data.len() / 1_000_000
    );

    const ROUNDS: usize = 5;
    // (a) baseline: split into lines and touch each one.
    let mut best_base = f64::MAX;
    let cpu0 = cpu_secs();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let mut bytes = 0usize;
        for l in maillog::lines(&data) {
            bytes = bytes.wrapping_add(l.len());
        }
        std::hint::black_box(bytes);
        best_base = best_base.min(t.elapsed().as_secs_f64());
    }

    let cpu_base = (cpu_secs() - cpu0) / ROUNDS as f64;

    // (b) full parser: owned typed events.
    let mut best_parse = f64::MAX;
    let mut counts = BTreeMap::new();
    let cpu0 = cpu_secs();
    for round in 0..ROUNDS {
        let mut p = Parser::new(ParserOptions {
            now: datetime!(2026-11-23 12:00 UTC),
            syslog_names: vec!["postfix".into()],
            default_offset: offset!(+2),
        });
        let t = Instant::now();
        let mut n = 0usize;
        for l in maillog::lines(&data) {
            let out = p.parse(l);
            if round == 0 {
                let key = match &out {
                    ParseOutcome::Event(_, Event::Delivery(d)) => d.status.as_str(),
                    ParseOutcome::Event(_, Event::Expired { .. }) => "expired (qmgr)",
                    ParseOutcome::Event(_, Event::Reject(r)) if r.queue_id.is_none() => {
                        "NOQUEUE reject"
                    }
                    ParseOutcome::Event(..) => "other events",
                    ParseOutcome::Ignored(_) => "ignored",
                    ParseOutcome::Unknown => "unknown",
                };
                *counts.entry(key).or_insert(0usize) += 1;
            }
            n += matches!(out, ParseOutcome::Event(..)) as usize;
            std::hint::black_box(&out);
        }
        std::hint::black_box(n);
        best_parse = best_parse.min(t.elapsed().as_secs_f64());
    }

    let cpu_parse = (cpu_secs() - cpu0) / ROUNDS as f64;
    let base_rate = lines as f64 / best_base;
    let parse_rate = lines as f64 / best_parse;
    println!(
        "(a) split lines only : {:>12.0} lines/s ({:.3} s)",
        base_rate, best_base
    );
    println!(
        "(b) full parser      : {:>12.0} lines/s ({:.3} s)",
        parse_rate, best_parse
    );
    println!("ratio (a)/(b)        : {:.1}x", base_rate / parse_rate);
    if cpu_parse > 0.0 && cpu_base > 0.0 {
        println!(
            "per CPU second (mean of {ROUNDS}): (a) {:.0} lines/s, (b) {:.0} lines/s",
            lines as f64 / cpu_base,
            lines as f64 / cpu_parse
        );
    }
    for (k, v) in counts {
        println!("  {v:>8} {k}");
    }
}
