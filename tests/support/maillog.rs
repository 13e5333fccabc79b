//! MTA logs for the follower: a generated postfix log (`../shared/data/tools/gen_postfix_log.py`)
//! and appending to the log a daemon follows.

use std::path::Path;
use std::process::Command;

pub const GENERATOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/tools/gen_postfix_log.py"
);

/// A generated postfix log of `lines` lines starting `days_ago` days ago (on the hour), of
/// `per_day` messages a day.
pub fn generated_postfix_log(lines: usize, seed: u64, days_ago: i64, per_day: u32) -> String {
    let start = time::OffsetDateTime::now_utc() - time::Duration::days(days_ago);
    let start = format!(
        "{:04}-{:02}-{:02}T{:02}:00:00",
        start.year(),
        start.month() as u8,
        start.day(),
        start.hour()
    );
    run_generator(&[
        "--lines",
        &lines.to_string(),
        "--seed",
        &seed.to_string(),
        "--msgs-per-day",
        &per_day.to_string(),
        "--start",
        &start,
    ])
}

/// The log the generator writes with `args` (and `-o` a file of its own).
pub fn run_generator(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("maillog");
    let out = Command::new("python3")
        .arg(GENERATOR)
        .args(args)
        .arg("-o")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("python3 {GENERATOR}: {e}"));
    assert!(
        out.status.success(),
        "{GENERATOR} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&file).expect("the generator writes UTF-8")
}

/// Appends `text` to the log at `path`, creating it.
pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}
