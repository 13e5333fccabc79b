//! A fleet end to end: a private PostgreSQL, two private postfix relays each with its own
//! `mailtrail run` shipping to it, and one `mailtrail dashboard` over both. Needs root, Debian's
//! postfix and postgresql.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::mailtrail::{BIN, Mailtrail};
use support::message::message_id;
use support::postfix::{Postfix, PostfixConfig};
use support::postgres::Postgres;
use support::smtp_server::ScriptedServer;
use support::submit;
use support::util::{free_port, port_open, wait_for, wait_until};

const T: Duration = Duration::from_secs(60);
const TOKEN: &str = "fleet-token-0123456789abcdef";

/// A relay: `mailtrail run` with its pages on a port of its own and `[fleet]`.
fn relay(pg: &Postgres, host: &str) -> (Mailtrail, u16) {
    let web = free_port();
    let mt = Mailtrail::configure_with_web(&format!(
        "[web]\nlisten = \"127.0.0.1:{web}\"\n\n[fleet]\ndatabase = \"{}\"\nhost = \"{host}\"\ntoken = \"{TOKEN}\"\n",
        pg.url()
    ));
    (mt, web)
}

/// `mailtrail dashboard` with an unscoped and a domain-scoped user; killed when dropped.
struct Dashboard {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    log: std::path::PathBuf,
}

impl Dashboard {
    /// `extra`: more of the configuration file (the weekly summary's tables).
    fn start(pg: &Postgres, extra: &str) -> Dashboard {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let admin = mailtrail::config::hash_password("admin-password").unwrap();
        let scoped = mailtrail::config::hash_password("scoped-password").unwrap();
        let config = dir.path().join("dashboard.toml");
        std::fs::write(
            &config,
            format!(
                "[web]\nlisten = \"127.0.0.1:{port}\"\n\n\
                 [[web.user]]\nname = \"admin\"\npassword_hash = \"{admin}\"\n\n\
                 [[web.user]]\nname = \"a-only\"\npassword_hash = \"{scoped}\"\ndomains = [\"a.example\"]\n\n\
                 [fleet]\ndatabase = \"{}\"\ntoken = \"{TOKEN}\"\n\n{extra}",
                pg.url()
            ),
        )
        .unwrap();
        let log = dir.path().join("dashboard.log");
        let child = Command::new(BIN)
            .args(["dashboard", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .unwrap();
        let dashboard = Dashboard {
            child,
            port,
            _dir: dir,
            log,
        };
        wait_until(
            T,
            "the dashboard to listen",
            || port_open(port),
            || dashboard.log(),
        );
        dashboard
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` with HTTP basic credentials; the status and the body.
    fn get(&self, user: &str, password: &str, path: &str) -> (u16, String) {
        http_get(self.port, user, password, path)
    }

    fn json(&self, user: &str, password: &str, path: &str) -> serde_json::Value {
        let (status, body) = self.get(user, password, path);
        assert_eq!(status, 200, "{path}: {body}\n{}", self.log());
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            match i <= chunk.len() {
                true => out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char),
                false => out.push('='),
            }
        }
    }
    out
}

/// An HTTP/1.0 GET (no chunked answer to decode), read to the end.
fn http_get(port: u16, user: &str, password: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(T)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {}\r\n\r\n",
        base64(format!("{user}:{password}").as_bytes())
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// The first `n` events of the live page's stream from `cursor`: (id, row) each.
fn live_events(
    port: u16,
    user: &str,
    password: &str,
    cursor: &str,
    n: usize,
) -> Vec<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    write!(
        stream,
        "GET /live/events?after={cursor} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {}\r\n\r\n",
        base64(format!("{user}:{password}").as_bytes())
    )
    .unwrap();
    let deadline = std::time::Instant::now() + T;
    let mut answer = Vec::new();
    let mut buf = [0; 8192];
    loop {
        let text = String::from_utf8_lossy(&answer).into_owned();
        let events: Vec<(String, String)> = text
            .split("\n\n")
            .filter_map(|event| {
                let field = |name: &str| {
                    event
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                };
                Some((field("id:")?, field("data:")?))
            })
            .collect();
        if events.len() >= n || std::time::Instant::now() > deadline {
            return events;
        }
        match stream.read(&mut buf) {
            Ok(0) => return events,
            Ok(read) => answer.extend_from_slice(&buf[..read]),
            Err(_) => {} // nothing yet
        }
    }
}

/// One message through `pf` from `from`; returns its Message-ID.
async fn send(pf: &Postfix, server: &ScriptedServer, from: &str, tag: &str) -> String {
    let id = message_id(tag);
    let body = format!("body of {tag}\r\n");
    submit::send(
        pf.smtpd_port(),
        submit::simple_message(from, &["someone@remote.test.example"], tag, &id, &body),
    )
    .await;
    server.wait_for_message_id(&id, T);
    id
}

/// The relay's own list of the week, as `mailtrail status --week --json` prints it.
fn own_week(mt: &Mailtrail) -> serde_json::Value {
    serde_json::from_str(&mt.command(&["status", "--week", "--json"])).unwrap()
}

/// Waits until every message of the relay's week is delivered and shipped.
fn wait_settled(mt: &Mailtrail, messages: usize) {
    wait_for(
        T,
        "every message sent and shipped",
        || {
            let week = own_week(mt);
            let list = week["messages"].as_array().unwrap();
            let sent = list.len() == messages && list.iter().all(|m| m["status"] == "sent");
            let shipped = mt.counters().get("fleet_lag_records") == Some(&0);
            (sent && shipped).then_some(())
        },
        || format!("{}\n{:?}\n{}", own_week(mt), mt.counters(), mt.log()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_dashboard() {
    let pg = Postgres::start();
    let (mut relay1, web1) = relay(&pg, "relay1");
    let (mut relay2, web2) = relay(&pg, "relay2");
    relay1.start();
    relay2.start();
    let server1 = ScriptedServer::start();
    let server2 = ScriptedServer::start();
    let pf1 = Postfix::start(PostfixConfig::for_mailtrail(server1.port(), &relay1));
    let pf2 = Postfix::start(PostfixConfig::for_mailtrail(server2.port(), &relay2));

    let a1 = send(&pf1, &server1, "alice@a.example", "a-via-relay1").await;
    let b1 = send(&pf1, &server1, "bob@b.example", "b-via-relay1").await;
    let a2 = send(&pf2, &server2, "anna@a.example", "a-via-relay2").await;
    let b2 = send(&pf2, &server2, "bert@b.example", "b-via-relay2").await;
    let c2 = send(&pf2, &server2, "cleo@b.example", "c-via-relay2").await;
    pf1.wait_queue_empty(T);
    pf2.wait_queue_empty(T);
    wait_settled(&relay1, 2);
    wait_settled(&relay2, 3);
    // Each relay's statistics refreshed once every delivery is recorded (the daemon does it
    // every 5 minutes), and shipped.
    for relay in [&relay1, &relay2] {
        relay.command(&["stats", "--period", "this-month"]);
    }
    wait_settled(&relay1, 2);
    wait_settled(&relay2, 3);

    // The fleet's weekly summary, due today at midnight: sent by the dashboard once.
    let reports = ScriptedServer::start();
    let today = time::OffsetDateTime::now_utc()
        .weekday()
        .to_string()
        .to_lowercase();
    let report_config = format!(
        "[notify]\nsmtp = \"127.0.0.1:{}\"\nreporting_mta = \"fleet.example\"\n\n\
         [report]\nenabled = true\nweekday = \"{today}\"\ntime = \"00:00\"\nrecipients = [\"ops@example.com\"]\n",
        reports.port()
    );
    let dashboard = Dashboard::start(&pg, &report_config);
    // A second dashboard on the same database: the summary still goes once.
    let second = Dashboard::start(&pg, &report_config);
    let admin = |path: &str| dashboard.json("admin", "admin-password", path);

    // Every message, each with the host it went through.
    let week = admin("/week.json");
    let listed: Vec<(String, String)> = week["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["subject"].as_str().unwrap().to_string(),
                m["host"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(
        listed_sorted,
        [
            ("a-via-relay1", "relay1"),
            ("a-via-relay2", "relay2"),
            ("b-via-relay1", "relay1"),
            ("b-via-relay2", "relay2"),
            ("c-via-relay2", "relay2"),
        ]
        .map(|(s, h)| (s.to_string(), h.to_string()))
    );
    assert_eq!(week["total"], 5);
    let relay2_only = admin("/week.json?host=relay2");
    assert_eq!(relay2_only["total"], 3, "{relay2_only}");
    let (_, csv) = dashboard.get("admin", "admin-password", "/week.csv");
    assert!(csv.starts_with("host,id,"), "{csv}");
    assert_eq!(csv.matches("\r\nrelay1,").count(), 2, "{csv}");

    // The live page of the fleet: today's messages of every host, with a Host column; its event
    // stream resumes from each host's own position.
    let live = admin("/live.json");
    assert_eq!(live["messages"].as_array().unwrap().len(), 5, "{live}");
    let (status, html) = dashboard.get("admin", "admin-password", "/live");
    assert_eq!(status, 200);
    assert!(html.contains("<th>Host</th>"), "{html}");
    let id_of = |subject: &str| {
        week["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["subject"] == subject)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let relay1_last = id_of("a-via-relay1").max(id_of("b-via-relay1"));
    let cursor = format!("relay1:{relay1_last},relay2:{}", id_of("a-via-relay2"));
    let events = live_events(dashboard.port, "admin", "admin-password", &cursor, 2);
    let mut newer: Vec<&str> = events.iter().map(|(_, row)| row.as_str()).collect();
    newer.sort();
    assert!(newer[0].contains("b-via-relay2"), "{events:?}");
    assert!(newer[1].contains("c-via-relay2"), "{events:?}");
    assert!(
        events
            .iter()
            .all(|(id, _)| id.starts_with(&format!("relay1:{relay1_last},relay2:"))),
        "{events:?}"
    );
    let scoped_live = dashboard.json("a-only", "scoped-password", "/live.json");
    assert_eq!(scoped_live["messages"].as_array().unwrap().len(), 2);

    // The raw log: every host's lines, each with its host; a scoped user's own messages' only.
    let raw = admin("/raw.json?days=1&host=relay2");
    let lines = raw["lines"].as_array().unwrap();
    assert!(!lines.is_empty(), "{raw}");
    assert!(lines.iter().all(|l| l["host"] == "relay2"), "{raw}");
    let relay2_qid = pf2.wait_queue_id(&b2, T);
    assert!(
        lines.iter().any(|l| l["queue_id"] == relay2_qid.as_str()),
        "{relay2_qid} in {raw}"
    );
    let scoped_raw = dashboard.json("a-only", "scoped-password", "/raw.json?days=1");
    let scoped_lines = scoped_raw["lines"].as_array().unwrap();
    assert!(!scoped_lines.is_empty());
    assert!(
        scoped_lines
            .iter()
            .all(|l| !l["line"].as_str().unwrap().contains("@b.example")),
        "{scoped_raw}"
    );

    // The fleet's totals are the sum of each host's own.
    let hosts = admin("/hosts.json");
    let hosts = hosts.as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    for (host, (relay, web)) in hosts.iter().zip([(&relay1, web1), (&relay2, web2)]) {
        let own = own_week(relay);
        let own_list = own["messages"].as_array().unwrap();
        assert_eq!(host["messages"], own["total"], "{host}");
        let own_sent = own_list.iter().filter(|m| m["status"] == "sent").count();
        assert_eq!(host["sent"], own_sent, "{host}");
        assert_eq!(host["url"], format!("http://127.0.0.1:{web}"));
    }
    let sum: u64 = hosts.iter().map(|h| h["messages"].as_u64().unwrap()).sum();
    assert_eq!(sum, 5);

    // Monitoring: each host's last batch, for an alert on a host that stopped shipping.
    let (status, metrics) = dashboard.get("admin", "admin-password", "/metrics");
    assert_eq!(status, 200);
    for host in ["relay1", "relay2"] {
        let age = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "mailtrail_fleet_host_last_batch_age_seconds{{host=\"{host}\"}} "
                ))
            })
            .unwrap_or_else(|| panic!("{host} in {metrics}"));
        assert!(age.parse::<u64>().unwrap() < 60, "{metrics}");
    }
    assert_eq!(
        dashboard.get("a-only", "scoped-password", "/metrics").0,
        403
    );

    // A domain-scoped user: their domain only, from both hosts.
    let scoped = dashboard.json("a-only", "scoped-password", "/week.json");
    let mut subjects: Vec<&str> = scoped["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["a-via-relay1", "a-via-relay2"]);
    let b_row = week["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["subject"] == "b-via-relay1")
        .unwrap()
        .clone();
    let b_page = format!("/message/{}?host=relay1", b_row["id"]);
    assert_eq!(dashboard.get("a-only", "scoped-password", &b_page).0, 404);

    // The archived copy of a message of each host opens, fetched from its host.
    let page_of = |subject: &str| {
        let row = week["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["subject"] == subject)
            .unwrap();
        format!(
            "/message/{}?host={}",
            row["id"],
            row["host"].as_str().unwrap()
        )
    };
    for subject in ["a-via-relay1", "a-via-relay2"] {
        let (status, html) = dashboard.get("admin", "admin-password", &page_of(subject));
        assert_eq!(status, 200, "{html}");
        assert!(
            html.contains(&format!("body of {subject}")),
            "{html}\n{}",
            dashboard.log()
        );
    }
    let (status, eml) = dashboard.get(
        "admin",
        "admin-password",
        &page_of("b-via-relay2").replace("?host", "/eml?host"),
    );
    assert_eq!(status, 200);
    assert!(eml.contains(&format!("Message-ID: <{b2}>")), "{eml}");

    // A host's copy without the fleet token: refused.
    let copy = format!("/fleet/copy/{}", b_row["id"]);
    let (status, _) = http_get(web1, "admin", "admin-password", &copy);
    assert_eq!(status, 401);

    // One host down: its copies say so, everything else works.
    relay2.stop();
    let (status, html) = dashboard.get("admin", "admin-password", &page_of("c-via-relay2"));
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("The copy is on relay2, which does not answer."),
        "{html}"
    );
    assert!(
        html.contains("cleo@b.example"),
        "the envelope is shown: {html}"
    );
    let (status, html) = dashboard.get("admin", "admin-password", &page_of("a-via-relay1"));
    assert_eq!(status, 200);
    assert!(html.contains("body of a-via-relay1"));
    assert_eq!(admin("/week.json")["total"], 5);
    let (status, _) = dashboard.get("admin", "admin-password", "/");
    assert_eq!(status, 200);

    // Statistics: each host's own, summed on the dashboard, with a row per host.
    let own_stats = |mt: &Mailtrail| -> serde_json::Value {
        serde_json::from_str(&mt.command(&["stats", "--period", "this-month", "--json"])).unwrap()
    };
    let stats1 = own_stats(&relay1);
    wait_settled(&relay1, 2);
    let fleet_stats = admin("/stats.json?period=this-month");
    let relay2_messages = 3;
    let summary = &fleet_stats["summary"];
    let own1 = &stats1["summary"];
    assert_eq!(
        summary["messages"].as_u64().unwrap(),
        own1["messages"].as_u64().unwrap() + relay2_messages,
        "{fleet_stats}"
    );
    let by_host = fleet_stats["by_mta_host"].as_array().unwrap();
    assert_eq!(by_host.len(), 2, "{fleet_stats}");
    assert_eq!(by_host[0]["key"], "relay1");
    // The counters of a row are the summary's, without its rates.
    let counters = |v: &serde_json::Value| -> Vec<(String, serde_json::Value)> {
        let mut pairs: Vec<_> = v
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, v)| v.is_u64() && !k.starts_with("delay"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs
    };
    assert!(counters(&by_host[0]).len() >= 8, "{}", by_host[0]);
    assert_eq!(counters(&by_host[0]), counters(own1));
    assert_eq!(by_host[1]["messages"], relay2_messages);
    let only1 = admin("/stats.json?period=this-month&host=relay1");
    assert_eq!(counters(&only1["summary"]), counters(own1));
    let (status, html) = dashboard.get("admin", "admin-password", "/stats?period=this-month");
    assert_eq!(status, 200);
    assert!(
        html.contains("By MTA host") && html.contains("relay2"),
        "{html}"
    );

    // The weekly summary of the fleet went once, and a restarted dashboard does not repeat it.
    let sent = reports.wait_for_messages(1, T);
    let subject = sent[0].header("Subject").unwrap_or_default();
    assert!(
        subject.contains("weekly summary for fleet.example"),
        "{subject}"
    );
    assert_eq!(sent[0].rcpt_to, ["ops@example.com"]);
    drop(second);
    drop(dashboard);
    let dashboard = Dashboard::start(&pg, &report_config);
    let (status, _) = dashboard.get("admin", "admin-password", "/");
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(reports.messages().len(), 1, "one summary a week");
    assert_eq!(
        pg.query("SELECT count(*) FROM report WHERE sent_at IS NOT NULL")
            .trim(),
        "1"
    );

    // The command line reads the fleet too.
    let fleet_status =
        relay1.command(&["status", "--week", "--fleet", "--host", "relay2", "--json"]);
    let fleet_status: serde_json::Value = serde_json::from_str(&fleet_status).unwrap();
    assert_eq!(fleet_status["total"], 3, "{fleet_status}");
    let fleet_stats_cli: serde_json::Value = serde_json::from_str(&relay1.command(&[
        "stats",
        "--fleet",
        "--period",
        "this-month",
        "--json",
    ]))
    .unwrap();
    assert_eq!(fleet_stats_cli["by_mta_host"].as_array().unwrap().len(), 2);
    assert_eq!(fleet_stats_cli["summary"]["messages"], summary["messages"]);
    let _ = (a1, b1, a2, c2);
}
