//! What mailtrail costs a real postfix: a private postfix instance (Debian's package) relays
//! messages from `smtp-source` (16 sessions, 10 KB each) to `smtp-sink`, in setups run one
//! after the other on the same machine:
//!   (1) postfix alone;
//!   (2) postfix with `always_bcc` to a local virtual Maildir: the zero-code way to keep copies;
//!   (3, 4) postfix with an empty milter (indymilter on mailtrail's own listener, asking for
//!       what mailtrail asks and keeping nothing), on loopback TCP and on a unix socket: what
//!       any milter costs postfix and the machine, the floor under mailtrail's figures;
//!   (5, 6) postfix with `mailtrail run` as its milter (archive, store) and following its log,
//!       on loopback TCP and on a unix socket;
//!   (7, 8) without the follower, then without the archive too.
//!
//! Printed: messages/s from the first connection to the last delivery and each setup's ratio to
//! postfix alone; how busy the machine was and its CPU per message (every process, the kernel's
//! writeback threads and interrupts: the machine is shared, so this is what decides the rate);
//! mailtrail's CPU per message by thread (milter on the tokio workers, store writer, log reader
//! and applier); and the machine's CPU per message by process, setup by setup. Needs root and
//! postfix (as `scripts/test.sh` installs it).
//!
//! Every setup's files live under `MAILTRAIL_BENCH_DIR` (default `/var/tmp/mailtrail-bench`).
//!
//! Run: `cargo bench --bench postfix` (`MAILTRAIL_BENCH_MESSAGES=N`, default 2000;
//! `MAILTRAIL_BENCH_ROUNDS=N`, default 1, best of N per setup; `MAILTRAIL_BENCH_SETUPS=3,5`
//! runs only those, with postfix alone, e.g. under `perf record -a`).

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use mailtrail::config::ListenAddr;
use std::{
    collections::BTreeMap,
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

/// Clock ticks a second, the unit of `/proc`'s CPU times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// A `/proc/…/stat` line (a process's or one thread's): its name, and its user, system,
/// reaped children's user and children's system CPU seconds.
fn parse_stat(stat: &str) -> Option<(&str, [f64; 4])> {
    // The name (which may hold spaces and parentheses) runs from the first '(' to the last ')'.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = &head[head.find('(')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime: fields 14 to 17 of the line, 12 to 15 after the name.
    let seconds = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
            / ticks_per_second()
    };
    Some((name, [seconds(11), seconds(12), seconds(13), seconds(14)]))
}

/// User and system CPU seconds in a `/proc/…/stat` line; nothing for an unreadable one.
fn cpu_in_stat(stat: &str) -> (f64, f64) {
    parse_stat(stat).map_or((0.0, 0.0), |(_, [user, system, ..])| (user, system))
}

/// CPU seconds (user, system) of process `pid` so far, and of each of its live threads by id,
/// with the thread's name.
struct ProcessCpu {
    total: (f64, f64),
    threads: BTreeMap<u32, (String, (f64, f64))>,
}

impl ProcessCpu {
    fn of(pid: u32) -> ProcessCpu {
        let read = |path: String| std::fs::read_to_string(path).unwrap_or_default();
        let mut threads = BTreeMap::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            let stat = read(format!("/proc/{pid}/task/{tid}/stat"));
            if let Some((name, [user, system, ..])) = parse_stat(&stat) {
                threads.insert(tid, (name.to_string(), (user, system)));
            }
        }
        ProcessCpu {
            total: cpu_in_stat(&read(format!("/proc/{pid}/stat"))),
            threads,
        }
    }

    /// What was used since `before`, by thread name; threads gone meanwhile (tokio's blocking
    /// pool retires idle ones) under "exited threads".
    fn since(&self, before: &ProcessCpu) -> Vec<(String, (f64, f64))> {
        let mut by_name: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        let mut live = (0.0, 0.0);
        for (tid, (name, (u, s))) in &self.threads {
            let (u0, s0) = before.threads.get(tid).map_or((0.0, 0.0), |(_, c)| *c);
            let part = by_name.entry(name.clone()).or_default();
            part.0 += u - u0;
            part.1 += s - s0;
            live.0 += u - u0;
            live.1 += s - s0;
        }
        let total = (self.total.0 - before.total.0, self.total.1 - before.total.1);
        let exited = ((total.0 - live.0).max(0.0), (total.1 - live.1).max(0.0));
        if exited.0 + exited.1 > 0.0 {
            by_name.insert("exited threads".into(), exited);
        }
        by_name.insert("total".into(), total);
        by_name.into_iter().collect()
    }
}

/// The whole machine's CPU so far, in seconds: (busy, all). Busy is every state but idle and
/// iowait, so the kernel's writeback and journal threads and the interrupts count too.
fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|t| t.parse().ok())
        .collect();
    let hz = ticks_per_second();
    let all: f64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    ((all - idle) / hz, all / hz)
}

/// Every process's CPU seconds so far, by pid: its name, its own user + system, and its
/// reaped children's (how the CPU of a process that exits during a run is still counted).
fn processes_cpu() -> BTreeMap<u32, (String, f64, f64)> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((name, [user, system, child_user, child_system])) = parse_stat(&stat) {
            let own = user + system;
            all.insert(pid, (process_kind(name), own, child_user + child_system));
        }
    }
    all
}

/// A process name without what varies between instances of one kind (`kworker/u4:2-events`,
/// `jbd2/vda-8`, `ksoftirqd/1`): the part before the first '/'.
fn process_kind(comm: &str) -> String {
    comm.split('/').next().unwrap_or(comm).to_string()
}

/// CPU seconds used by process name between two [`processes_cpu`] snapshots. A process that
/// exited meanwhile is counted through its parent's reaped-children time, under
/// "exited children of PARENT".
fn cpu_by_process(
    before: &BTreeMap<u32, (String, f64, f64)>,
    after: &BTreeMap<u32, (String, f64, f64)>,
) -> BTreeMap<String, f64> {
    let mut by_name: BTreeMap<String, f64> = BTreeMap::new();
    for (pid, (name, own, children)) in after {
        let (own0, children0) = before
            .get(pid)
            .filter(|(n, _, _)| n == name)
            .map_or((0.0, 0.0), |(_, o, c)| (*o, *c));
        *by_name.entry(name.clone()).or_default() += own - own0;
        if children - children0 > 0.0 {
            *by_name
                .entry(format!("exited children of {name}"))
                .or_default() += children - children0;
        }
    }
    by_name
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

/// What one run of `n` messages took.
struct Outcome {
    elapsed: Duration,
    /// The whole machine's busy and total CPU seconds over the run.
    machine: (f64, f64),
    /// CPU seconds by process name over the run (see [`cpu_by_process`]).
    processes: BTreeMap<String, f64>,
    /// The milter's CPU seconds (user, system) by thread name, with its total (the setups with
    /// mailtrail or the empty milter).
    mailtrail: Option<Vec<(String, (f64, f64))>>,
}

impl Outcome {
    fn mailtrail_total(&self) -> Option<(f64, f64)> {
        let parts = self.mailtrail.as_ref()?;
        parts.iter().find(|(n, _)| n == "total").map(|(_, c)| *c)
    }
}

/// Sends `n` messages through `pf` and waits until all are relayed.
fn run_load(pf: &Postfix, sink: &Sink, n: usize) -> Outcome {
    let p0 = processes_cpu();
    let m0 = machine_cpu();
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
    let elapsed = t0.elapsed();
    let m1 = machine_cpu();
    let processes = cpu_by_process(&p0, &processes_cpu());
    Outcome {
        elapsed,
        machine: (m1.0 - m0.0, m1.1 - m0.1),
        processes,
        mailtrail: None,
    }
}

fn postfix_alone(n: usize) -> Outcome {
    let sink = Sink::start();
    let pf = Postfix::start(PostfixConfig::new(sink.port, None));
    run_load(&pf, &sink, n)
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
    let outcome = run_load(&pf, &sink, n);
    // The copies too: every one in the Maildir.
    let copies = vmail.path().join("archive/new");
    wait_until(
        Duration::from_secs(600),
        "the bcc copies in the Maildir",
        || std::fs::read_dir(&copies).map_or(0, |d| d.count()) >= n,
        String::new,
    );
    outcome
}

/// A milter that takes what mailtrail takes (the envelope, the headers, the body, with the same
/// stages left unanswered) and keeps nothing: what any archiving milter costs postfix and the
/// machine before it does any work. It runs on its own runtime, in threads named `empty-milter`.
struct EmptyMilter {
    address: String,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl EmptyMilter {
    /// Listening on loopback TCP, or with `unix` on a socket in a directory of its own.
    fn start(unix: bool) -> EmptyMilter {
        use indymilter::{Callbacks, ProtoOpts, Status};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("empty-milter")
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::Builder::new()
            .prefix("mailtrail-bench-milter.")
            .tempdir()
            .unwrap();
        // mailtrail's own options; each stage answers as mailtrail's does (postfix grants them all).
        let answer = |stage| match mailtrail::milter::NO_REPLY.contains(stage) {
            true => Status::Noreply,
            false => Status::Continue,
        };
        let (connect, helo, mail) = (
            answer(ProtoOpts::NOREPLY_CONNECT),
            answer(ProtoOpts::NOREPLY_HELO),
            answer(ProtoOpts::NOREPLY_MAIL),
        );
        let (rcpt, header, eoh, body) = (
            answer(ProtoOpts::NOREPLY_RCPT),
            answer(ProtoOpts::NOREPLY_HEADER),
            answer(ProtoOpts::NOREPLY_EOH),
            answer(ProtoOpts::NOREPLY_BODY),
        );
        let callbacks: Callbacks<()> = Callbacks::new()
            .on_negotiate(|cx, _, offered| {
                Box::pin(async move {
                    cx.requested_opts = offered & mailtrail::milter::REQUESTED_OPTS;
                    Status::Continue
                })
            })
            .on_connect(move |_, _, _| Box::pin(async move { connect }))
            .on_helo(move |_, _| Box::pin(async move { helo }))
            .on_mail(move |_, _| Box::pin(async move { mail }))
            .on_rcpt(move |_, _| Box::pin(async move { rcpt }))
            .on_header(move |_, _, _| Box::pin(async move { header }))
            .on_eoh(move |_| Box::pin(async move { eoh }))
            .on_body(move |_, _| Box::pin(async move { body }))
            .on_eom(|_| Box::pin(async { Status::Continue }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // mailtrail's own listener: the same buffering and TCP options, so the two differ only
        // in the work done per stage.
        let listen = if unix {
            ListenAddr::Unix(dir.path().join("milter.sock"))
        } else {
            ListenAddr::Inet(([127, 0, 0, 1], free_port()).into())
        };
        let listener = runtime.block_on(mailtrail::milter::bind(&listen)).unwrap();
        if let ListenAddr::Unix(path) = &listen {
            // Postfix's smtpd (as the postfix user, no chroot here) connects to it.
            let mode = |m| std::os::unix::fs::PermissionsExt::from_mode(m);
            std::fs::set_permissions(dir.path(), mode(0o755)).unwrap();
            std::fs::set_permissions(path, mode(0o777)).unwrap();
        }
        runtime.spawn(indymilter::run(
            listener,
            callbacks,
            Default::default(),
            stopped,
        ));
        let address = listen.to_string();
        EmptyMilter {
            address,
            runtime: Some(runtime),
            stop: Some(stop),
            _dir: dir,
        }
    }
}

impl Drop for EmptyMilter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn postfix_empty_milter(n: usize, unix: bool) -> Outcome {
    let sink = Sink::start();
    let milter = EmptyMilter::start(unix);
    let config = PostfixConfig::new(sink.port, None)
        .set("smtpd_milters", &milter.address)
        .set("milter_default_action", "tempfail");
    let pf = Postfix::start(config);
    let pid = std::process::id();
    let before = ProcessCpu::of(pid);
    let mut outcome = run_load(&pf, &sink, n);
    let threads = ProcessCpu::of(pid).since(&before);
    let milter_threads: Vec<_> = threads
        .into_iter()
        .filter(|(name, _)| name == "empty-milter")
        .collect();
    let total = milter_threads
        .iter()
        .fold((0.0, 0.0), |acc, (_, c)| (acc.0 + c.0, acc.1 + c.1));
    outcome.mailtrail = Some(
        milter_threads
            .into_iter()
            .chain([("total".to_string(), total)])
            .collect(),
    );
    outcome
}

/// Which parts of mailtrail run (the milter and its store always do).
#[derive(Clone, Copy)]
struct Parts {
    archive: bool,
    follower: bool,
    /// The milter on a unix socket rather than loopback TCP.
    unix: bool,
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
    let socket_dir = tempfile::Builder::new()
        .prefix("mailtrail-bench-socket.")
        .tempdir()
        .unwrap();
    let socket = socket_dir.path().join("milter.sock");
    if parts.unix {
        let from = config.find("listen = \"inet:").unwrap();
        let to = from + config[from..].find('\n').unwrap();
        config.replace_range(from..to, &format!("listen = \"unix:{}\"", socket.display()));
    }
    std::fs::write(mt.config_path(), config).unwrap();
    mt.start();
    let mut postfix_config = PostfixConfig::for_mailtrail(sink.port, &mt);
    if parts.unix {
        // Postfix's smtpd (as the postfix user, no chroot here) connects to it.
        let mode = |m| std::os::unix::fs::PermissionsExt::from_mode(m);
        std::fs::set_permissions(socket_dir.path(), mode(0o755)).unwrap();
        std::fs::set_permissions(&socket, mode(0o777)).unwrap();
        let address = format!("unix:{}", socket.display());
        postfix_config = postfix_config
            .set("smtpd_milters", &address)
            .set("non_smtpd_milters", &address);
    }
    let pf = Postfix::start(postfix_config);
    let pid = mt.pid().expect("mailtrail runs");
    let before = ProcessCpu::of(pid);
    let mut outcome = run_load(&pf, &sink, n);
    if parts.follower {
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
    }
    outcome.mailtrail = Some(ProcessCpu::of(pid).since(&before));
    assert!(mt.stop());
    outcome
}

fn best(rounds: usize, run: impl Fn() -> Outcome) -> Outcome {
    (0..rounds)
        .map(|_| run())
        .min_by_key(|o| o.elapsed)
        .expect("a round")
}

fn per_message(seconds: f64, n: usize) -> String {
    format!("{:.2} ms", seconds * 1000.0 / n as f64)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // Every setup's files (postfix's queue, the copies, the store) in a directory of the
    // benchmark's own, as a server keeps them under /var: ext4 allocates a file's inode near
    // its directory's, and in a /tmp where test suites create and delete thousands of files a
    // second, scanning past inodes freed moments ago costs more than writing the file.
    let dir = std::env::var("MAILTRAIL_BENCH_DIR").unwrap_or("/var/tmp/mailtrail-bench".into());
    std::fs::create_dir_all(&dir).expect("the benchmark's directory");
    // Postfix's processes, as their own users, reach their instance through it.
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&dir, mode).expect("the benchmark's directory");
    // SAFETY: no other thread runs yet.
    unsafe { std::env::set_var("TMPDIR", &dir) };
    let n = env_usize("MAILTRAIL_BENCH_MESSAGES", 2000);
    let rounds = env_usize("MAILTRAIL_BENCH_ROUNDS", 1).max(1);
    println!(
        "postfix benchmark: smtp-source -s {SESSIONS} -m {n} -l {MESSAGE_BYTES} → private postfix → smtp-sink, best of {rounds}"
    );
    let all = Parts {
        archive: true,
        follower: true,
        unix: false,
    };
    let all_unix = Parts { unix: true, ..all };
    let no_follower = Parts {
        follower: false,
        ..all
    };
    let milter_only = Parts {
        archive: false,
        follower: false,
        unix: false,
    };
    type Setup<'a> = (&'a str, Box<dyn Fn() -> Outcome + 'a>);
    let all_setups: Vec<Setup> = vec![
        ("postfix alone", Box::new(|| postfix_alone(n))),
        (
            "postfix + always_bcc to a local virtual Maildir",
            Box::new(|| postfix_always_bcc(n)),
        ),
        (
            "postfix + an empty milter (indymilter on mailtrail's listener, keeps nothing)",
            Box::new(|| postfix_empty_milter(n, false)),
        ),
        (
            "postfix + the empty milter on a unix socket",
            Box::new(|| postfix_empty_milter(n, true)),
        ),
        (
            "postfix + mailtrail (milter, archive, store, log follower)",
            Box::new(|| postfix_with_mailtrail(n, all)),
        ),
        (
            "postfix + mailtrail (all parts) on a unix socket",
            Box::new(|| postfix_with_mailtrail(n, all_unix)),
        ),
        (
            "postfix + mailtrail without the log follower",
            Box::new(|| postfix_with_mailtrail(n, no_follower)),
        ),
        (
            "postfix + mailtrail, milter and store only (`archive.maildir = false`, no follower)",
            Box::new(|| postfix_with_mailtrail(n, milter_only)),
        ),
    ];
    // `MAILTRAIL_BENCH_SETUPS=1,5` runs only those (the first, postfix alone, always: the
    // ratios are to it), for a profiler's sake.
    let chosen = std::env::var("MAILTRAIL_BENCH_SETUPS").ok();
    let outcomes: Vec<(&str, Outcome)> = all_setups
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            *i == 0
                || chosen
                    .as_deref()
                    .is_none_or(|c| c.split(',').any(|s| s.trim() == (i + 1).to_string()))
        })
        .map(|(_, (name, run))| (*name, best(rounds, run)))
        .collect();
    let alone = &outcomes[0].1;
    let setups: Vec<(&str, &Outcome)> = outcomes.iter().map(|(n, o)| (*n, o)).collect();
    let rate = |o: &Outcome| n as f64 / o.elapsed.as_secs_f64();
    println!();
    println!(
        "| setup | messages/s | vs postfix alone | machine busy | machine CPU per message | mailtrail CPU per message (user + system) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for &(name, o) in &setups {
        let cpu = o.mailtrail_total().map_or("-".to_string(), |(u, s)| {
            format!("{} + {}", per_message(u, n), per_message(s, n))
        });
        println!(
            "| {name} | {:.0} | {:.2} | {:.0} % | {} | {cpu} |",
            rate(o),
            rate(o) / rate(alone),
            100.0 * o.machine.0 / o.machine.1.max(f64::MIN_POSITIVE),
            per_message(o.machine.0, n),
        );
    }
    // Where mailtrail's time goes, by thread: the milter runs on tokio's workers (with its
    // archive writes on the blocking pool), the store writer commits envelopes, the log
    // reader and applier follow the log.
    println!();
    println!("mailtrail's CPU per message by thread (user + system):");
    println!();
    println!("| setup | thread | user | system |");
    println!("| --- | --- | --- | --- |");
    for &(name, o) in &setups {
        for (thread, (u, s)) in o.mailtrail.iter().flatten() {
            println!(
                "| {name} | {thread} | {} | {} |",
                per_message(*u, n),
                per_message(*s, n)
            );
        }
    }
    // Where the whole machine's time goes, by process (postfix's own, the load generator's, the
    // kernel's writeback and journal threads, mailtrail's), for processes above 0.05 ms.
    println!();
    println!("The machine's CPU per message by process (user + system):");
    println!();
    let heading: Vec<String> = (1..=setups.len()).map(|i| format!("({i})")).collect();
    println!("| process | {} |", heading.join(" | "));
    println!("|{}", " --- |".repeat(setups.len() + 1));
    let mut names: Vec<&String> = setups
        .iter()
        .flat_map(|(_, o)| o.processes.iter())
        .filter(|(_, cpu)| **cpu * 1000.0 / n as f64 >= 0.05)
        .map(|(name, _)| name)
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let cells: Vec<String> = setups
            .iter()
            .map(|(_, o)| per_message(o.processes.get(name).copied().unwrap_or(0.0), n))
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    let cells: Vec<String> = setups
        .iter()
        .map(|(_, o)| per_message(o.machine.0, n))
        .collect();
    println!(
        "| whole machine (with interrupts) | {} |",
        cells.join(" | ")
    );
    for (i, (name, _)) in setups.iter().enumerate() {
        println!("({}) {name}", i + 1);
    }
}
