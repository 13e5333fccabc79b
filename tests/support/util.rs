//! Small helpers shared by the harness: free ports, waiting for a condition, process checks.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// How often [`wait_until`] re-checks its condition.
pub const POLL: Duration = Duration::from_millis(50);

/// A TCP port on 127.0.0.1 that nothing listens on right now.
///
/// Ports are taken from 20000..32000, below Linux's ephemeral range (32768..60999), so the
/// outgoing connections of a parallel test (postfix's smtp client, lettre) cannot be handed the
/// port between the moment it is chosen here and the moment a daemon binds it. A process-wide
/// counter, started at an offset derived from the pid, keeps parallel tests of one binary and
/// parallel test binaries apart; each candidate is checked by binding it.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    const LOW: u16 = 20000;
    const SPAN: u16 = 12000;
    let _ = NEXT.compare_exchange(
        0,
        ((std::process::id() * 397) % u32::from(SPAN)) as u16 + 1,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = LOW + (n % SPAN);
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOW}..{}", LOW + SPAN);
}

/// Polls `cond` every [`POLL`] until it returns `Some`, or panics after `timeout` with `what`
/// and the last state described by `describe`.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                describe()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `cond` until it holds, or panics after `timeout` (see [`wait_for`]).
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
    describe: impl Fn() -> String,
) {
    wait_for(timeout, what, || cond().then_some(()), describe)
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Whether process `pid` exists and is not a zombie (a daemon whose parent is a non-reaping
/// init stays a zombie after it exited).
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // "pid (comm) S ...": the state follows the last ')'.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// Sends `sig` to `pid`; errors (no such process) are ignored.
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Pids of live processes whose environment contains exactly `var=value`.
///
/// Postfix's master passes its configuration directory to every child as `MAIL_CONFIG`, which is
/// how leftovers of one private instance are told apart from every other postfix on the machine.
pub fn pids_with_env(var: &str, value: &Path) -> Vec<i32> {
    let needle = format!("{var}={}", value.display()).into_bytes();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == needle.as_slice()) && pid_alive(pid) {
            pids.push(pid);
        }
    }
    pids
}
