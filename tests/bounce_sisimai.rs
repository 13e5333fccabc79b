//! Agreement of the bounce classifier with sisimai's reasons on real reply texts.
//!
//! Data: ../shared/data/bounces/sisimai_bounces.tsv (BSD-2-Clause, see ../shared/data/SOURCES.md).
//! Of its 2,045 rows, 771 are full reply texts: those taken from real bounce mails
//! (`sisimai-email:`), from the providers' documented replies (`sisimai-rhost-doc:`) and from
//! sisimai's test examples (`sisimai-test-example:`). The other sources are pattern fragments,
//! vendor codes and table keys, which are not replies a log would show.
//!
//! Run with `cargo test --test bounce_sisimai -- --nocapture` to see the table.

use std::collections::BTreeMap;

use mailtrail::bounce::{Category, Classifier, Failure};

const FULL_REPLY_SOURCES: [&str; 3] =
    ["sisimai-email", "sisimai-rhost-doc", "sisimai-test-example"];
const FULL_REPLY_ROWS: usize = 771;
const THRESHOLD: f64 = 0.90;

/// The reasons whose meaning maps onto our categories without judgement (issue text).
const UNAMBIGUOUS: [&str; 11] = [
    "userunknown",
    "hostunknown",
    "mailboxfull",
    "suspend",
    "norelaying",
    "expired",
    "systemerror",
    "badreputation",
    "blocked",
    "toomanyconn",
    "networkerror",
];

/// sisimai reason → (our category, other categories that are right for some of its texts).
/// Mirrors the table at the top of src/bounce/rules.toml.
fn expected(reason: &str) -> Option<(Category, &'static [Category])> {
    use Category::*;
    Some(match reason {
        "userunknown" => (InvalidMailbox, &[]),
        "hostunknown" | "notaccept" => (InvalidDomain, &[]),
        "suspend" | "hasmoved" => (InactiveMailbox, &[]),
        "mailboxfull" => (FullMailbox, &[]),
        "authfailure" => (DmarcIssues, &[]),
        "badreputation" | "spamdetected" | "speeding" | "ratelimited" | "toomanyconn" => {
            (ReputationIssues, &[])
        }
        "blocked" => (BlocklistingIssues, &[ReputationIssues, PolicyRelated]),
        "norelaying" => (RelayingIssues, &[]),
        "networkerror" => (ConnectionError, &[RoutingIssues, InvalidDomain]),
        "systemerror" => (RecipientServerError, &[RoutingIssues]),
        "systemfull" | "mailererror" => (RecipientServerError, &[]),
        "expired" => (MessageExpired, &[ConnectionError]),
        "failedstarttls" => (ConnectionError, &[]),
        "policyviolation" | "filtered" | "rejected" | "securityerror" | "requireptr"
        | "virusdetected" | "contenterror" | "mesgtoobig" | "exceedlimit" | "emailtoolarge"
        | "notcompliantrfc" => (PolicyRelated, &[]),
        "suppressed" => (SuppressionList, &[]),
        "syntaxerror" | "vacation" | "feedback" | "onhold" | "undefined" | "delivered" => {
            (Other, &[])
        }
        _ => return None,
    })
}

struct Row {
    dsn: String,
    code: Option<u16>,
    text: String,
    reason: String,
}

fn load_full_rows() -> Vec<Row> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/bounces/sisimai_bounces.tsv"
    );
    let data = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = data.lines();
    assert_eq!(
        lines.next(),
        Some("source\tdsn_status\tsmtp_code\tdiagnostic_text\tsisimai_reason"),
        "unexpected header in {path}"
    );
    let mut rows = Vec::new();
    let mut total = 0;
    for (n, line) in lines.enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "{path}:{}: {} columns", n + 2, cols.len());
        total += 1;
        let kind = cols[0].split(':').next().unwrap_or("");
        if !FULL_REPLY_SOURCES.contains(&kind) {
            continue;
        }
        rows.push(Row {
            dsn: cols[1].to_string(),
            code: cols[2].parse().ok(),
            text: cols[3].to_string(),
            reason: cols[4].to_string(),
        });
    }
    assert_eq!(total, 2045, "row count of {path} changed");
    rows
}

#[derive(Default)]
struct Tally {
    rows: usize,
    strict: usize,
    accepted: usize,
    text_only: usize,
    got: BTreeMap<Category, usize>,
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

#[test]
fn agreement_with_sisimai_on_full_replies() {
    let rows = load_full_rows();
    assert_eq!(rows.len(), FULL_REPLY_ROWS);
    let classifier = Classifier::builtin();

    let mut by_reason: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut by_category: BTreeMap<Category, Tally> = BTreeMap::new();
    let mut misses = Vec::new();
    for row in &rows {
        let (want, also) = expected(&row.reason)
            .unwrap_or_else(|| panic!("no mapping for sisimai reason {:?}", row.reason));
        let failure = Failure {
            dsn: Some(row.dsn.as_str()).filter(|d| !d.is_empty()),
            code: row.code,
            text: &row.text,
            stage: None,
        };
        let got = classifier.classify(&failure);
        // The same text without the separate status columns, for information.
        let got_text_only = classifier.classify(&Failure {
            text: &row.text,
            ..Failure::default()
        });
        let ok = |c: Category| c == want || also.contains(&c);
        for t in [
            by_reason.entry(row.reason.as_str()).or_default(),
            by_category.entry(want).or_default(),
        ] {
            t.rows += 1;
            t.strict += usize::from(got == want);
            t.accepted += usize::from(ok(got));
            t.text_only += usize::from(ok(got_text_only));
            *t.got.entry(got).or_default() += 1;
        }
        if !ok(got) && UNAMBIGUOUS.contains(&row.reason.as_str()) {
            misses.push((
                row.reason.as_str(),
                got,
                row.dsn.as_str(),
                row.code,
                &row.text,
            ));
        }
    }

    println!("\nAgreement with sisimai on {} full reply rows", rows.len());
    println!(
        "(strict = our main category for the reason; accepted = main or a listed alternative;"
    );
    println!(" text only = accepted, classifying the reply text without the dsn/code columns)\n");
    println!(
        "{:<16} {:>4} {:>8} {:>9} {:>10}  our categories",
        "sisimai reason", "rows", "strict", "accepted", "text only"
    );
    let line = |name: &str, t: &Tally, mark: &str| {
        let got: Vec<String> = t.got.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!(
            "{:<16} {:>4} {:>7.1}% {:>8.1}% {:>9.1}%  {}{}",
            name,
            t.rows,
            100.0 * pct(t.strict, t.rows),
            100.0 * pct(t.accepted, t.rows),
            100.0 * pct(t.text_only, t.rows),
            got.join(", "),
            mark
        )
    };
    let mut together = Tally::default();
    for (reason, t) in &by_reason {
        let checked = UNAMBIGUOUS.contains(reason);
        line(reason, t, if checked { "  [checked]" } else { "" });
        if checked {
            together.rows += t.rows;
            together.strict += t.strict;
            together.accepted += t.accepted;
            together.text_only += t.text_only;
        }
    }
    println!();
    line("CHECKED TOTAL", &together, "");

    println!(
        "\n{:<24} {:>4} {:>8} {:>9}",
        "expected category", "rows", "strict", "accepted"
    );
    for (cat, t) in &by_category {
        println!(
            "{:<24} {:>4} {:>7.1}% {:>8.1}%",
            cat.as_str(),
            t.rows,
            100.0 * pct(t.strict, t.rows),
            100.0 * pct(t.accepted, t.rows)
        );
    }

    println!("\nDisagreements on the checked reasons:");
    for (reason, got, dsn, code, text) in &misses {
        let short: String = text.chars().take(150).collect();
        println!("  {reason:<13} -> {got:<22} [{dsn} {code:?}] {short}");
    }

    let mut failures = Vec::new();
    for reason in UNAMBIGUOUS {
        let t = by_reason
            .get(reason)
            .unwrap_or_else(|| panic!("no rows for {reason}"));
        if pct(t.accepted, t.rows) < THRESHOLD {
            failures.push(format!(
                "{reason}: {}/{} = {:.1}%",
                t.accepted,
                t.rows,
                100.0 * pct(t.accepted, t.rows)
            ));
        }
    }
    if pct(together.accepted, together.rows) < THRESHOLD {
        failures.push(format!(
            "all checked reasons: {}/{}",
            together.accepted, together.rows
        ));
    }
    assert!(
        failures.is_empty(),
        "agreement below {:.0}%: {}",
        THRESHOLD * 100.0,
        failures.join("; ")
    );
}
