//! Route tests through `tower::ServiceExt::oneshot` against a real store in a temp dir, filled
//! through the store's public write APIs.

use super::*;
use crate::model::notice::NoticeKind;
use crate::{
    config::{Config, Receipts, Source, WebUser},
    model::envelope::{ArchiveState, Envelope, Recipient},
    store::AttemptRow,
};
use argon2::{Algorithm, Params, PasswordHasher, Version, password_hash::SaltString};
use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{HeaderMap, Request, StatusCode},
};
use http_body_util::BodyExt;
use std::{net::SocketAddr, time::Duration};
use tower::ServiceExt;

const XSS: &str = "<script>alert(1)</script>";
const XSS_ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";
/// 2026-11-23 12:00:00 UTC: "today" starts 12 hours earlier.
const NOW: i64 = 1_795_435_200;

/// A fast argon2id hash (tiny memory cost): verification reads the parameters from the hash.
fn quick_hash(password: &str) -> String {
    let params = Params::new(64, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    argon
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

struct Ids {
    a: i64,
    b: i64,
    xss: i64,
    old: i64,
    formula: i64,
}

struct Fixture {
    dir: tempfile::TempDir,
    app: Router,
    ids: Ids,
    /// What the pages say is failing.
    health: Arc<crate::model::health::Health>,
}

fn envelope(qid: &str, from: &str, to: &str, subject: &str, at: i64) -> Envelope {
    Envelope {
        queue_id: Some(qid.into()),
        arrived_at: OffsetDateTime::from_unix_timestamp(at).unwrap(),
        mta_host: Some("mx.test".into()),
        client_name: Some("client.test".into()),
        client_addr: Some("192.0.2.1".into()),
        helo: Some("client.test".into()),
        sasl_user: None,
        mail_from: from.into(),
        mail_args: Vec::new(),
        recipients: vec![Recipient {
            address: to.into(),
            args: Vec::new(),
        }],
        recipients_dropped: 0,
        size: 100,
        message_id: Some(format!("<{qid}@test>")),
        subject: Some(subject.into()),
        archive_name: None,
        archive_state: ArchiveState::Disabled,
        mode: "normal".into(),
        receipts: Receipts::Off,
        is_notice: false,
    }
}

fn archived(archive: &Arc<Archive>, e: &mut Envelope, bytes: &str) {
    let mut spool = archive.spool(1 << 20);
    spool.append(bytes.as_bytes());
    e.archive_name = Some(spool.store().unwrap());
    e.archive_state = ArchiveState::Stored;
}

fn attempt<'a>(
    at: i64,
    status: &'a str,
    reply: &'a str,
    category: Option<&'a str>,
) -> AttemptRow<'a> {
    AttemptRow {
        at,
        status: status.parse().unwrap(),
        relay_host: Some("mx.dest.example"),
        relay_ip: Some("198.51.100.7"),
        relay_port: Some(25),
        dsn: Some(if status == "sent" { "2.0.0" } else { "5.1.1" }),
        smtp_code: None,
        reply,
        stage: None,
        delay: Some(1.5),
        delays: None,
        category: category.map(|c| c.parse().unwrap()),
    }
}

fn fixture_with(secure_cookie: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    config.store.path = dir.path().join("mailtrail.db");
    config.archive.dir = dir.path().join("archive");
    config.web.secure_cookie = secure_cookie;
    config.web.users = vec![
        WebUser {
            name: "admin".into(),
            password_hash: quick_hash("admin-pw"),
            domains: Vec::new(),
        },
        WebUser {
            name: "alice".into(),
            password_hash: quick_hash("alice-pw"),
            domains: vec!["a.example".into()],
        },
    ];
    let archive = Arc::new(Archive::open(&config.archive.dir).unwrap());
    let mut store = Store::open(&config.store.path).unwrap();
    let now = NOW;

    let mut a = envelope(
        "QA1",
        "sender@a.example",
        "rcpt@dest.example",
        "Hello A",
        now - 600,
    );
    archived(
        &archive,
        &mut a,
        "From: sender@a.example\r\nSubject: Hello A\r\n\r\nbody of A\r\n",
    );
    let mut b = envelope(
        "QB1",
        "other@B.example",
        "x@dest.example",
        "Secret B",
        now - 300,
    );
    archived(
        &archive,
        &mut b,
        "From: other@b.example\r\nSubject: Secret B\r\n\r\nsecret body of B\r\n",
    );
    let mut xss = envelope(
        "QX1",
        &format!("x{XSS}@a.example"),
        &format!("{XSS}@dest.example"),
        XSS,
        now - 200,
    );
    let xss_mail = format!(
        "From: x@a.example\r\nSubject: {XSS}\r\nX-Evil: {XSS}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\ntext {XSS}\r\n\
         --b1\r\nContent-Type: text/html\r\n\r\n<p>html {XSS}</p>\r\n\
         --b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"{XSS}.bin\"\r\n\r\nAAAA\r\n\
         --b1--\r\n"
    );
    archived(&archive, &mut xss, &xss_mail);
    let old = envelope(
        "QO1",
        "old@a.example",
        "r@dest.example",
        "Old one",
        now - 3 * 86400,
    );
    let formula = envelope(
        "QF1",
        "f@a.example",
        "r@dest.example",
        "=HYPERLINK(\"x\")",
        now - 100,
    );
    let ids = store
        .insert_envelopes(&[&a, &b, &xss, &old, &formula])
        .unwrap();

    let batch = store.log_batch().unwrap();
    let r = batch.message_for("QA1", now - 590, None).unwrap();
    let r = batch.recipient_for(r, "rcpt@dest.example", None).unwrap();
    batch
        .record_attempt(
            r,
            &attempt(
                now - 590,
                "deferred",
                "451 try later",
                Some("greylisting-issues"),
            ),
        )
        .unwrap();
    batch
        .record_attempt(r, &attempt(now - 500, "sent", "250 ok", None))
        .unwrap();
    let m = batch.message_for("QB1", now - 290, None).unwrap();
    let r = batch.recipient_for(m, "x@dest.example", None).unwrap();
    batch
        .record_attempt(
            r,
            &attempt(
                now - 290,
                "bounced",
                "550 no such user",
                Some("invalid-mailbox"),
            ),
        )
        .unwrap();
    let m = batch.message_for("QX1", now - 190, None).unwrap();
    let r = batch
        .recipient_for(m, &format!("{XSS}@dest.example"), None)
        .unwrap();
    let reply = format!("550 {XSS}");
    batch
        .record_attempt(r, &attempt(now - 190, "bounced", &reply, Some("other")))
        .unwrap();
    batch
        .insert_raw_line(
            now - 590,
            Some("QA1"),
            "QA1: to=<rcpt@dest.example>, status=deferred",
        )
        .unwrap();
    batch
        .insert_raw_line(
            now - 290,
            Some("QB1"),
            "QB1: to=<x@dest.example>, status=bounced SECRETB",
        )
        .unwrap();
    batch
        .insert_raw_line(now - 190, Some("QX1"), &format!("QX1: said {XSS}"))
        .unwrap();
    batch
        .insert_raw_line(now - 180, None, "connect from unknown[192.0.2.9]")
        .unwrap();
    batch
        .insert_raw_line(now - 3 * 86400, Some("QO1"), "QO1: old line")
        .unwrap();
    batch.commit().unwrap();
    store
        .add_counters(&[("archive_errors", 2), ("store_errors", 1)])
        .unwrap();
    // Message A: a delay warning sent, a receipt decided but not yet submitted.
    let at = |secs: i64| OffsetDateTime::from_unix_timestamp(secs).unwrap();
    let rcpt = ["rcpt@dest.example".to_string()];
    store
        .record_notice(ids[0], NoticeKind::Warning, &rcpt, at(now - 500))
        .unwrap();
    store
        .record_notice(ids[0], NoticeKind::Receipt, &rcpt, at(now - 100))
        .unwrap();
    for notice in store.due_notices().unwrap() {
        if notice.kind == NoticeKind::Warning {
            store
                .mark_notice_sent(notice.id, at(now - 499), "<n1@mailtrail>")
                .unwrap();
        } else {
            store
                .mark_notice_failed(notice.id, "421 <b>busy</b>")
                .unwrap();
        }
    }
    store
        .refresh_stats(
            UtcOffset::UTC,
            OffsetDateTime::from_unix_timestamp(NOW).unwrap(),
        )
        .unwrap();

    let clock: Clock = Arc::new(|| OffsetDateTime::from_unix_timestamp(NOW).unwrap());
    let handle = ConfigHandle::new(Source::Defaults, config);
    let health = Arc::new(crate::model::health::Health::default());
    let state = WebState::new(handle, UtcOffset::UTC, clock)
        .unwrap()
        .with_health(health.clone());
    Fixture {
        dir,
        app: router(state),
        health,
        ids: Ids {
            a: ids[0],
            b: ids[1],
            xss: ids[2],
            old: ids[3],
            formula: ids[4],
        },
    }
}

fn fixture() -> Fixture {
    fixture_with(false)
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Fixture {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        let mut request = Request::get(path);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post_login(&self, name: &str, password: &str, ip: [u8; 4]) -> Reply {
        let mut request = Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("name={name}&password={password}")))
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
        self.send(request).await
    }

    /// Logs in and returns the `Cookie` header value.
    async fn login(&self, name: &str, password: &str) -> String {
        let reply = self.post_login(name, password, [127, 0, 0, 1]).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
        let set = reply.headers["set-cookie"].to_str().unwrap();
        set.split(';').next().unwrap().to_string()
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn listed_ids(body: &str) -> Vec<i64> {
    json(body)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn unauthenticated_pages_redirect_and_data_routes_answer_401() {
    let f = fixture();
    for page in ["/", "/today", "/week", "/raw", "/message/1", "/stats"] {
        let reply = f.get(page, None).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(reply.headers["location"], "/login", "{page}");
    }
    for api in [
        "/live.json",
        "/today.json",
        "/week.csv",
        "/raw.txt",
        "/raw.json",
        "/message/1/eml",
        "/live/events",
        "/metrics",
        "/stats.json",
        "/stats/sender.csv",
        "/stats/hour.json",
    ] {
        assert_eq!(
            f.get(api, None).await.status,
            StatusCode::UNAUTHORIZED,
            "{api}"
        );
    }
    // A made-up session token is no login either.
    let forged = f.get("/today.json", Some("mailtrail_session=00ff")).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let health = f.get("/healthz", None).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok\n")
    );
    let login = f.get("/login", None).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("type=\"password\""));
    assert_eq!(
        f.get("/static/style.css", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn login_sets_a_strict_cookie_and_logout_ends_the_session() {
    let f = fixture();
    let reply = f.post_login("admin", "admin-pw", [127, 0, 0, 1]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.headers["location"], "/");
    let set = reply.headers["set-cookie"].to_str().unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} missing in {set}");
    }
    assert!(!set.contains("Secure"), "not behind TLS by default: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    assert_eq!(cookie.len(), "mailtrail_session=".len() + 64);
    assert_eq!(f.get("/", Some(&cookie)).await.status, StatusCode::OK);

    let logout = f
        .send(
            Request::post("/logout")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER);
    assert!(
        logout.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        f.get("/", Some(&cookie)).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        f.get("/today.json", Some(&cookie)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let secure = fixture_with(true);
    let reply = secure.post_login("admin", "admin-pw", [127, 0, 0, 1]).await;
    assert!(
        reply.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

#[tokio::test]
async fn wrong_passwords_fail_and_are_rate_limited_per_user_and_ip() {
    let f = fixture();
    let wrong = f.post_login("admin", "nope", [10, 0, 0, 1]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.headers.get("set-cookie").is_none());
    assert!(wrong.body.contains("Wrong name or password"));
    assert_eq!(
        f.post_login("nobody", "x", [10, 0, 0, 9]).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Five failures for admin from different IPs: the user is locked for the minute...
    for i in 2..=5 {
        let reply = f.post_login("admin", "nope", [10, 0, 0, i]).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let locked = f.post_login("admin", "admin-pw", [10, 0, 1, 1]).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    // ...while another user still logs in.
    assert_eq!(
        f.post_login("alice", "alice-pw", [10, 0, 1, 1])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    // Five failures from one IP lock that IP, whatever the user name.
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        f.post_login(user, "x", [10, 9, 9, 9]).await;
    }
    assert_eq!(
        f.post_login("alice", "alice-pw", [10, 9, 9, 9])
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// 50 wrong passwords at once, then the right one: the limit holds although each check is
/// slow (every attempt is counted before its check, not after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_logins_cannot_pass_the_limit() {
    let f = fixture();
    let wrong = (0..50u8).map(|i| f.post_login("admin", "nope", [10, 1, 0, i]));
    let replies = futures_util::future::join_all(wrong).await;
    let checked = replies
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let refused = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (5, 45));
    let right = f.post_login("admin", "admin-pw", [10, 1, 1, 1]).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
}

/// A form posted from another site is refused; the pages' own form, and scripts that send no
/// browser headers, are served.
#[tokio::test]
async fn cross_site_posts_are_refused() {
    let f = fixture();
    let post = |headers: &[(&str, &str)], path: &str| {
        let mut request = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("host", "status.example:8025");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let mut request = request
            .body(Body::from("name=admin&password=admin-pw"))
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        request
    };
    for headers in [
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
        &[
            ("sec-fetch-site", "same-site"),
            ("origin", "http://status.example:8025"),
        ],
        &[("origin", "http://status.example:9999")],
    ] {
        for path in ["/login", "/logout"] {
            let reply = f.send(post(headers, path)).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path} {headers:?}");
            assert!(reply.headers.get("set-cookie").is_none());
        }
    }
    for headers in [
        &[("origin", "http://status.example:8025")][..],
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://status.example:8025"),
        ],
        &[],
    ] {
        let reply = f.send(post(headers, "/login")).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{headers:?}");
    }
}

/// A filter longer than anyone types is a 400 naming the limit, not a 500 (SQLite refuses
/// `LIKE` patterns of 50,000 bytes).
#[tokio::test]
async fn overlong_filters_are_a_bad_request() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let long = "x".repeat(50_000);
    for path in [
        format!("/week?subject={long}"),
        format!("/today.json?from={long}"),
        format!("/raw?q={long}"),
    ] {
        let reply = f.get(&path, Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", &path[..20]);
        assert!(reply.body.contains("at most 500 bytes"), "{}", reply.body);
    }
    let fine = f
        .get(&format!("/week?subject={}", "x".repeat(500)), Some(&cookie))
        .await;
    assert_eq!(fine.status, StatusCode::OK);
}

#[tokio::test]
async fn basic_auth_serves_exports_to_scripts() {
    let f = fixture();
    // "admin:admin-pw"
    let request = |auth: &str| {
        Request::get("/today.json")
            .header("authorization", format!("Basic {auth}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        f.send(request("YWRtaW46YWRtaW4tcHc=")).await.status,
        StatusCode::OK
    );
    // "admin:wrong"
    assert_eq!(
        f.send(request("YWRtaW46d3Jvbmc=")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn lists_as_html_json_and_csv() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let ids = &f.ids;

    let live = f.get("/", Some(&cookie)).await;
    assert_eq!(live.status, StatusCode::OK);
    assert!(live.body.contains("Hello A") && live.body.contains("Secret B"));
    assert!(!live.body.contains("Old one"), "live shows today only");
    assert!(live.body.contains("/static/live.js"));
    assert!(live.body.contains("badge bounced"));
    assert!(live.body.contains("invalid-mailbox"));
    let csp = live.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");

    let today = json(&f.get("/today.json", Some(&cookie)).await.body);
    assert_eq!(today["total"], 4);
    assert_eq!(today["page"], 1);
    assert_eq!(today["per_page"], 50);
    let newest = &today["messages"][0];
    assert_eq!(newest["id"], ids.formula);
    for key in [
        "id",
        "queue_id",
        "arrived_at",
        "mail_from",
        "subject",
        "size",
        "first_recipient",
        "recipients",
        "status",
        "category",
    ] {
        assert!(newest.get(key).is_some(), "{key} missing in {newest}");
    }
    let by_id = |id: i64| {
        today["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id(ids.a)["status"], "sent");
    assert_eq!(by_id(ids.b)["status"], "bounced");
    assert_eq!(by_id(ids.b)["category"], "invalid-mailbox");
    assert_eq!(by_id(ids.formula)["status"], "pending");

    let week = json(&f.get("/week.json", Some(&cookie)).await.body);
    assert_eq!(week["total"], 5);
    assert!(listed_ids(&f.get("/week.json", Some(&cookie)).await.body).contains(&ids.old));
    let live_json = json(&f.get("/live.json", Some(&cookie)).await.body);
    assert_eq!(live_json["messages"].as_array().unwrap().len(), 4);

    for (path, marker) in [("/today", "Today"), ("/week", "Old one")] {
        let page = f.get(path, Some(&cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.body.contains(marker), "{path}");
        assert!(page.body.contains("page 1 of 1"), "{path}");
    }

    for path in ["/live.csv", "/today.csv", "/week.csv"] {
        let csv = f.get(path, Some(&cookie)).await;
        assert_eq!(csv.status, StatusCode::OK);
        assert!(
            csv.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        assert!(
            csv.body.starts_with(
                "id,arrived_at,queue_id,from,first_recipient,recipients,subject,size,status,category\r\n"
            ),
            "{path}: {}",
            csv.body
        );
    }
    let csv = f.get("/today.csv", Some(&cookie)).await.body;
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"x\"\")\""),
        "formula defused: {csv}"
    );
    assert!(csv.contains(",Secret B,"));
}

#[tokio::test]
async fn list_filters_and_pages() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let ids = &f.ids;
    let q = |query: &'static str| {
        let f = &f;
        let cookie = cookie.clone();
        async move {
            listed_ids(
                &f.get(&format!("/week.json?{query}"), Some(&cookie))
                    .await
                    .body,
            )
        }
    };
    assert_eq!(q("status=bounced").await, vec![ids.xss, ids.b]);
    assert_eq!(q("status=sent").await, vec![ids.a]);
    assert_eq!(q("category=invalid-mailbox").await, vec![ids.b]);
    assert_eq!(q("from=b.example").await, vec![ids.b]);
    assert_eq!(q("to=x%40dest").await, vec![ids.b]);
    assert_eq!(q("subject=hello").await, vec![ids.a]);
    assert_eq!(
        q("subject=%25").await,
        Vec::<i64>::new(),
        "LIKE wildcards are literal"
    );
    assert_eq!(
        q("from=&status=").await.len(),
        5,
        "empty fields filter nothing"
    );
    assert_eq!(q("page=2").await, Vec::<i64>::new());
    // A CSV download is the whole filtered list: header plus every row, whatever the page.
    let csv = f.get("/week.csv?page=2", Some(&cookie)).await.body;
    assert_eq!(csv.lines().count(), 1 + 5, "{csv}");
    let csv = f.get("/week.csv?status=bounced", Some(&cookie)).await.body;
    assert_eq!(csv.lines().count(), 1 + 2, "{csv}");
    let bad = f.get("/week.json?status=lost", Some(&cookie)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = f.get("/week?page=0", Some(&cookie)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let page = f.get("/week?status=bounced", Some(&cookie)).await.body;
    assert!(page.contains("<option value=\"bounced\" selected>"));
    assert!(page.contains("href=\"/week.csv?status=bounced\""));
}

#[tokio::test]
async fn message_detail_timeline_archive_and_eml() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let page = f.get(&format!("/message/{}", f.ids.a), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    for text in [
        "sender@a.example",
        "rcpt@dest.example",
        "451 try later",
        "greylisting-issues",
        "250 ok",
        "mx.dest.example",
        "Subject: Hello A",
        "body of A",
        "Download .eml",
        "Notices to the sender",
        "not yet (1 attempts: 421 &lt;b&gt;busy&lt;/b&gt;)",
    ] {
        assert!(page.body.contains(text), "{text} missing");
    }
    let detail = json(
        &f.get(&format!("/message/{}.json", f.ids.a), Some(&cookie))
            .await
            .body,
    );
    assert_eq!(detail["message"]["mail_from"], "sender@a.example");
    let attempts = detail["recipients"][0]["attempt_list"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["status"], "deferred");
    assert_eq!(attempts[1]["status"], "sent");
    assert_eq!(detail["recipients"][0]["status"], "sent");
    let notices = detail["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 2);
    assert_eq!(notices[0]["kind"], "warning");
    assert_eq!(notices[0]["recipients"][0], "rcpt@dest.example");
    assert!(notices[0]["sent_at"].is_string());
    assert_eq!(notices[1]["kind"], "receipt");
    assert!(notices[1]["sent_at"].is_null());

    let eml = f
        .get(&format!("/message/{}/eml", f.ids.a), Some(&cookie))
        .await;
    assert_eq!(eml.status, StatusCode::OK);
    assert_eq!(eml.headers["content-type"], "message/rfc822");
    assert!(eml.body.starts_with("From: sender@a.example\r\n"));

    // Not archived: the page says so and there is no .eml.
    let old = f
        .get(&format!("/message/{}", f.ids.old), Some(&cookie))
        .await;
    assert!(old.body.contains("No archived copy"));
    let eml = f
        .get(&format!("/message/{}/eml", f.ids.old), Some(&cookie))
        .await;
    assert_eq!(eml.status, StatusCode::NOT_FOUND);
    assert_eq!(
        f.get("/message/999999", Some(&cookie)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.get("/message/abc", Some(&cookie)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn raw_log_page_search_and_downloads() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let today = f.get("/raw", Some(&cookie)).await;
    assert_eq!(today.status, StatusCode::OK);
    assert!(today.body.contains("QA1: to=&lt;rcpt@dest.example&gt;"));
    assert!(today.body.contains("connect from unknown"));
    assert!(!today.body.contains("old line"));
    let week = f.get("/raw?days=7", Some(&cookie)).await;
    assert!(week.body.contains("old line"));
    let by_qid = json(
        &f.get("/raw.json?days=1&queue_id=QB1", Some(&cookie))
            .await
            .body,
    );
    let lines = by_qid["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["queue_id"], "QB1");
    let text = f.get("/raw.txt?q=STATUS%3Ddeferred", Some(&cookie)).await;
    assert_eq!(text.status, StatusCode::OK);
    assert_eq!(text.body, "QA1: to=<rcpt@dest.example>, status=deferred\n");
    assert!(
        text.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let csv = f.get("/raw.csv", Some(&cookie)).await;
    assert!(csv.body.starts_with("id,at,queue_id,line\r\n"));
    assert_eq!(
        f.get("/raw?days=3", Some(&cookie)).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn metrics_in_prometheus_format() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let m = f.get("/metrics", Some(&cookie)).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    for line in [
        "# TYPE mailtrail_messages gauge",
        "mailtrail_messages 5",
        "mailtrail_archived_messages 3",
        "mailtrail_attempts{status=\"bounced\"} 2",
        "mailtrail_attempts{status=\"deferred\"} 1",
        "mailtrail_attempts{status=\"sent\"} 1",
        "mailtrail_recipients{status=\"pending\"} 2",
        "mailtrail_events_total{name=\"archive_errors\"} 2",
        "mailtrail_notices_sent{kind=\"warning\"} 1",
        "mailtrail_log_lag_seconds 180",
        &format!("mailtrail_stats_refreshed_timestamp_seconds {NOW}"),
    ] {
        assert!(
            m.body.lines().any(|l| l == line),
            "{line} missing in\n{}",
            m.body
        );
    }
    assert!(m.body.contains("mailtrail_archive_bytes "));
}

#[tokio::test]
async fn a_domain_scoped_user_never_gets_another_domains_data() {
    let f = fixture();
    let cookie = f.login("alice", "alice-pw").await;
    let ids = &f.ids;
    let b = ids.b;
    for path in [
        format!("/message/{b}"),
        format!("/message/{b}.json"),
        format!("/message/{b}/eml"),
    ] {
        let reply = f.get(&path, Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!reply.body.contains("Secret"), "{path}");
    }
    // The same message is there for an unscoped user: 404 above is the scope, not a missing row.
    let admin = f.login("admin", "admin-pw").await;
    assert_eq!(
        f.get(&format!("/message/{b}"), Some(&admin)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        f.get(&format!("/message/{}", ids.a), Some(&cookie))
            .await
            .status,
        StatusCode::OK
    );

    for path in [
        "/",
        "/today",
        "/week",
        "/live.json",
        "/today.json",
        "/week.json",
        "/live.csv",
        "/today.csv",
        "/week.csv",
        "/raw?days=7",
        "/raw.json?days=7",
        "/raw.csv?days=7",
        "/raw.txt?days=7",
        "/raw.txt?queue_id=QB1",
    ] {
        let reply = f.get(path, Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        for secret in ["Secret B", "b.example", "B.example", "QB1", "SECRETB"] {
            assert!(!reply.body.contains(secret), "{path} leaks {secret}");
        }
        // Log lines without a queue id cannot be attributed to a domain: not shown.
        assert!(!reply.body.contains("connect from unknown"), "{path}");
    }
    let week = listed_ids(&f.get("/week.json", Some(&cookie)).await.body);
    assert_eq!(week, vec![ids.formula, ids.xss, ids.a, ids.old]);
    let raw = f.get("/raw.txt?days=7", Some(&cookie)).await.body;
    assert!(raw.contains("QA1") && raw.contains("QO1"));
    assert_eq!(
        f.get("/metrics", Some(&cookie)).await.status,
        StatusCode::FORBIDDEN
    );

    // The live event stream is scoped too.
    let events = first_event(&f, "/live/events?after=0", &cookie).await;
    assert!(events.contains("Hello A"));
    assert!(!events.contains("Secret B"));
}

/// The first chunk of an event stream (the stream itself never ends).
async fn first_event(f: &Fixture, path: &str, cookie: &str) -> String {
    let response = f
        .app
        .clone()
        .oneshot(
            Request::get(path)
                .header("cookie", cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = response.into_body();
    let mut text = String::new();
    // Several rows may come as several frames: read until the newest (highest id) arrived.
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(500), body.frame()).await
    {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            text.push_str(&String::from_utf8_lossy(data));
        }
    }
    text
}

#[tokio::test]
async fn live_events_send_new_rows_after_the_given_id() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let all = first_event(&f, "/live/events?after=0", &cookie).await;
    assert!(all.contains(&format!("id: {}", f.ids.formula)));
    assert!(all.contains("data: <tr data-id="));
    let newer = first_event(&f, &format!("/live/events?after={}", f.ids.xss), &cookie).await;
    assert!(newer.contains(&format!("id: {}", f.ids.formula)));
    assert!(!newer.contains("Hello A"));
}

#[tokio::test]
async fn mail_data_is_escaped_on_every_page() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let x = f.ids.xss;
    for path in [
        "/".to_string(),
        "/today".into(),
        "/week".into(),
        format!("/message/{x}"),
        "/raw".into(),
        "/raw?days=7".into(),
        "/week?subject=%3Cscript%3E".into(),
        "/stats".into(),
    ] {
        let page = f.get(&path, Some(&cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains(XSS), "{path} has an unescaped script");
        assert!(!page.body.contains("<script>"), "{path}");
        assert!(page.body.contains(XSS_ESCAPED), "{path} lost the text");
    }
    let detail = f.get(&format!("/message/{x}"), Some(&cookie)).await.body;
    // Address, reply text, header, text body, HTML body and attachment name all shown escaped.
    for shown in [
        format!("x{XSS_ESCAPED}@a.example"),
        format!("550 {XSS_ESCAPED}"),
        format!("X-Evil: {XSS_ESCAPED}"),
        format!("text {XSS_ESCAPED}"),
        format!("&lt;p&gt;html {XSS_ESCAPED}&lt;/p&gt;"),
        format!("{XSS_ESCAPED}.bin"),
    ] {
        assert!(detail.contains(&shown), "{shown} missing");
    }
    let events = first_event(&f, "/live/events?after=0", &cookie).await;
    assert!(!events.contains(XSS) && events.contains(XSS_ESCAPED));
    // JSON keeps the text as data (a JSON string, served as application/json).
    let reply = f.get(&format!("/message/{x}.json"), Some(&cookie)).await;
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(json(&reply.body)["message"]["subject"], XSS);
}

#[tokio::test]
async fn stats_page_has_a_chart_and_table_per_section_and_exports() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let page = f.get("/stats", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    for slug in [
        "summary",
        "month",
        "day",
        "weekday",
        "hour",
        "recipient-domain",
        "relay-host",
        "sender",
        "smtp-errors",
        "categories",
    ] {
        assert!(page.body.contains(&format!("id=\"{slug}\"")), "{slug}");
        assert!(
            page.body
                .contains(&format!("/stats/{slug}.csv?period=this-month")),
            "{slug}"
        );
        let csv = f.get(&format!("/stats/{slug}.csv"), Some(&cookie)).await;
        assert_eq!(csv.status, StatusCode::OK, "{slug}");
        assert!(
            csv.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let json = f.get(&format!("/stats/{slug}.json"), Some(&cookie)).await;
        assert_eq!(json.status, StatusCode::OK, "{slug}");
        assert!(!self::json(&json.body)[slug].is_null(), "{slug}");
    }
    // Inline SVG charts, one per section, with text drawn by the embedded font's metrics.
    assert_eq!(page.body.matches("<svg").count(), 10, "{}", page.body);
    assert!(page.body.contains("href=\"/stats\" class=\"current\""));

    // The fixture's November: 5 messages; attempts: 1 delivered, 1 deferred, 2 bounced.
    let all = json(&f.get("/stats.json", Some(&cookie)).await.body);
    let summary = &all["summary"];
    assert_eq!(summary["messages"], 5);
    assert_eq!(summary["delivered"], 1);
    assert_eq!(summary["deferred"], 1);
    assert_eq!(summary["bounced"], 2);
    // The month so far: its days up to today, the 23rd.
    assert_eq!(all["from"], "2026-11-01");
    assert_eq!(all["to"], "2026-11-24");
    assert_eq!(all["by_day"].as_array().unwrap().len(), 23);
    assert!(
        page.body
            .contains("2026-11-01 to 2026-11-23, compared with 2026-10-01 to 2026-10-23"),
        "{}",
        page.body
    );
    // The summary as figures with units, not field names: 1 of 3 final attempts delivered.
    assert!(
        page.body
            .contains("<dt>Delivery rate</dt><dd class=\"value\">33.3 %</dd>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<dt>Messages</dt><dd class=\"value\">5</dd>")
    );
    assert!(!page.body.contains("delivery_rate"));
    // Headings in words on the page, keys in the CSV.
    assert!(page.body.contains("<th>Recipient domain</th>"));
    assert!(
        page.body
            .contains("<th class=\"num\">Rejected commands</th>")
    );
    assert!(!page.body.contains("<th>recipient_domain</th>"));
    let domains = f
        .get("/stats/recipient-domain.csv", Some(&cookie))
        .await
        .body;
    assert!(
        domains.starts_with("recipient_domain,delivered,deferred,bounced,expired\r\n"),
        "{domains}"
    );
    let categories = f.get("/stats/categories.csv", Some(&cookie)).await.body;
    assert!(
        categories.starts_with("category,count,refused\r\n"),
        "{categories}"
    );
    assert!(
        categories.contains("invalid-mailbox,1,0\r\n"),
        "{categories}"
    );
    let last = json(
        &f.get("/stats.json?period=last-month", Some(&cookie))
            .await
            .body,
    );
    assert_eq!(last["summary"]["messages"], 0);
    assert_eq!(last["from"], "2026-10-01");
    for bad in ["/stats?period=soon", "/stats.json?period=2026-13"] {
        assert_eq!(
            f.get(bad, Some(&cookie)).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    for missing in ["/stats/nothing.csv", "/stats/sender.xml", "/stats/sender"] {
        assert_eq!(
            f.get(missing, Some(&cookie)).await.status,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
    // An admin narrows to one domain.
    let b = json(
        &f.get("/stats.json?domain=B.example", Some(&cookie))
            .await
            .body,
    );
    assert_eq!(b["summary"]["messages"], 1);
    assert_eq!(b["summary"]["bounced"], 1);
}

#[tokio::test]
async fn stats_pages_show_a_new_refresh_at_once() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let messages = |body: &str| json(body)["summary"]["messages"].as_u64().unwrap();
    assert_eq!(messages(&f.get("/stats.json", Some(&cookie)).await.body), 5);
    let mut store = Store::open(&f.dir.path().join("mailtrail.db")).unwrap();
    let new = envelope("QN1", "n@a.example", "r@dest.example", "New", NOW - 60);
    store.insert_envelopes(&[&new]).unwrap();
    // Not refreshed yet: the rollups, and so the page, still say 5.
    assert_eq!(messages(&f.get("/stats.json", Some(&cookie)).await.body), 5);
    store
        .refresh_stats(
            UtcOffset::UTC,
            OffsetDateTime::from_unix_timestamp(NOW + 1).unwrap(),
        )
        .unwrap();
    assert_eq!(messages(&f.get("/stats.json", Some(&cookie)).await.body), 6);
}

#[tokio::test]
async fn stats_compare_with_the_same_days_before_and_show_the_null_sender_as_brackets() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let mut store = Store::open(&f.dir.path().join("mailtrail.db")).unwrap();
    // A bounce (null sender) this month; in October one message within the same days, one
    // after them (the 30th is past the 23rd: not compared).
    let bounce = envelope("QN1", "", "r@dest.example", "Undelivered", NOW - 60);
    let october = envelope(
        "QP1",
        "p@a.example",
        "r@dest.example",
        "Oct",
        NOW - 40 * 86400,
    );
    let late = envelope(
        "QP2",
        "p@a.example",
        "r@dest.example",
        "Oct 30",
        NOW - 24 * 86400,
    );
    store.insert_envelopes(&[&bounce, &october, &late]).unwrap();
    store
        .refresh_stats(
            UtcOffset::UTC,
            OffsetDateTime::from_unix_timestamp(NOW + 1).unwrap(),
        )
        .unwrap();
    let page = f.get("/stats", Some(&cookie)).await.body;
    // 6 messages against 1: +500 %, was 1.
    assert!(
        page.contains(
            "<dt>Messages</dt><dd class=\"value\">6</dd><dd class=\"change\">\
             <span class=\"neutral\">+500.0 %</span> · was 1</dd>"
        ),
        "{page}"
    );
    // The null sender is written as mail people write it, escaped on the page.
    assert!(page.contains("<td>&lt;&gt;</td>"), "{page}");
    let senders = f.get("/stats/sender.csv", Some(&cookie)).await.body;
    assert!(senders.contains("\r\n<>,1,1,"), "{senders}");
    let json = json(&f.get("/stats/sender.json", Some(&cookie)).await.body);
    assert!(
        json["sender"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == "<>" && r["messages"] == 1),
        "{json}"
    );
}

#[tokio::test]
async fn stats_of_a_scoped_user_hold_only_their_domains() {
    let f = fixture();
    let cookie = f.login("alice", "alice-pw").await;
    let all = json(&f.get("/stats.json", Some(&cookie)).await.body);
    // a.example: A, the XSS one, the old one and the formula one; only the XSS one bounced.
    assert_eq!(all["summary"]["messages"], 4);
    assert_eq!(all["summary"]["bounced"], 1);
    assert_eq!(all["summary"]["delivered"], 1);
    let mut bodies = vec![f.get("/stats", Some(&cookie)).await.body];
    for slug in [
        "sender",
        "recipient-domain",
        "relay-host",
        "categories",
        "summary",
    ] {
        bodies.push(
            f.get(&format!("/stats/{slug}.csv"), Some(&cookie))
                .await
                .body,
        );
        bodies.push(
            f.get(&format!("/stats/{slug}.json"), Some(&cookie))
                .await
                .body,
        );
    }
    for body in &bodies {
        assert!(!body.to_ascii_lowercase().contains("b.example"), "{body}");
    }
    // Another domain's statistics and exports: refused, nothing read.
    for path in [
        "/stats?domain=b.example",
        "/stats.json?domain=B.example",
        "/stats/sender.csv?domain=b.example",
        "/stats/summary.json?domain=b.example",
    ] {
        let reply = f.get(path, Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert!(!reply.body.contains("messages"), "{path}");
    }
    let own = json(
        &f.get("/stats.json?domain=a.example", Some(&cookie))
            .await
            .body,
    );
    assert_eq!(own["summary"]["messages"], 4);
}

#[test]
fn hash_password_makes_verifiable_argon2id_strings() {
    let hash = crate::config::hash_password("s3cret").unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(crate::config::verify_password(&hash, "s3cret"));
    assert!(!crate::config::verify_password(&hash, "other"));
    assert_ne!(
        hash,
        crate::config::hash_password("s3cret").unwrap(),
        "random salt"
    );
}

#[test]
fn user_scope_matches_the_last_domain_exactly() {
    let user = WebUser {
        name: "u".into(),
        password_hash: String::new(),
        domains: vec!["a.example".into()],
    };
    assert!(user.may_see("x@A.Example"));
    assert!(!user.may_see("x@sub.a.example"));
    assert!(!user.may_see("x@a.example.evil"));
    assert!(!user.may_see("a.example"));
    assert!(!user.may_see(""));
}

#[tokio::test]
async fn a_list_above_the_count_cap_says_so_and_keeps_paging() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let mut store = Store::open(&f.dir.path().join("mailtrail.db")).unwrap();
    let many: Vec<Envelope> = (0..lists::COUNT_CAP)
        .map(|n| {
            let at = NOW - 3600 + (n % 3000) as i64;
            envelope(
                &format!("C{n}"),
                "bulk@a.example",
                "r@dest.example",
                "bulk",
                at,
            )
        })
        .collect();
    let refs: Vec<&Envelope> = many.iter().collect();
    store.insert_envelopes(&refs).unwrap();

    // The fixture's 4 messages of today plus the cap: more than the cap match.
    let today = json(&f.get("/today.json", Some(&cookie)).await.body);
    assert_eq!(today["total"], lists::COUNT_CAP);
    assert_eq!(today["total_capped"], true);
    let page = f.get("/today", Some(&cookie)).await;
    assert!(page.body.contains("10,000+ messages"), "{}", page.body);
    assert!(page.body.contains("page 1 of 200+"), "{}", page.body);
    assert!(page.body.contains("older →"));
    // Below the cap the count is exact.
    let few = json(&f.get("/today.json?subject=Hello", Some(&cookie)).await.body);
    assert_eq!(few["total"], 1);
    assert_eq!(few["total_capped"], false);
}

#[tokio::test]
async fn the_live_page_and_healthz_say_what_is_failing() {
    use crate::model::health::Part;
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    assert_eq!(f.get("/healthz", None).await.body, "ok\n");
    f.health.failed(
        Part::Archive,
        "No space left on device <b>(os error 28)</b>",
    );
    let page = f.get("/", Some(&cookie)).await.body;
    assert!(page.contains("archive copies failing since"), "{page}");
    assert!(
        page.contains("No space left on device &lt;b&gt;(os error 28)&lt;/b&gt;"),
        "escaped: {page}"
    );
    let health = f.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        health.body.starts_with("archive copies failing since"),
        "{}",
        health.body
    );
    f.health.succeeded(Part::Archive);
    assert_eq!(f.get("/healthz", None).await.status, StatusCode::OK);
    assert!(
        !f.get("/", Some(&cookie))
            .await
            .body
            .contains("failing since")
    );
}

/// A message that passed through a content filter (or sendmail's submission program) is listed
/// under its next hop, known from the log; its page shows what the hop before knew: the subject
/// and the archived copy, with a link to that hop.
#[tokio::test]
async fn a_next_hops_page_shows_the_envelope_and_copy_of_the_hop_before() {
    let f = fixture();
    let cookie = f.login("admin", "admin-pw").await;
    let archive = Arc::new(Archive::open(&f.dir.path().join("archive")).unwrap());
    let mut store = Store::open(&f.dir.path().join("mailtrail.db")).unwrap();
    let mut hop = envelope(
        "QF1",
        "sender@a.example",
        "rcpt@dest.example",
        "Filtered hello",
        NOW - 100,
    );
    archived(
        &archive,
        &mut hop,
        "From: sender@a.example\r\nSubject: Filtered hello\r\n\r\nbody through the filter\r\n",
    );
    let hop_id = store.insert_envelopes(&[&hop]).unwrap()[0];
    let batch = store.log_batch().unwrap();
    let handed = crate::store::LogMessageFields {
        handed_to: Some("QF2"),
        ..Default::default()
    };
    batch.set_message_fields(hop_id, &handed).unwrap();
    let next = batch.message_for("QF2", NOW - 99, Some("mx.test")).unwrap();
    let sender = crate::store::LogMessageFields {
        sender: Some("sender@a.example"),
        ..Default::default()
    };
    batch.set_message_fields(next, &sender).unwrap();
    batch.commit().unwrap();

    let page = f.get(&format!("/message/{next}"), Some(&cookie)).await.body;
    assert!(page.contains("Filtered hello"), "{page}");
    assert!(page.contains("body through the filter"), "{page}");
    assert!(
        page.contains(&format!("href=\"/message/{hop_id}\"")),
        "{page}"
    );
    let eml = f.get(&format!("/message/{next}/eml"), Some(&cookie)).await;
    assert_eq!(eml.status, StatusCode::OK);
    assert!(eml.body.contains("body through the filter"));
    // A message with no hop before it is shown as it is.
    let plain = f
        .get(&format!("/message/{}", f.ids.a), Some(&cookie))
        .await
        .body;
    assert!(!plain.contains("Handed over by"));
}

impl Fixture {
    /// A form POST as the pages' own form sends it (same origin), logged in with `cookie`.
    async fn post_form(&self, path: &str, cookie: &str, body: &str, site: &str) -> Reply {
        let request = Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookie)
            .header("sec-fetch-site", site)
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(request).await
    }
}

/// The suppression list's page: an unscoped user adds and removes any entry; a scoped user
/// sees and changes only their sender domains'; another site's form is refused; what a user
/// typed comes back escaped.
#[tokio::test]
async fn the_suppression_page_keeps_each_user_to_their_domains() {
    let f = fixture();
    let admin = f.login("admin", "admin-pw").await;
    let alice = f.login("alice", "alice-pw").await;
    let add = |address: &str, domain: &str, reason: &str| {
        format!(
            "address={}&domain={}&reason={}",
            views::url_encode(address),
            views::url_encode(domain),
            views::url_encode(reason)
        )
    };
    for (address, domain) in [
        ("gone@x.example", "a.example"),
        ("*@dead.example", "b.example"),
        ("old@y.example", "*"),
    ] {
        let reply = f
            .post_form(
                "/suppression/add",
                &admin,
                &add(address, domain, XSS),
                "same-origin",
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    }
    let all = json(&f.get("/suppression.json", Some(&admin)).await.body);
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    let page = f.get("/suppression", Some(&admin)).await;
    assert!(page.body.contains(XSS_ESCAPED) && !page.body.contains(XSS));
    assert!(page.body.contains("every sender"));

    // Alice (a.example) sees her domain's entry only, in every format.
    let hers = json(&f.get("/suppression.json", Some(&alice)).await.body);
    let addresses: Vec<&str> = hers
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap())
        .collect();
    assert_eq!(addresses, ["gone@x.example"]);
    let csv = f.get("/suppression.csv", Some(&alice)).await.body;
    assert!(csv.starts_with("sender_domain,address,source"), "{csv}");
    assert!(
        !csv.contains("dead.example") && !csv.contains("old@y.example"),
        "{csv}"
    );
    assert!(
        !f.get("/suppression", Some(&alice))
            .await
            .body
            .contains("dead.example")
    );
    // ... and may not add or remove another domain's, or one for every sender.
    for (path, address, domain) in [
        ("/suppression/add", "new@x.example", "b.example"),
        ("/suppression/add", "new@x.example", "*"),
        ("/suppression/remove", "*@dead.example", "b.example"),
        ("/suppression/remove", "old@y.example", "*"),
    ] {
        let reply = f
            .post_form(path, &alice, &add(address, domain, ""), "same-origin")
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{path} {address} {domain}"
        );
    }
    assert_eq!(
        json(&f.get("/suppression.json", Some(&admin)).await.body)
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let reply = f
        .post_form(
            "/suppression/remove",
            &alice,
            &add("gone@x.example", "a.example", ""),
            "same-origin",
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(
        json(&f.get("/suppression.json", Some(&alice)).await.body),
        serde_json::json!([])
    );

    // Nonsense and a pattern for every address are refused with the reason.
    let reply = f
        .post_form(
            "/suppression/add",
            &admin,
            &add("*@*", "a.example", ""),
            "same-origin",
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body.contains("would match every address"),
        "{}",
        reply.body
    );

    // A form another site sends in the user's browser changes nothing.
    let reply = f
        .post_form(
            "/suppression/add",
            &admin,
            &add("forged@x.example", "a.example", ""),
            "cross-site",
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = f
        .post_form(
            "/suppression/remove",
            &admin,
            &add("old@y.example", "*", ""),
            "cross-site",
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let after = json(&f.get("/suppression.json", Some(&admin)).await.body);
    assert_eq!(after.as_array().unwrap().len(), 2, "{after}");
    assert!(!after.to_string().contains("forged"));
}
