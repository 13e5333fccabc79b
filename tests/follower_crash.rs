//! The live log follower of the real binary (`mailtrail run`) against a generated postfix log
//! (no MTA needed): killed with SIGKILL part-way through and started again, and across a
//! rotation by rename, it neither loses nor double-counts a delivery attempt. The expected
//! counts are computed here from the file's text, independently of mailtrail's parser.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mailtrail::store::Store;
use support::mailtrail::Mailtrail;
use support::postfix::tail;
use support::util::wait_for;

const LINES: usize = 60_000;
/// Time to read the whole file (about 10 s in a debug build on 2 busy cores), with room.
const T: Duration = Duration::from_secs(90);

/// `gen_postfix_log.py --lines 60000 -o FILE` (deterministic: fixed seed), run once for the
/// tests of this binary.
fn generated() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let text = support::maillog::run_generator(&["--lines", &LINES.to_string()]);
        assert_eq!(text.lines().count(), LINES);
        text
    })
}

/// Attempts by status, from the log text alone: one per `to=<...>, ... status=S (` line, for
/// each `status=expired` message line one `expired` per recipient of that queue id whose
/// last line said `deferred` (what the store records for an expired message). A message refused
/// at its end (`milter-reject: END-OF-MESSAGE`, the only refusal with a queue id the generator
/// writes) ends its recipients without an attempt.
fn expected_counts(text: &str) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    // Queue id → recipient → last status, until the queue id is removed.
    let mut queued: HashMap<&str, HashMap<&str, &str>> = HashMap::new();
    for line in text.lines() {
        let Some(qid) = line
            .split_once("]: ")
            .and_then(|(_, rest)| rest.split_once(": "))
            .map(|(qid, _)| qid)
        else {
            continue;
        };
        if line.ends_with(": removed") {
            queued.remove(qid);
            continue;
        }
        if line.contains(": milter-reject: END-OF-MESSAGE ") {
            // Its queue id is free: none of its recipients expires later.
            queued.remove(qid);
            continue;
        }
        if line.contains(" status=expired") {
            let pending = queued
                .get(qid)
                .map_or(0, |r| r.values().filter(|s| **s == "deferred").count());
            *counts.entry("expired".into()).or_default() += pending as u64;
            continue;
        }
        for status in ["sent", "deferred", "bounced"] {
            if line.contains(&format!(" status={status} ")) {
                *counts.entry(status.into()).or_default() += 1;
                let rcpt = line
                    .split_once(": to=<")
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(r, _)| r)
                    .unwrap_or_else(|| panic!("a delivery line without to=<>: {line}"));
                queued.entry(qid).or_default().insert(rcpt, status);
            }
        }
    }
    counts
}

/// The follower's saved position for `path`: (inode, byte offset).
fn saved_position(store: &Store, path: &Path) -> Option<(u64, u64)> {
    let json = store
        .log_position(&format!("file:{}", path.display()))
        .unwrap()?;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    Some((v["inode"].as_u64()?, v["offset"].as_u64()?))
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

/// Store counts without the statuses that have no attempt, for comparison.
fn nonzero(mut counts: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    counts.retain(|_, v| *v > 0);
    counts
}

/// Waits until the saved position is `offset` in the file with `inode`.
fn wait_position(mt: &Mailtrail, store: &Store, path: &Path, inode: u64, offset: u64) {
    wait_for(
        T,
        &format!("the saved position to reach inode {inode} byte {offset}"),
        || (saved_position(store, path) == Some((inode, offset))).then_some(()),
        || {
            format!(
                "saved: {:?}\nmailtrail log:\n{}",
                saved_position(store, path),
                tail(&mt.log(), 20)
            )
        },
    );
}

/// SIGKILL while the follower is part-way through 60,000 lines, then a restart: the attempts
/// stored at the kill are exactly those of the lines before the saved position (the position
/// is committed with its events), and after the restart reads to the end, the attempts by
/// status equal the counts from the file: none lost, none counted twice.
#[test]
fn sigkill_part_way_loses_and_repeats_nothing() {
    let text = generated();
    let expected = expected_counts(text);
    assert!(
        expected["sent"] > 1000 && expected["deferred"] > 100 && expected["bounced"] > 10,
        "{expected:?}"
    );
    let mut mt = Mailtrail::configure();
    let path = mt.mta_log_path();
    std::fs::write(&path, "").unwrap();
    let size = text.len() as u64;
    let ino = inode(&path);

    mt.start();
    let store = Store::open(&mt.store_path()).unwrap();
    // The lines arrive once the daemon is up: on a busy machine its start can take longer than
    // reading them all would, leaving nothing to kill it part way through.
    let started = Instant::now();
    {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        log.write_all(text.as_bytes()).unwrap();
    }
    wait_for(
        T,
        "the follower to store its first batch",
        || saved_position(&store, &path).filter(|(_, offset)| *offset > 0),
        || tail(&mt.log(), 20),
    );
    mt.kill();
    let (killed_ino, killed_at) = saved_position(&store, &path).unwrap();
    assert_eq!(killed_ino, ino);
    assert!(
        killed_at < size,
        "the follower read all {size} bytes in {:?}, before it could be killed",
        started.elapsed()
    );
    assert_eq!(
        text.as_bytes()[killed_at as usize - 1],
        b'\n',
        "saved position at a line end"
    );
    eprintln!(
        "killed after {:?} at byte {killed_at} of {size}",
        started.elapsed()
    );
    // Nothing half-stored: the attempts are those of the lines before the saved position.
    assert_eq!(
        nonzero(store.attempt_counts().unwrap()),
        expected_counts(&text[..killed_at as usize]),
        "attempts stored at the kill, position {killed_at} of {size}"
    );

    mt.start();
    wait_position(&mt, &store, &path, ino, size);
    assert_eq!(
        nonzero(store.attempt_counts().unwrap()),
        expected,
        "after the restart (killed at byte {killed_at} of {size})"
    );
    assert!(
        mt.log()
            .contains(&format!("from byte {killed_at} (saved position)")),
        "the restart resumed at the saved position:\n{}",
        tail(&mt.log(), 20)
    );
    assert!(mt.stop(), "mailtrail exits on SIGTERM");
}

/// The byte after the line in which `fraction` of `text` ends.
fn line_end(text: &str, fraction: f64) -> usize {
    let at = (text.len() as f64 * fraction) as usize;
    at + text[at..].find('\n').unwrap() + 1
}

/// Rotation by rename while the follower reads 30,000 lines: the first 40% of them are in the
/// file when mailtrail starts; once it has stored some, the file is renamed to `.1`, the writer
/// appends another 10% to the renamed file (it has not reopened yet), and the rest goes to a new
/// file at the path. The follower finishes the old file, switches to the new one, and the
/// attempts by status equal the counts of the whole text.
#[test]
fn rotation_by_rename_loses_and_repeats_nothing() {
    // The first half of the lines is enough here, and halves the time.
    let text = &generated()[..line_end(generated(), 0.5)];
    let expected = expected_counts(text);
    let (first, second) = (line_end(text, 0.4), line_end(text, 0.5));

    let mut mt = Mailtrail::configure();
    let path = mt.mta_log_path();
    std::fs::write(&path, &text[..first]).unwrap();
    mt.start();
    let store = Store::open(&mt.store_path()).unwrap();
    wait_for(
        T,
        "the follower to store its first batch",
        || saved_position(&store, &path).filter(|(_, offset)| *offset > 0),
        || tail(&mt.log(), 20),
    );

    let rotated = path.with_extension("log.1");
    std::fs::rename(&path, &rotated).unwrap();
    {
        use std::io::Write;
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(&rotated)
            .unwrap();
        old.write_all(&text.as_bytes()[first..second]).unwrap();
    }
    std::fs::write(&path, &text[second..]).unwrap();
    let new_ino = inode(&path);
    assert_ne!(new_ino, inode(&rotated));

    wait_position(&mt, &store, &path, new_ino, (text.len() - second) as u64);
    assert_eq!(nonzero(store.attempt_counts().unwrap()), expected);
    assert!(mt.stop(), "mailtrail exits on SIGTERM");
}

/// The byte after the `n`th line of `text`.
fn nth_line_end(text: &str, n: usize) -> usize {
    text.match_indices('\n').nth(n - 1).unwrap().0 + 1
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// Another writer holds the store's write lock for longer than the busy timeout (10 s), so a
/// batch of 1,000 lines fails to be stored; then 1,000 more lines are appended and the lock
/// released. The failed batch is retried, not skipped: once the position reaches the end, the
/// attempts equal the counts of all 3,000 lines. (Skipping it, the next batch's position would
/// pass its lines and they would be lost for good.)
#[test]
fn a_batch_that_cannot_be_stored_is_retried_not_skipped() {
    let all = generated();
    let (a, b, c) = (
        nth_line_end(all, 1000),
        nth_line_end(all, 2000),
        nth_line_end(all, 3000),
    );
    let text = &all[..c];
    let mut mt = Mailtrail::configure();
    let path = mt.mta_log_path();
    std::fs::write(&path, &text[..a]).unwrap();
    let ino = inode(&path);
    mt.start();
    let store = Store::open(&mt.store_path()).unwrap();
    wait_position(&mt, &store, &path, ino, a as u64);

    let lock = rusqlite::Connection::open(mt.store_path()).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    append(&path, &text[a..b]);
    wait_for(
        Duration::from_secs(30),
        "the follower to fail storing the lines (store locked)",
        || mt.log().contains("log lines not stored").then_some(()),
        || tail(&mt.log(), 20),
    );
    append(&path, &text[b..]);
    lock.execute_batch("COMMIT").unwrap();

    wait_position(&mt, &store, &path, ino, c as u64);
    assert_eq!(
        nonzero(store.attempt_counts().unwrap()),
        expected_counts(text),
        "{}",
        tail(&mt.log(), 20)
    );
    assert!(mt.stop(), "mailtrail exits on SIGTERM");
}
