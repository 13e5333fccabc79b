//! `mailtrail policy show`, run as the binary with a configuration file.

use std::process::Command;

const CONFIG: &str = r#"
[maillog]
source = "off"
[policy.urgent]
retry_every = "5m"
warn_after = "15m"
give_up_after = "2h"
[[sender]]
match = "@news.example.com"
mode = "bulk"
[[sender]]
sasl_user = "crm"
mode = "urgent"
receipts = "dsn"
[[sender]]
match = "boss@news.example.com"
receipts = true
"#;

fn policy_show(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailtrail"))
        .arg("--config")
        .arg(&config)
        .args(["policy", "show"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "policy show {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&policy_show(&args)).expect("--json prints JSON")
}

#[test]
fn text_names_the_matching_rule_and_timings() {
    let out = policy_show(&["someone@news.example.com"]);
    assert_eq!(
        out,
        "sender:        someone@news.example.com\n\
         matched:       [[sender]] #0 (match = \"@news.example.com\")\n\
         mode:          bulk\n\
         retry every:   30m\n\
         warn after:    never\n\
         give up after: 1day\n\
         receipts:      off\n"
    );

    // The exact address beats the domain entry and the SASL user entry.
    let out = policy_show(&["<Boss@News.Example.com>", "--auth", "crm"]);
    assert!(out.contains("sasl user:     crm\n"), "{out}");
    assert!(
        out.contains("matched:       [[sender]] #2 (match = \"boss@news.example.com\")\n"),
        "{out}"
    );
    assert!(out.contains("mode:          normal\n"), "{out}");
    assert!(out.contains("warn after:    30m\n"), "{out}");
    assert!(out.contains("receipts:      on ("), "{out}");
}

#[test]
fn text_default_and_null_sender() {
    let out = policy_show(&["alice@example.org"]);
    assert!(
        out.contains("matched:       default (no [[sender]] entry)\n"),
        "{out}"
    );
    assert!(out.contains("mode:          normal\n"), "{out}");
    assert!(out.contains("retry every:   10m\n"), "{out}");
    assert!(out.contains("give up after: 4h\n"), "{out}");
    assert!(!out.contains("notices:"), "{out}");

    let out = policy_show(&["<>"]);
    assert!(out.starts_with("sender:        <>\n"), "{out}");
    assert!(out.contains("notices:       never"), "{out}");
}

#[test]
fn json_has_every_field() {
    let v = json(&["x@example.org", "--auth", "crm"]);
    assert_eq!(
        v,
        serde_json::json!({
            "sender": "x@example.org",
            "sasl_user": "crm",
            "rule": { "index": 1, "matcher": "sasl_user = \"crm\"" },
            "mode": "urgent",
            "retry_every": "5m",
            "warn_after": "15m",
            "give_up_after": "2h",
            "receipts": "dsn",
            "notices": true,
        })
    );

    let v = json(&["nobody@example.org"]);
    assert_eq!(v["rule"], serde_json::Value::Null);
    assert_eq!(v["sasl_user"], serde_json::Value::Null);
    assert_eq!(v["mode"], "normal");
    assert_eq!(v["warn_after"], "30m");

    let v = json(&["list@news.example.com"]);
    assert_eq!(v["mode"], "bulk");
    assert_eq!(v["warn_after"], serde_json::Value::Null);
    assert_eq!(v["give_up_after"], "1day");

    let v = json(&["MAILER-DAEMON@example.org"]);
    assert_eq!(v["notices"], false);
}
