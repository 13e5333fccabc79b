//! What storing archive copies costs, without an MTA: batches of 8 copies of 10 KB stored the
//! way the store writer stores them (`Archive::store_copies`, then the sync of `new/`), against
//! a baseline in the same run: the same files created, written and renamed with no sync at all
//! (what any file-per-message archive pays the file system). Each runs in a quiet directory and
//! again beside a thread that creates and deletes 12 KB files in a sibling directory, as
//! postfix's queue does beside its archive: ext4 allocates a new file's inode near its
//! directory's and scans past inodes freed moments before, so the neighbours' churn shows up in
//! the archive's cost.
//!
//! Printed: CPU (user + system, of the storing thread) and wall time per copy, best of three
//! alternated rounds, and each setup's CPU as a ratio to the baseline's in the same surroundings.
//!
//! Run: `cargo bench --bench archive` (`MAILTRAIL_BENCH_COPIES=N`, default 4000;
//! `MAILTRAIL_BENCH_DIR`, default `/var/tmp/mailtrail-bench`).

use mailtrail::archive::Archive;
use std::{
    io::Write,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

const BATCH: usize = 8;
/// Rounds of each setup, alternated; the best is printed.
const ROUNDS: usize = 3;
const COPY_BYTES: usize = 10 * 1024;

/// This thread's user and system CPU seconds so far.
fn thread_cpu() -> (f64, f64) {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

struct Figures {
    cpu: (f64, f64),
    wall: Duration,
}

/// Creates and deletes files in `dir` until `stop`, as an MTA's queue does.
fn churn(dir: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::fs::create_dir_all(dir).unwrap();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let bytes = vec![b'q'; 12 * 1024];
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let path = dir.join(i.to_string());
            if let Ok(mut f) = std::fs::File::create(&path) {
                let _ = f.write_all(&bytes);
            }
            let _ = std::fs::remove_file(&path);
            i += 1;
        }
    })
}

/// `copies` files created in `root/tmp`, written and renamed into `root/new`, never synced.
fn plain_files(root: &Path, copies: usize) -> Figures {
    for sub in ["tmp", "new"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    let body = vec![b'm'; COPY_BYTES];
    let (c0, t0) = (thread_cpu(), Instant::now());
    for i in 0..copies {
        let tmp = root.join("tmp").join(i.to_string());
        let mut f = std::fs::File::create_new(&tmp).unwrap();
        f.write_all(&body).unwrap();
        drop(f);
        std::fs::rename(&tmp, root.join("new").join(i.to_string())).unwrap();
    }
    let c1 = thread_cpu();
    Figures {
        cpu: (c1.0 - c0.0, c1.1 - c0.1),
        wall: t0.elapsed(),
    }
}

/// `copies` copies stored durably by mailtrail's archive, `BATCH` at a time.
fn archived(root: &Path, copies: usize) -> Figures {
    let archive = Arc::new(Archive::open(root).unwrap());
    let body = vec![b'm'; COPY_BYTES];
    let (c0, t0) = (thread_cpu(), Instant::now());
    for _ in 0..copies / BATCH {
        let spools = (0..BATCH)
            .map(|_| {
                let mut spool = archive.spool(u64::MAX);
                spool.append(&body);
                spool
            })
            .collect();
        for stored in archive.store_copies(spools) {
            stored.unwrap();
        }
        archive.sync_new_dir().unwrap();
    }
    let c1 = thread_cpu();
    Figures {
        cpu: (c1.0 - c0.0, c1.1 - c0.1),
        wall: t0.elapsed(),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let copies: usize = std::env::var("MAILTRAIL_BENCH_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let base = std::env::var("MAILTRAIL_BENCH_DIR").unwrap_or("/var/tmp/mailtrail-bench".into());
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("archive.")
        .tempdir_in(&base)
        .unwrap();
    println!(
        "archive benchmark: {copies} copies of {COPY_BYTES} bytes, in batches of {BATCH}, in {}",
        dir.path().display()
    );
    println!();
    println!(
        "| surroundings | setup | CPU per copy (user + system) | wall per copy | CPU vs plain files |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for busy in [false, true] {
        let stop = Arc::new(AtomicBool::new(false));
        let neighbour = busy.then(|| churn(&dir.path().join("queue"), stop.clone()));
        let label = if busy {
            "beside a churning queue"
        } else {
            "quiet"
        };
        // Alternated rounds, the best of each: the first files written in a fresh place pay for
        // its warm-up, whichever setup comes first.
        let mut plain: Option<Figures> = None;
        let mut stored: Option<Figures> = None;
        let total = |f: &Figures| f.cpu.0 + f.cpu.1;
        let keep_best = |best: &mut Option<Figures>, f: Figures| {
            if best.as_ref().is_none_or(|b| total(&f) < total(b)) {
                *best = Some(f);
            }
        };
        for round in 0..ROUNDS {
            let place = |kind: &str| dir.path().join(format!("{kind}-{busy}-{round}"));
            keep_best(&mut plain, plain_files(&place("plain"), copies));
            keep_best(&mut stored, archived(&place("archive"), copies));
        }
        let (plain, stored) = (plain.unwrap(), stored.unwrap());
        stop.store(true, Ordering::Relaxed);
        if let Some(neighbour) = neighbour {
            neighbour.join().unwrap();
        }
        let per = |s: f64| format!("{:.3} ms", s * 1000.0 / copies as f64);
        for (name, f) in [
            ("plain files (create, write, rename; no sync)", &plain),
            ("mailtrail's archive (store_copies + sync of new/)", &stored),
        ] {
            println!(
                "| {label} | {name} | {} + {} | {} | {:.2} |",
                per(f.cpu.0),
                per(f.cpu.1),
                per(f.wall.as_secs_f64()),
                total(f) / total(&plain).max(f64::MIN_POSITIVE)
            );
        }
    }
}
