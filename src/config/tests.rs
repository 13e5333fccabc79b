use super::*;
use std::path::Path;

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(Path::new("test.toml"), text)
}

/// Asserts that `text` fails on `line` naming `key`, and returns the message for further checks.
fn error_at(text: &str, line: usize, key: &str) -> String {
    let err = parse_str(text).expect_err("config should be rejected");
    let shown = err.to_string();
    assert_eq!(err.line(), Some(line), "wrong line in: {shown}");
    assert!(
        shown.starts_with(&format!("test.toml:{line}: ")),
        "no file:line in: {shown}"
    );
    assert!(shown.contains(key), "key `{key}` not named in: {shown}");
    shown
}

#[test]
fn defaults_are_the_promised_policies() {
    let c = Config::defaults();
    let normal = c.policy("normal").unwrap();
    assert_eq!(normal.retry_every, Duration::from_secs(600));
    assert_eq!(normal.warn_after, Some(Duration::from_secs(1800)));
    assert_eq!(normal.give_up_after, Duration::from_secs(4 * 3600));
    let bulk = c.policy("bulk").unwrap();
    assert_eq!(bulk.retry_every, Duration::from_secs(1800));
    assert_eq!(bulk.warn_after, None);
    assert_eq!(bulk.give_up_after, Duration::from_secs(24 * 3600));
    assert_eq!(c.milter.listen.to_string(), "inet:127.0.0.1:8899");
    assert_eq!(c.milter.on_error, OnError::Continue);
    assert_eq!(c.archive.retention, Duration::from_secs(7 * 86400));
    assert_eq!(c.archive.max_message_size, 50_000_000);
    assert!(
        !c.notify.enabled,
        "nothing is sent to senders until the operator says so"
    );
    // An empty file is the defaults too.
    let empty = parse_str("").unwrap();
    assert_eq!(empty.policies, c.policies);
    assert_eq!(empty.milter, c.milter);
}

#[test]
fn full_file_is_read() {
    let c = parse_str(
        r#"
[state]
dir = "/var/lib/mt"
[milter]
listen = "unix:/run/mailtrail/milter.sock"
on_error = "tempfail"
max_recipients = 50
[notify]
enabled = true
smtp = "127.0.0.1:10025"
language = "it"
tick = "10s"
[maillog]
source = "journald"
syslog_names = ["postfix-out"]
[archive]
retention = "3d"
max_message_size = "10MB"
exclude = ["ceo@example.com", "@secret.example.com"]
bcc = "archive@example.com"
[policy.normal]
warn_after = "1h"
[policy.newsletter]
retry_every = "1h"
warn_after = "off"
give_up_after = "2d"
[[sender]]
match = "@example.com"
mode = "bulk"
[[sender]]
match = "boss@example.com"
receipts = true
[[sender]]
sasl_user = "mailer"
mode = "newsletter"
receipts = "dsn"
"#,
    )
    .unwrap();
    assert_eq!(c.store.path, Path::new("/var/lib/mt/mailtrail.db"));
    assert_eq!(c.archive.dir, Path::new("/var/lib/mt/archive"));
    assert_eq!(
        c.milter.listen,
        ListenAddr::Unix("/run/mailtrail/milter.sock".into())
    );
    assert_eq!(c.milter.on_error, OnError::Tempfail);
    assert_eq!(c.milter.max_recipients, 50);
    assert_eq!(c.maillog.source, LogSource::Journald);
    assert!(c.notify.enabled);
    assert_eq!(
        (c.notify.smtp_host.as_str(), c.notify.smtp_port),
        ("127.0.0.1", 10025)
    );
    assert_eq!(c.notify.language, Language::It);
    assert_eq!(c.notify.tick, Duration::from_secs(10));
    assert_eq!(c.maillog.syslog_names, vec!["postfix-out"]);
    assert_eq!(c.archive.retention, Duration::from_secs(3 * 86400));
    assert_eq!(c.archive.max_message_size, 10_000_000);
    assert!(c.archive_excluded("CEO@example.com"));
    assert!(c.archive_excluded("x@secret.example.com"));
    assert!(!c.archive_excluded("x@example.com"));
    assert_eq!(c.archive.bcc.as_deref(), Some("archive@example.com"));
    // Overriding one field keeps the others of the built-in mode.
    let normal = c.policy("normal").unwrap();
    assert_eq!(normal.warn_after, Some(Duration::from_secs(3600)));
    assert_eq!(normal.give_up_after, Duration::from_secs(4 * 3600));
    let news = c.policy("newsletter").unwrap();
    assert_eq!(news.warn_after, None);
    assert_eq!(news.give_up_after, Duration::from_secs(2 * 86400));

    // Most specific wins: address over SASL user over domain.
    let p = c.sender_policy("boss@example.com", Some("mailer"));
    assert_eq!((p.mode.as_str(), p.receipts), ("normal", Receipts::On));
    let p = c.sender_policy("news@example.com", Some("mailer"));
    assert_eq!((p.mode.as_str(), p.receipts), ("newsletter", Receipts::Dsn));
    let p = c.sender_policy("news@EXAMPLE.com", None);
    assert_eq!((p.mode.as_str(), p.receipts), ("bulk", Receipts::Off));
    let p = c.sender_policy("someone@elsewhere.org", None);
    assert_eq!((p.mode.as_str(), p.receipts), ("normal", Receipts::Off));
}

#[test]
fn unknown_key_names_its_line() {
    error_at(
        "[milter]\nlisten = \"inet:127.0.0.1:1\"\nlisen = 3\n",
        3,
        "milter.lisen",
    );
    error_at(
        "[archive]\n\n\nretension = \"7d\"\n",
        4,
        "archive.retension",
    );
    error_at("[mliter]\n", 1, "mliter");
}

#[test]
fn bad_values_name_their_line_and_key() {
    error_at(
        "[archive]\nretention = \"seven days\"\n",
        2,
        "archive.retention",
    );
    error_at("[archive]\nretention = \"0s\"\n", 2, "archive.retention");
    error_at(
        "[archive]\nmax_message_size = \"lots\"\n",
        2,
        "archive.max_message_size",
    );
    error_at(
        "[archive]\nexclude = [\"ok@example.com\",\n  \"nodomain\"]\n",
        3,
        "archive.exclude",
    );
    error_at(
        "[archive]\nbcc = \"a@b.example\\r\\nBcc: x@y\"\n",
        2,
        "archive.bcc",
    );
    error_at("[milter]\nlisten = \"tcp:1.2.3.4\"\n", 2, "milter.listen");
    error_at("[milter]\n\non_error = \"panic\"\n", 3, "milter.on_error");
    error_at(
        "[milter]\nmax_recipients = -1\n",
        2,
        "milter.max_recipients",
    );
    error_at("[milter]\nmax_headers = \"many\"\n", 2, "max_headers");
    error_at(
        "[policy.normal]\nretry_every = \"soon\"\n",
        2,
        "policy.normal.retry_every",
    );
    error_at(
        "[policy.bulk]\nwarn_after = \"2d\"\n",
        1,
        "policy.bulk.warn_after",
    );
    error_at(
        "[[sender]]\nmatch = \"a@b.example\"\nmode = \"fast\"\n",
        3,
        "sender[0].mode",
    );
    error_at(
        "[[sender]]\nmatch = \"a@b.example\"\n[[sender]]\nmode = \"bulk\"\n",
        3,
        "sender[1].match",
    );
    error_at("[[sender]]\nmatch = \"a\"\n", 2, "sender[0].match");
    error_at(
        "[[sender]]\nsasl_user = \"u\"\nreceipts = \"yes\"\n",
        3,
        "sender[0].receipts",
    );
    error_at("[milter]\nlisten = \n", 2, "milter.listen");
    error_at(
        "[maillog]\nsource = \"file:relative.log\"\n",
        2,
        "maillog.source",
    );
    error_at(
        "[maillog]\npoll_interval = \"fast\"\n",
        2,
        "maillog.poll_interval",
    );
}

#[test]
fn listen_forms() {
    let parse_listen = |text: &str| text.parse::<ListenAddr>().ok();
    assert_eq!(
        parse_listen("inet:127.0.0.1:8899"),
        Some(ListenAddr::Inet(([127, 0, 0, 1], 8899).into()))
    );
    assert_eq!(
        parse_listen("inet:localhost:25"),
        Some(ListenAddr::Inet(([127, 0, 0, 1], 25).into()))
    );
    assert_eq!(
        parse_listen("inet6:[::1]:10025"),
        Some(ListenAddr::Inet("[::1]:10025".parse().unwrap()))
    );
    assert_eq!(
        parse_listen("unix:/run/m.sock"),
        Some(ListenAddr::Unix("/run/m.sock".into()))
    );
    assert_eq!(parse_listen("inet:127.0.0.1"), None);
    assert_eq!(parse_listen("inet:example.com:25"), None);
    assert_eq!(parse_listen("unix:"), None);
}

#[test]
fn reload_keeps_running_config_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    std::fs::write(&path, "[archive]\nretention = \"2d\"\n").unwrap();
    let source = Source::File(path.clone());
    let handle = ConfigHandle::new(source.clone(), source.load().unwrap());
    assert_eq!(
        handle.current().archive.retention,
        Duration::from_secs(2 * 86400)
    );

    std::fs::write(&path, "[archive]\nretention = \"forever\"\n").unwrap();
    assert!(handle.reload().is_err());
    assert_eq!(
        handle.current().archive.retention,
        Duration::from_secs(2 * 86400)
    );

    std::fs::write(
        &path,
        "[archive]\nretention = \"1d\"\n[milter]\nlisten = \"inet:127.0.0.1:1\"\n",
    )
    .unwrap();
    assert_eq!(handle.reload().unwrap(), vec!["milter.listen"]);
    assert_eq!(
        handle.current().archive.retention,
        Duration::from_secs(86400)
    );
}

#[test]
fn shipped_example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mailtrail.toml");
    let config = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.policies.contains_key("normal") && config.policies.contains_key("bulk"));
}

#[test]
fn mta_defaults_per_kind() {
    let postfix = Config::defaults().mta;
    assert_eq!(postfix.kind, MtaKind::Postfix);
    assert_eq!(postfix.retry, ["postqueue", "-i", "{queue_id}"]);
    assert_eq!(postfix.remove, ["postsuper", "-d", "{queue_id}"]);
    assert_eq!(postfix.config_dir, None);
    assert_eq!(postfix.timeout, Duration::from_secs(30));
    assert_eq!(parse_str("[mta]\n").unwrap().mta, postfix);

    let sendmail =
        parse_str("[mta]\nkind = \"sendmail\"\nconfig_dir = \"/etc/mail/sendmail.cf\"\n")
            .unwrap()
            .mta;
    assert_eq!(sendmail.kind, MtaKind::Sendmail);
    assert_eq!(sendmail.retry, ["sendmail", "-qI{queue_id}"]);
    assert_eq!(sendmail.remove[..2], ["sh", "-c"]);
    assert_eq!(sendmail.remove[4..], ["{queue_id}", "/var/spool/mqueue"]);
    assert_eq!(
        sendmail.config_dir.as_deref(),
        Some(Path::new("/etc/mail/sendmail.cf"))
    );
}

#[test]
fn mta_lists_override_the_kind_defaults() {
    let mta = parse_str(
        r#"
[mta]
kind = "sendmail"
retry = ["/usr/sbin/sendmail", "-qI{queue_id}", "-v"]
remove = ["/usr/local/sbin/mq-drop", "{queue_id}"]
timeout = "5s"
"#,
    )
    .unwrap()
    .mta;
    assert_eq!(mta.retry, ["/usr/sbin/sendmail", "-qI{queue_id}", "-v"]);
    assert_eq!(mta.remove, ["/usr/local/sbin/mq-drop", "{queue_id}"]);
    assert_eq!(mta.timeout, Duration::from_secs(5));
}

#[test]
fn mta_bad_values_name_their_line_and_key() {
    let shown = error_at("[mta]\nkind = \"exim\"\n", 2, "mta.kind");
    assert!(shown.contains("exim"), "{shown}");
    let shown = error_at(
        "[mta]\nkind = \"postfix\"\nretry = [\"postqueue\", \"-f\"]\n",
        3,
        "mta.retry",
    );
    assert!(shown.contains("{queue_id}"), "{shown}");
    error_at("[mta]\n\nremove = []\n", 3, "mta.remove");
    error_at("[mta]\nremove = [\"\", \"{queue_id}\"]\n", 2, "mta.remove");
    error_at("[mta]\nconfig_dir = \"etc/postfix\"\n", 2, "mta.config_dir");
    error_at("[mta]\ntimeout = \"soon\"\n", 2, "mta.timeout");
    error_at("[mta]\nflush = [\"x\"]\n", 2, "flush");
}

#[test]
fn explain_sender_names_the_deciding_rule() {
    let c = parse_str(
        r#"
[[sender]]
match = "@example.com"
mode = "bulk"
[[sender]]
sasl_user = "crm"
receipts = "dsn"
[[sender]]
match = "Boss@Example.com"
receipts = true
[[sender]]
match = "@example.com"
receipts = true
"#,
    )
    .unwrap();
    let explain = |from: &str, user: Option<&str>| {
        let e = c.explain_sender(from, user);
        // The explanation never disagrees with what messages get.
        assert_eq!(e.policy, c.sender_policy(from, user));
        (
            e.rule.map(|r| (r.index, r.matcher)),
            e.policy.mode,
            e.policy.receipts,
        )
    };
    // Address beats SASL user beats domain; of two equal domain entries the first wins.
    assert_eq!(
        explain("boss@example.com", Some("crm")),
        (
            Some((2, "match = \"boss@example.com\"".to_string())),
            "normal".to_string(),
            Receipts::On
        )
    );
    assert_eq!(
        explain("x@example.com", Some("crm")),
        (
            Some((1, "sasl_user = \"crm\"".to_string())),
            "normal".to_string(),
            Receipts::Dsn
        )
    );
    assert_eq!(
        explain("x@EXAMPLE.com", None),
        (
            Some((0, "match = \"@example.com\"".to_string())),
            "bulk".to_string(),
            Receipts::Off
        )
    );
    assert_eq!(
        explain("x@other.example", Some("someone")),
        (None, "normal".to_string(), Receipts::Off)
    );
}

const HASH: &str = "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$1JmYHZ/3cC2N1ZEZWJLa3+qE6trBMDXXqgaIRQPkH1A";

#[test]
fn web_defaults_and_users() {
    let c = Config::defaults();
    assert!(c.web.enabled);
    assert_eq!(c.web.listen.to_string(), "127.0.0.1:8025");
    assert!(!c.web.secure_cookie);
    assert_eq!(c.web.stats_refresh, Duration::from_secs(300));
    assert_eq!(c.web.tls, None);
    assert!(c.web.users.is_empty());

    let text = format!(
        "[web]\nlisten = \"0.0.0.0:8080\"\nsecure_cookie = true\nstats_refresh = \"90s\"\n\n\
         [[web.user]]\nname = \"admin\"\npassword_hash = \"{HASH}\"\n\n\
         [[web.user]]\nname = \"shop\"\npassword_hash = \"{HASH}\"\ndomains = [\"Shop.Example\", \"@b.example\"]\n"
    );
    let c = parse_str(&text).unwrap();
    assert_eq!(c.web.listen.to_string(), "0.0.0.0:8080");
    assert!(c.web.secure_cookie);
    assert_eq!(c.web.stats_refresh, Duration::from_secs(90));
    assert_eq!(c.web.users.len(), 2);
    assert!(c.web.users[0].domains.is_empty());
    assert_eq!(c.web.users[1].domains, ["shop.example", "b.example"]);
    assert!(c.web.users[1].may_see("x@shop.example"));
    assert!(!c.web.users[1].may_see("x@other.example"));
    assert!(!parse_str("[web]\nenabled = false\n").unwrap().web.enabled);
}

#[test]
fn web_errors_name_line_and_key() {
    error_at("[web]\nlisten = \"nowhere\"\n", 2, "web.listen");
    error_at("[web]\nstats_refresh = \"often\"\n", 2, "web.stats_refresh");
    let msg = error_at(
        "[web]\n\n[[web.user]]\nname = \"a\"\npassword_hash = \"plain\"\n",
        5,
        "web.user[0].password_hash",
    );
    assert!(msg.contains("hash-password"), "{msg}");
    error_at(
        "[[web.user]]\nname = \"a\"\npassword_hash = \"$argon2i$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$1JmYHZ/3cC2N1ZEZWJLa3+qE6trBMDXXqgaIRQPkH1A\"\n",
        3,
        "web.user[0].password_hash",
    );
    let empty = format!("[[web.user]]\nname = \"a\"\npassword_hash = \"{HASH}\"\ndomains = []\n");
    error_at(&empty, 4, "web.user[0].domains");
    let bad_domain =
        format!("[[web.user]]\nname = \"a\"\npassword_hash = \"{HASH}\"\ndomains = [\"a b\"]\n");
    error_at(&bad_domain, 4, "web.user[0].domains");
    let twice = format!(
        "[[web.user]]\nname = \"a\"\npassword_hash = \"{HASH}\"\n[[web.user]]\nname = \"a\"\npassword_hash = \"{HASH}\"\n"
    );
    error_at(&twice, 4, "web.user[1].name");
    error_at("[web]\nport = 1\n", 2, "web.port");
}

#[test]
fn report_section_is_read_and_checked() {
    assert!(!Config::defaults().report.enabled, "off until configured");
    let c = parse_str(
        "[report]\nenabled = true\nrecipients = [\"ops@example.com\", \"boss@example.com\"]\n\
         from = \"mailtrail@example.com\"\nweekday = \"friday\"\ntime = \"17:30\"\n\
         base_url = \"https://mail.example.com/mailtrail/\"\n",
    )
    .unwrap();
    assert!(c.report.enabled);
    assert_eq!(c.report.recipients, ["ops@example.com", "boss@example.com"]);
    assert_eq!(c.report.from.as_deref(), Some("mailtrail@example.com"));
    assert_eq!(c.report.weekday, time::Weekday::Friday);
    assert_eq!(c.report.at, time::Time::from_hms(17, 30, 0).unwrap());
    assert_eq!(
        c.report.base_url.as_deref(),
        Some("https://mail.example.com/mailtrail")
    );

    error_at("[report]\nenabled = true\n", 2, "report.recipients");
    error_at(
        "[report]\nrecipients = [\n  \"ops@example.com\",\n  \"a@b\\r\\nBcc: x@y\",\n]\n",
        4,
        "report.recipients",
    );
    error_at("[report]\n\nweekday = \"someday\"\n", 3, "report.weekday");
    error_at("[report]\ntime = \"25:00\"\n", 2, "report.time");
    error_at(
        "[report]\nbase_url = \"javascript:alert(1)\"\n",
        2,
        "report.base_url",
    );
    error_at("[report]\nfrom = \"not an address\"\n", 2, "report.from");
}

#[test]
fn web_tls_takes_cert_and_key_together() {
    let c = parse_str("[web]\ntls_cert = \"/etc/ssl/web.pem\"\ntls_key = \"/etc/ssl/web.key\"\n")
        .unwrap();
    assert_eq!(
        c.web.tls,
        Some(WebTls {
            cert: "/etc/ssl/web.pem".into(),
            key: "/etc/ssl/web.key".into(),
        })
    );
    let msg = error_at(
        "[web]\nlisten = \"127.0.0.1:8443\"\ntls_cert = \"/etc/ssl/web.pem\"\n",
        3,
        "web.tls_key",
    );
    assert!(msg.contains("missing"), "{msg}");
    error_at(
        "[web]\n\ntls_key = \"/etc/ssl/web.key\"\n",
        3,
        "web.tls_cert",
    );
    error_at(
        "[web]\ntls_cert = \"\"\ntls_key = \"/etc/ssl/web.key\"\n",
        2,
        "web.tls_cert",
    );
}

/// A file that is not UTF-8 gets the line and key of its first bad byte, like any other error.
#[test]
fn a_file_that_is_not_utf8_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.toml");
    std::fs::write(
        &path,
        b"[milter]\nmax_headers = 10\n\n[report]\nsubject = \"Wochen\xfcbersicht\"\n",
    )
    .unwrap();
    let e = super::load(&path).unwrap_err();
    assert_eq!(e.line(), Some(5));
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5: report.subject: the file is not UTF-8 text (byte 0xfc)",
            path.display()
        )
    );
}

/// A pathological line (200 KB of nesting, a huge value) yields an error of one short line.
#[test]
fn errors_quote_at_most_a_short_piece_of_the_file() {
    for text in [
        format!("x = {}", "[".repeat(200_000)),
        format!("[milter]\nlisten = \"{}\"\n", "a".repeat(200_000)),
        format!("[{}]\n", "a".repeat(200_000)),
        format!("{} = 1\n", "k".repeat(200_000)),
    ] {
        let e = parse_str(&text).unwrap_err().to_string();
        assert!(e.len() < 500, "{} bytes: {}…", e.len(), &e[..200]);
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn a_fleet_section_is_read_with_its_defaults() {
    let c = parse_str(
        "[web]\nlisten = \"127.0.0.1:9025\"\n\n[fleet]\ndatabase = \"postgresql://mailtrail:s3cret@db.example:6432/fleet\"\nhost = \"Relay1\"\ntoken = \"0123456789abcdef0123\"\n",
    )
    .unwrap();
    let fleet = c.fleet.expect("[fleet] read");
    assert_eq!(fleet.host.0, "relay1", "host names are lower case");
    assert_eq!(
        fleet.url, "http://127.0.0.1:9025",
        "default: this host's pages"
    );
    assert_eq!(
        fleet.database.to_string(),
        "db.example:6432/fleet as mailtrail"
    );
    let shown = format!("{fleet:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("0123456789abcdef0123"),
        "{shown}"
    );
    assert_eq!(parse_str("").unwrap().fleet, None);
    let explicit = parse_str(
        "[fleet]\ndatabase = \"host=db.example dbname=fleet user=mt\"\nurl = \"https://relay1.example:8025/\"\n",
    )
    .unwrap()
    .fleet
    .unwrap();
    assert_eq!(explicit.url, "https://relay1.example:8025");
    assert!(
        !explicit.host.0.is_empty(),
        "the system's host name by default"
    );
}

#[test]
fn bad_fleet_values_name_their_line_and_key() {
    let e = error_at(
        "[fleet]\ndatabase = \"postgresql://db.example:notaport/x\"\n",
        2,
        "fleet.database",
    );
    assert!(e.contains("not a PostgreSQL connection URL"), "{e}");
    let e = error_at(
        "[fleet]\ndatabase = \"postgresql://db.example/x\"\n\nhost = \"relay_1.example\"\n",
        4,
        "fleet.host",
    );
    assert!(e.contains("one DNS label"), "{e}");
    error_at(
        "[fleet]\ndatabase = \"postgresql://db/x\"\nhost = \"-relay\"\n",
        3,
        "fleet.host",
    );
    let e = error_at(
        "[fleet]\ndatabase = \"postgresql://db/x\"\ntoken = \"short\"\n",
        3,
        "fleet.token",
    );
    assert!(!e.contains("short"), "a token is never repeated: {e}");
    error_at(
        "[fleet]\ndatabase = \"postgresql://db/x\"\nurl = \"ftp://relay1\"\n",
        3,
        "fleet.url",
    );
    let e = error_at("[fleet]\nhost = \"relay1\"\n", 1, "fleet.database");
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn suppression_settings_are_checked_with_file_line_and_key() {
    let c = parse_str(
        "[suppression]\nmode = \"refuse\"\ncategories = [\"invalid-mailbox\"]\n\
         full_mailbox_after = 0\nkeep = \"30d\"\nmodes = [\"bulk\"]\n",
    )
    .unwrap();
    let s = &c.suppression;
    assert_eq!(s.mode, crate::suppression::Mode::Refuse);
    assert_eq!(s.categories, [crate::bounce::Category::InvalidMailbox]);
    assert_eq!(
        (s.full_mailbox_after, s.keep),
        (0, Duration::from_secs(30 * 86400))
    );
    assert!(s.refuses_for("bulk") && !s.refuses_for("normal"));
    assert!(
        !SuppressionConfig::default().refuses_for("normal"),
        "off by default"
    );

    let e = error_at("[suppression]\nmode = \"block\"\n", 2, "suppression.mode");
    assert!(e.contains("\"refuse\""), "{e}");
    error_at(
        "[suppression]\ncategories = [\"invalid-mailbox\",\n  \"no-such\"]\n",
        3,
        "suppression.categories",
    );
    error_at(
        "[suppression]\nfull_mailbox_after = -1\n",
        2,
        "suppression.full_mailbox_after",
    );
    error_at("[suppression]\nkeep = \"forever\"\n", 2, "suppression.keep");
    let e = error_at(
        "[suppression]\nmodes = [\"urgent\"]\n",
        2,
        "suppression.modes",
    );
    assert!(e.contains("bulk, normal"), "{e}");
}
