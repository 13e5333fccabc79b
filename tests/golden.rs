//! Golden files: real inputs beside their expected output, as mail-parser keeps `.eml` beside
//! `.json`. `tests/golden/maillog/NAME.log` holds log lines, `NAME.jsonl` what the parser makes
//! of each (header and typed event, or why it is not one); `tests/golden/bounce/replies.tsv`
//! holds failures as the MTA logged them, `replies.jsonl` their category.
//!
//! A mismatch writes the actual output beside the expected one (`NAME.jsonl.actual`, not
//! committed) and fails with the first differing case; review it with `diff`, and accept a
//! deliberate change with `MAILTRAIL_BLESS=1 cargo test --test golden`.

use mailtrail::{
    bounce::{Classifier, Failure, SmtpStage},
    maillog::{Parser, ParserOptions},
};
use serde_json::json;
use std::path::{Path, PathBuf};
use time::macros::{datetime, offset};

fn golden_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(kind)
}

/// The cases of an input file: its lines without comments (`#`) and blank lines.
fn cases(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Compares `actual` (one JSON object per case) with the file `expected`.
fn check(expected: &Path, actual: &[serde_json::Value]) {
    let actual: String = actual.iter().map(|v| format!("{v}\n")).collect();
    let review = expected.with_extension("jsonl.actual");
    if std::env::var_os("MAILTRAIL_BLESS").is_some() {
        std::fs::write(expected, &actual).unwrap();
        let _ = std::fs::remove_file(&review);
        return;
    }
    let wanted = std::fs::read_to_string(expected).unwrap_or_default();
    if wanted == actual {
        let _ = std::fs::remove_file(&review);
        return;
    }
    std::fs::write(&review, &actual).unwrap();
    let first = wanted
        .lines()
        .zip(actual.lines())
        .position(|(w, a)| w != a)
        .unwrap_or(wanted.lines().count().min(actual.lines().count()));
    panic!(
        "{} differs from what the code makes of its input, first at case {}:\n  expected: {}\n  actual:   {}\n(all of it written to {} for review)",
        expected.display(),
        first + 1,
        wanted.lines().nth(first).unwrap_or("(none)"),
        actual.lines().nth(first).unwrap_or("(none)"),
        review.display()
    );
}

/// A parser as the grammar tests use it: a fixed *now* (for stamps without a year) and a
/// server two hours east of UTC (for stamps without an offset).
fn parser() -> Parser {
    Parser::new(ParserOptions {
        now: datetime!(2026-06-01 12:00 UTC),
        syslog_names: vec!["postfix".into()],
        default_offset: offset!(+2),
    })
}

#[test]
fn log_lines_parse_as_their_golden_files_say() {
    let dir = golden_dir("maillog");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 5, "golden log files in {}", dir.display());
    for input in inputs {
        let outcomes: Vec<_> = cases(&input)
            .into_iter()
            .map(|line| {
                // Each line on its own: no state carried from the one before.
                let outcome = parser().parse(&line);
                json!({ "line": line, "outcome": outcome })
            })
            .collect();
        assert!(!outcomes.is_empty(), "{}", input.display());
        check(&input.with_extension("jsonl"), &outcomes);
    }
}

fn stage_named(name: &str) -> Option<SmtpStage> {
    if name.is_empty() {
        return None;
    }
    let stage = SmtpStage::ALL.into_iter().find(|s| s.as_str() == name);
    assert!(stage.is_some(), "unknown stage {name:?}");
    stage
}

#[test]
fn bounce_replies_classify_as_their_golden_file_says() {
    let classifier = Classifier::builtin();
    let input = golden_dir("bounce").join("replies.tsv");
    let results: Vec<_> = cases(&input)
        .into_iter()
        .map(|case| {
            let fields: Vec<&str> = case.splitn(4, '\t').collect();
            let [dsn, code, stage, text] = fields[..] else {
                panic!(
                    "{}: not DSN, code, stage and text: {case:?}",
                    input.display()
                )
            };
            let text = text.replace("\\t", "\t");
            let failure = Failure {
                dsn: (!dsn.is_empty()).then_some(dsn),
                code: (!code.is_empty()).then(|| code.parse().expect("an SMTP code")),
                stage: stage_named(stage),
                text: &text,
            };
            json!({
                "dsn": failure.dsn,
                "code": failure.code,
                "stage": stage,
                "text": text,
                "category": classifier.classify(&failure),
            })
        })
        .collect();
    assert!(results.len() >= 80, "{} cases", results.len());
    check(&input.with_extension("jsonl"), &results);
}
