//! What mailtrail costs a real postfix: a private postfix instance (Debian's package) relays
//! messages from `smtp-source` (16 sessions, 10 KB each) to `smtp-sink`, in three setups run
//! one after the other on the same machine:
//!   (1) postfix alone;
//!   (2) postfix with `always_bcc` to a local virtual Maildir: the zero-code way to keep copies;
//!   (3) postfix with `mailtrail run` as its milter (archive, store) and following its log;
//!       then without the follower, then without the archive too, to split mailtrail's CPU by
//!       part (follower, archive, milter with store).
//!
//! Printed: messages/s from the first connection to the last delivery, each setup's ratio to
//! postfix alone, and mailtrail's CPU per message (user and system, from /proc), so the cost
//! is visible beside the throughput. Needs root and postfix (as `scripts/test.sh` installs it).
//!
//! Run: `cargo bench --bench postfix` (`MAILTRAIL_BENCH_MESSAGES=N`, default 2000;
//! `MAILTRAIL_BENCH_ROUNDS=N`, default 1, best of N per setup).

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use support::{
    mailtrail::Mailtrail,
    postfix::{Postfix, PostfixConfig},
    util::{free_port, port_open, wait_until},
};

const SESSIONS: &str = "16";
const MESSAGE_BYTES: &str = "10240";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `smtp-sink` on a free port: accepts everything, keeps nothing.
struct Sink {
    child: Child,
    port: u16,
}

impl Sink {
    fn start() -> Sink {
        let port = free_port();
        // As root it must drop to a user of its own choosing.
        let child = Command::new("/usr/sbin/smtp-sink")
            .args(["-u", "postfix"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink (postfix's package)");
        wait_until(
            Duration::from_secs(10),
            "smtp-sink to listen",
            || port_open(port),
            String::new,
        );
        Sink { child, port }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User and system CPU seconds of process `pid` so far.
fn cpu_of(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start after its ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) / hz, ticks(12) / hz)
}

/// Messages relayed to the sink so far, from the instance's log.
fn relayed(log: &Path, sink_port: u16) -> usize {
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{sink_port},");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" status=sent ") && l.contains(&relay))
        .count()
}

/// Sends `n` messages through `pf` and waits until all are relayed; the elapsed time.
fn run_load(pf: &Postfix, sink: &Sink, n: usize) -> Duration {
    let t0 = Instant::now();
    let out = Command::new("/usr/sbin/smtp-source")
        .args(["-s", SESSIONS, "-l", MESSAGE_BYTES, "-m", &n.to_string()])
        .args([
            "-f",
            "sender@client.test.example",
            "-t",
            "rcpt@remote.test.example",
        ])
        .arg(format!("127.0.0.1:{}", pf.smtpd_port()))
        .output()
        .expect("smtp-source (postfix's package)");
    assert!(
        out.status.success(),
        "smtp-source: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = pf.maillog_path();
    wait_until(
        Duration::from_secs(600),
        &format!("{n} messages relayed to smtp-sink"),
        || relayed(&log, sink.port) >= n,
        || format!("{} relayed", relayed(&log, sink.port)),
    );
    t0.elapsed()
}

struct Outcome {
    elapsed: Duration,
    /// mailtrail's user and system CPU seconds over the run (setup 3 only).
    cpu: Option<(f64, f64)>,
}

fn postfix_alone(n: usize) -> Outcome {
    let sink = Sink::start();
    let pf = Postfix::start(PostfixConfig::new(sink.port, None));
    Outcome {
        elapsed: run_load(&pf, &sink, n),
        cpu: None,
    }
}

fn postfix_always_bcc(n: usize) -> Outcome {
    let sink = Sink::start();
    let vmail = tempfile::Builder::new()
        .prefix("mailtrail-bench-vmail.")
        .tempdir()
        .unwrap();
    let status = Command::new("chown")
        .args(["-R", "postfix:postfix"])
        .arg(vmail.path())
        .status()
        .unwrap();
    assert!(status.success());
    let config = PostfixConfig::new(sink.port, None)
        .set("always_bcc", "archive@archive.test.example")
        .set("virtual_mailbox_domains", "archive.test.example")
        .set("virtual_mailbox_base", &vmail.path().display().to_string())
        .set("virtual_mailbox_maps", "static:archive/")
        .set("virtual_uid_maps", "static:102")
        .set("virtual_gid_maps", "static:105")
        .set("virtual_minimum_uid", "100");
    let pf = Postfix::start(config);
    let elapsed = run_load(&pf, &sink, n);
    // The copies too: every one in the Maildir.
    let copies = vmail.path().join("archive/new");
    wait_until(
        Duration::from_secs(600),
        "the bcc copies in the Maildir",
        || std::fs::read_dir(&copies).map_or(0, |d| d.count()) >= n,
        String::new,
    );
    Outcome { elapsed, cpu: None }
}

/// Which parts of mailtrail run (the milter and its store always do).
#[derive(Clone, Copy)]
struct Parts {
    archive: bool,
    follower: bool,
}

fn postfix_with_mailtrail(n: usize, parts: Parts) -> Outcome {
    let sink = Sink::start();
    let mut mt = Mailtrail::configure();
    let mut config = std::fs::read_to_string(mt.config_path()).unwrap();
    if !parts.follower {
        let from = config.find("source = \"file:").unwrap();
        let to = from + config[from..].find('\n').unwrap();
        config.replace_range(from..to, "source = \"off\"");
    }
    if !parts.archive {
        config.push_str("\n[archive]\nmaildir = false\n");
    }
    std::fs::write(mt.config_path(), config).unwrap();
    mt.start();
    let pf = Postfix::start(PostfixConfig::for_mailtrail(sink.port, &mt));
    let pid = mt.pid().expect("mailtrail runs");
    let (u0, s0) = cpu_of(pid);
    let elapsed = run_load(&pf, &sink, n);
    if !parts.follower {
        let (u1, s1) = cpu_of(pid);
        assert!(mt.stop());
        return Outcome {
            elapsed,
            cpu: Some((u1 - u0, s1 - s0)),
        };
    }
    // Until the follower has read every delivery: its work belongs to the run.
    let lines = std::fs::read_to_string(pf.maillog_path())
        .unwrap_or_default()
        .lines()
        .count() as u64;
    wait_until(
        Duration::from_secs(600),
        "mailtrail's follower to read every log line",
        || mt.counters().get("log_lines").is_some_and(|&l| l >= lines),
        || format!("{lines} lines; {:?}", mt.counters()),
    );
    let (u1, s1) = cpu_of(pid);
    assert!(mt.stop());
    Outcome {
        elapsed,
        cpu: Some((u1 - u0, s1 - s0)),
    }
}

fn best(rounds: usize, run: impl Fn() -> Outcome) -> Outcome {
    (0..rounds)
        .map(|_| run())
        .min_by_key(|o| o.elapsed)
        .expect("a round")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_usize("MAILTRAIL_BENCH_MESSAGES", 2000);
    let rounds = env_usize("MAILTRAIL_BENCH_ROUNDS", 1).max(1);
    println!(
        "postfix benchmark: smtp-source -s {SESSIONS} -m {n} -l {MESSAGE_BYTES} → private postfix → smtp-sink, best of {rounds}"
    );
    let alone = best(rounds, || postfix_alone(n));
    let bcc = best(rounds, || postfix_always_bcc(n));
    let all = Parts {
        archive: true,
        follower: true,
    };
    let with = best(rounds, || postfix_with_mailtrail(n, all));
    let no_follower = Parts {
        follower: false,
        ..all
    };
    let without_follower = best(rounds, || postfix_with_mailtrail(n, no_follower));
    let milter_only = Parts {
        archive: false,
        follower: false,
    };
    let only_milter = best(rounds, || postfix_with_mailtrail(n, milter_only));
    let rate = |o: &Outcome| n as f64 / o.elapsed.as_secs_f64();
    println!();
    println!(
        "| setup | messages/s | vs postfix alone | mailtrail CPU per message (user + system) |"
    );
    println!("| --- | --- | --- | --- |");
    for (name, o) in [
        ("postfix alone", &alone),
        ("postfix + always_bcc to a local virtual Maildir", &bcc),
        (
            "postfix + mailtrail (milter, archive, store, log follower)",
            &with,
        ),
        (
            "postfix + mailtrail without the log follower",
            &without_follower,
        ),
        (
            "postfix + mailtrail, milter and store only (`archive.maildir = false`, no follower)",
            &only_milter,
        ),
    ] {
        let cpu = o.cpu.map_or("-".to_string(), |(u, s)| {
            format!(
                "{:.2} ms + {:.2} ms",
                u * 1000.0 / n as f64,
                s * 1000.0 / n as f64
            )
        });
        println!(
            "| {name} | {:.0} | {:.2} | {cpu} |",
            rate(o),
            rate(o) / rate(&alone)
        );
    }
}
