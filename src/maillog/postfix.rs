//! Postfix message grammar: the text after `postfix/SERVICE[pid]: `.

use super::event::{
    Delivery, DeliveryStatus, Event, NotificationKind, Reject, RejectSource, SmtpStage,
};
use super::text::{
    address_end, code_dsn_text, find_any2, find_any3, find_pair, host_ip_port, stage_of_command,
    unbracket,
};

/// Short ids are upper-case hex; long ids (`enable_long_queue_ids`) use a vowel-free base-51
/// alphabet with a `z` between time and inode parts, so English words never match.
pub(crate) fn is_queue_id(t: &str) -> bool {
    let b = t.as_bytes();
    if (5..=24).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
    {
        return true;
    }
    b.len() >= 10
        && b.len() <= 32
        && b.contains(&b'z')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() && !b"AEIOUaeiou".contains(c))
}

/// Result of the grammar: an event, or None for an unrecognised line.
pub(crate) fn parse(service: &str, msg: &str) -> Option<Event> {
    if let Some(rest) = msg
        .strip_prefix('N')
        .and_then(|m| m.strip_prefix("OQUEUE: "))
    {
        return Some(noqueue(service, rest));
    }
    // A queue id is at most 32 bytes, so only the head of the line can hold `QID: `.
    let head = msg.get(..msg.len().min(34)).unwrap_or(msg);
    if let Some(colon) = find_pair(head, b':', b' ') {
        let qid = &msg[..colon];
        if is_queue_id(qid) {
            return with_queue_id(service, qid, &msg[colon + 2..]);
        }
    } else if let Some(qid) = msg.strip_suffix(':').filter(|q| is_queue_id(q)) {
        // Some postfix versions log a bare `QID:` with nothing after it.
        return Some(Event::Other {
            queue_id: Some(qid.to_owned()),
            kind: "queue-empty",
        });
    }
    // `warning: QID: ...` belongs to that message.
    let queue_id = msg
        .strip_prefix("warning: ")
        .and_then(|w| w.split_once(": "))
        .map(|(q, _)| q)
        .filter(|q| is_queue_id(q))
        .map(str::to_owned);
    Some(Event::Other {
        queue_id,
        kind: no_queue_kind(service, msg),
    })
}

fn other(qid: &str, kind: &'static str) -> Event {
    Event::Other {
        queue_id: Some(qid.to_owned()),
        kind,
    }
}

fn with_queue_id(service: &str, qid: &str, rest: &str) -> Option<Event> {
    let b = rest.as_bytes();
    match b.first() {
        Some(b't') if rest.starts_with("to=") => return delivery(service, qid, rest),
        Some(b'f') if rest.starts_with("from=") => return Some(from_line(qid, rest)),
        Some(b'c') if rest.starts_with("client=") => return Some(client(qid, rest)),
        Some(b'm') if rest.starts_with("message-id=") => {
            let v = rest["message-id=".len()..].trim_end();
            return Some(Event::MessageId {
                queue_id: qid.to_owned(),
                message_id: unbracket(v).to_owned(),
            });
        }
        Some(b'r') if rest == "removed" || rest.starts_with("removed ") => {
            return Some(Event::Removed {
                queue_id: qid.to_owned(),
            });
        }
        _ => {}
    }
    if let Some(event) = notification(qid, rest) {
        return Some(event);
    }
    if let Some(r) = rest.strip_prefix("reject: ") {
        return Some(reject(service, Some(qid), r, false));
    }
    // Fields in another order than postfix writes them; the line must start with a field, so a
    // `warning: header Subject: ... status=sent ... to=<..>` (header_checks WARN quoting a
    // stranger's subject) never reads as a delivery.
    if starts_with_field(rest)
        && rest.contains("status=")
        && (rest.contains(" to=") || rest.contains(",to="))
    {
        return delivery(service, qid, rest);
    }
    if let Some(r) = rest.strip_prefix("milter-reject: ") {
        return Some(reject(service, Some(qid), r, true));
    }
    Some(other(qid, queued_noise_kind(rest)?))
}

/// Whether `s` starts with a postfix field name and `=` (`to=`, `orig_to=`, `status=`).
fn starts_with_field(s: &str) -> bool {
    let name = s
        .bytes()
        .take_while(|c| c.is_ascii_lowercase() || *c == b'_')
        .count();
    name > 0 && s.as_bytes().get(name) == Some(&b'=')
}

/// `sender non-delivery notification: NEWQID` and its kin: postfix queued a notice.
fn notification(qid: &str, rest: &str) -> Option<Event> {
    for (prefix, kind) in [
        (
            "sender non-delivery notification: ",
            NotificationKind::NonDelivery,
        ),
        ("sender delay notification: ", NotificationKind::Delay),
        (
            "sender delivery status notification: ",
            NotificationKind::Success,
        ),
        (
            "postmaster non-delivery notification: ",
            NotificationKind::PostmasterNotify,
        ),
        (
            "postmaster delay notification: ",
            NotificationKind::PostmasterNotify,
        ),
    ] {
        if let Some(n) = rest.strip_prefix(prefix) {
            let n = n.trim();
            return Some(Event::Notification {
                queue_id: qid.to_owned(),
                kind,
                notice_queue_id: (!n.is_empty()).then(|| n.to_owned()),
            });
        }
    }
    None
}

/// The kind of a recognised line of a queued message that records nothing (pickup, warnings,
/// header/body check actions, TLS, postsuper ...); `None` for an unknown line.
fn queued_noise_kind(rest: &str) -> Option<&'static str> {
    let kind = if rest.starts_with("uid=") {
        "pickup"
    } else if rest.starts_with("resent-message-id=") {
        "resent-message-id"
    } else if rest.starts_with("host ")
        || rest.starts_with("lost connection with ")
        || rest.starts_with("conversation with ")
    {
        // Informational smtp client errors; the to= line that follows carries the outcome.
        "smtp-session"
    } else if rest.starts_with("reject_warning: ") || rest.starts_with("warning: ") {
        "warning"
    } else if [
        "discard: ",
        "hold: ",
        "redirect: ",
        "filter: ",
        "prepend: ",
        "replace: ",
        "info: ",
        "milter-discard: ",
        "milter-hold: ",
    ]
    .iter()
    .any(|p| rest.starts_with(p))
    {
        "action"
    } else if rest.starts_with("enabling PIX")
        || rest.starts_with("SASL ")
        || rest.starts_with("TLS is required")
    {
        "smtp-session"
    } else if rest.starts_with("bcc: ") || rest.contains(": header ") || rest.contains(": body ") {
        // header/body_checks actions (bcc, prepend, replace, ...)
        "action"
    } else if rest.contains("TLS") {
        "tls"
    } else if rest.starts_with("milter-") {
        "action"
    } else if rest.starts_with("status=") {
        // qmgr `status=deferred (bounce failed)`: about the notice, not a recipient.
        "qmgr-status"
    } else if rest.starts_with("skipped") {
        "qmgr-skipped"
    } else if rest.starts_with("sender ") || rest.starts_with("postmaster ") {
        "notification-other"
    } else if ["requeued", "expired", "held", "released", "placed on hold"]
        .iter()
        .any(|p| rest.starts_with(p))
    {
        "postsuper"
    } else if rest.starts_with("passing ")
        || rest.starts_with("dsn_")
        || rest.starts_with("orig_to=")
        || rest.starts_with("size=")
    {
        "misc"
    } else {
        return None;
    };
    Some(kind)
}

fn client(qid: &str, rest: &str) -> Event {
    let mut client_host = String::new();
    let mut client_ip = String::new();
    let mut client_port = None;
    let mut sasl_method = None;
    let mut sasl_username = None;
    for (k, v) in comma_kv(rest) {
        match k {
            "client" => {
                let (h, ip, port) = host_ip_port(v);
                client_host = h.to_owned();
                client_ip = ip.unwrap_or("").to_owned();
                client_port = port;
            }
            "sasl_method" => sasl_method = Some(v.to_owned()),
            "sasl_username" => sasl_username = Some(v.to_owned()),
            _ => {}
        }
    }
    Event::Client {
        queue_id: qid.to_owned(),
        client_host,
        client_ip,
        client_port,
        sasl_method,
        sasl_username,
    }
}

/// Postfix `key=value, key=value`: values in `<..>` may hold `, ` (and `>` when quoted); the
/// `(..)` after `status=` is returned as the value of key `(`. Callers keep the first value of
/// a key: a later one can only come from a stranger's text.
fn comma_kv(s: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = s;
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if rest.is_empty() {
                return None;
            }
            if rest.starts_with('(') {
                // The reply text is a stranger's and may hold `)` and `status=` of its own: it
                // runs to the last `)` of the line, so nothing inside it is read as a field.
                let (v, after) = match rest.rfind(')') {
                    Some(e) if e > 0 => (&rest[1..e], &rest[e + 1..]),
                    _ => (&rest[1..], ""),
                };
                rest = after;
                return Some(("(", v));
            }
            let Some(eq) =
                find_any3(rest, b'=', b',', b' ').filter(|&i| rest.as_bytes()[i] == b'=')
            else {
                // A bare word (`(queue active)` handled above); skip it.
                let cut = find_any2(rest, b',', b' ').unwrap_or(rest.len());
                rest = &rest[cut..];
                continue;
            };
            let key = &rest[..eq];
            let v = &rest[eq + 1..];
            let end = if v.starts_with('<') {
                address_end(v)
            } else {
                // Plain values (and the status word before its parenthesis) hold no space
                // or comma; some logs omit the comma (`conn_use=2 delay=1`).
                find_any2(v, b',', b' ').unwrap_or(v.len())
            };
            rest = &v[end..];
            return Some((key, unbracket(&v[..end])));
        }
    })
}

fn from_line(qid: &str, rest: &str) -> Event {
    let mut from = String::new();
    let mut size = None;
    let mut nrcpt = None;
    let mut expired = false;
    let mut reason = "";
    for (k, v) in comma_kv(rest) {
        match k {
            "from" => from = v.to_owned(),
            "size" => size = v.parse().ok(),
            "nrcpt" => nrcpt = v.parse().ok(),
            "status" if v == "expired" => expired = true,
            _ => {}
        }
    }
    if expired {
        if let Some(i) = rest.rfind("status=expired") {
            reason = rest[i + "status=expired".len()..].trim_start_matches([',', ' ']);
        }
        return Event::Expired {
            queue_id: qid.to_owned(),
            from: Some(from),
            notice_queue_id: None,
            reason: reason.to_owned(),
        };
    }
    Event::Queued {
        queue_id: qid.to_owned(),
        from,
        size,
        nrcpt,
        message_id: None,
        client_host: None,
        client_ip: None,
        proto: None,
    }
}

fn delivery(service: &str, qid: &str, rest: &str) -> Option<Event> {
    let mut d = Delivery::new(qid, service);
    let mut status = None;
    let mut text = "";
    let mut seen: u16 = 0;
    for (k, v) in comma_kv(rest) {
        // The first value of each field is postfix's own.
        let bit = match k {
            "to" => 1,
            "orig_to" => 2,
            "relay" => 4,
            "delay" => 8,
            "delays" => 16,
            "dsn" => 32,
            "status" => 64,
            "(" => 128,
            _ => 0,
        };
        if seen & bit != 0 {
            continue;
        }
        seen |= bit;
        match k {
            "to" => d.to = v.to_owned(),
            "orig_to" => d.orig_to = Some(v.to_owned()),
            // `relay=none`: no host was reached (DNS failure, connection refused).
            "relay" if v == "none" => {}
            "relay" => {
                let (h, ip, port) = host_ip_port(v);
                d.relay_host = Some(h.to_owned());
                // `host[private/dovecot-lmtp]` names a socket, not an address.
                d.relay_ip = ip.filter(|ip| !ip.contains('/')).map(str::to_owned);
                d.relay_port = port;
            }
            "delay" => d.delay_secs = v.parse().ok(),
            "delays" => d.delays = Some(v.to_owned()),
            "dsn" => d.dsn = Some(v.to_owned()),
            "status" => status = Some(v),
            "(" => text = v,
            _ => {}
        }
    }
    d.status = match status? {
        "sent" => DeliveryStatus::Sent,
        "deferred" => DeliveryStatus::Deferred,
        "bounced" => DeliveryStatus::Bounced,
        "expired" => DeliveryStatus::Expired,
        // soft_bounce turns bounces into deferrals; some tools log it in capitals.
        "SOFTBOUNCE" | "softbounce" => DeliveryStatus::Deferred,
        // Address verification probes (`deliverable`, `undeliverable`) are not deliveries.
        _ => return Some(other(qid, "verify")),
    };
    let (code, reply, stage) = status_text(text);
    d.smtp_code = code;
    d.reply = reply.to_owned();
    d.stage = stage;
    // A content filter on this host (amavis on 127.0.0.1:10024, say) took the message and
    // re-injected it: `... queued as QID2`. It goes on as QID2; this is no delivery of its own.
    if d.status == DeliveryStatus::Sent && d.relay_is_loopback() {
        d.handed_to = reply
            .rsplit_once("queued as ")
            .map(|(_, qid)| qid.trim_end_matches([')', ' ', '.']))
            .filter(|qid| is_queue_id(qid))
            .map(str::to_owned);
    }
    Some(Event::Delivery(d))
}

/// Splits the parenthesised text after `status=`: remote code, reply, and the SMTP stage.
pub(crate) fn status_text(text: &str) -> (Option<u16>, &str, Option<SmtpStage>) {
    // Fast path: a bare reply (`250 2.0.0 Ok: queued as ...`), as on most sent lines.
    if let (code @ Some(_), _, _) = code_dsn_text(text) {
        return (code, text, None);
    }
    if let Some(i) = memchr::memmem::find(text.as_bytes(), b" said: ") {
        let remote = &text[i + 7..];
        let (reply, stage) = match memchr::memmem::rfind(remote.as_bytes(), b" (in reply to ") {
            Some(j) => {
                let cmd = remote[j + 14..].trim_end_matches(')');
                let cmd = cmd.strip_suffix(" command").unwrap_or(cmd);
                (&remote[..j], Some(stage_of_command(cmd)))
            }
            None => (remote, None),
        };
        return (code_dsn_text(reply).0, reply, stage);
    }
    if text.starts_with("connect to ") {
        return (None, text, Some(SmtpStage::Connect));
    }
    if let Some(i) = text.find(" refused to talk to me: ") {
        let reply = &text[i + 24..];
        return (code_dsn_text(reply).0, reply, Some(SmtpStage::Connect));
    }
    if let Some(i) = text.find(" while ") {
        let phrase = &text[i + 7..];
        let cmd = phrase
            .strip_prefix("receiving ")
            .or_else(|| phrase.strip_prefix("sending "))
            .or_else(|| phrase.strip_prefix("performing "))
            .unwrap_or(phrase);
        let stage = stage_of_command(cmd);
        if stage != SmtpStage::Unknown
            || text.starts_with("lost connection")
            || text.starts_with("conversation with")
        {
            return (None, text, Some(stage));
        }
    }
    let (code, _, _) = code_dsn_text(text);
    (code, text, None)
}

/// `reject: RCPT from host[ip]: 550 5.1.1 <x>: text; from=<> to=<> proto=ESMTP helo=<>`
/// (also postscreen's comma-separated tail, cleanup `reject: header ...`, `milter-reject:`).
fn reject(service: &str, qid: Option<&str>, r: &str, milter: bool) -> Event {
    let source = if milter {
        RejectSource::Milter
    } else if service == "postscreen" {
        RejectSource::Postscreen
    } else if service == "cleanup" {
        RejectSource::Cleanup
    } else {
        RejectSource::Smtpd
    };
    let mut rej = Reject::new(qid, source);
    // The reply text may itself hold `; `, so the envelope tail is the last `; from=`.
    let (head, tail) = match envelope_start(r) {
        Some(i) => (&r[..i], Some(&r[i + 2..])),
        None => (r, None),
    };
    let mut cleanup_reason = None;
    if let Some(tail) = tail {
        cleanup_reason = envelope_tail(tail, &mut rej);
    }
    let cmd_end = head.find(' ').unwrap_or(head.len());
    let cmd = &head[..cmd_end];
    // header/body checks: `reject: header Subject: x from host[ip]; ...: 5.7.1 text`, the
    // reply after the envelope; a refused command has it after the client.
    let content_check = matches!(cmd, "header" | "body" | "mime-header" | "nested-header");
    rej.stage = match content_check {
        true => SmtpStage::Data,
        false => stage_of_command(cmd),
    };
    if let Some(fi) = head.find(" from ") {
        let client = &head[fi + 6..];
        // Client ends at `]` (+ optional `:port`), before `: reply`.
        let cend = match client.find(']') {
            Some(j) => client[j..]
                .find(": ")
                .map(|k| j + k)
                .unwrap_or(client.len()),
            None => client.find([':', ';']).unwrap_or(client.len()),
        };
        let (h, ip, port) = host_ip_port(&client[..cend]);
        if !h.is_empty() {
            rej.client_host = Some(h.to_owned());
        }
        rej.client_ip = ip.map(str::to_owned);
        rej.client_port = port;
        if !content_check && let Some(reply) = client.get(cend..).and_then(|s| s.strip_prefix(": "))
        {
            let (code, dsn, text) = code_dsn_text(reply);
            rej.code = code;
            rej.dsn = dsn.map(str::to_owned);
            rej.reason = text.to_owned();
        }
    }
    if let Some(cr) = cleanup_reason {
        let (code, dsn, text) = code_dsn_text(cr);
        rej.code = rej.code.or(code);
        rej.dsn = dsn.map(str::to_owned);
        rej.reason = text.to_owned();
    }
    Event::Reject(rej)
}

/// Index of the `; ` that starts the envelope tail (`from=`, or `to=`/`proto=`/`helo=` when
/// there is no sender); the last one, since reply texts hold `; ` too.
fn envelope_start(r: &str) -> Option<usize> {
    let b = r.as_bytes();
    memchr::memrchr_iter(b';', b).find(|&i| {
        let t = &r[i + 1..];
        let Some(t) = t.strip_prefix(' ') else {
            return false;
        };
        ["from=", "to=", "proto=", "helo="]
            .iter()
            .any(|k| t.starts_with(k))
    })
}

/// Parses `from=<> to=<> proto=ESMTP helo=<x>` (space or comma separated); returns the text
/// after a trailing `: ` (cleanup header/body rejects put the reply there).
fn envelope_tail<'a>(mut s: &'a str, rej: &mut Reject) -> Option<&'a str> {
    loop {
        s = s.trim_start_matches([',', ' ']);
        if s.is_empty() {
            return None;
        }
        if let Some(r) = s.strip_prefix(": ") {
            return Some(r);
        }
        let eq = s.find('=')?;
        let key = &s[..eq];
        let v = &s[eq + 1..];
        let end = if v.starts_with('<') {
            v.find('>').map(|i| i + 1).unwrap_or(v.len())
        } else {
            v.find([' ', ',', ':']).unwrap_or(v.len())
        };
        let val = unbracket(&v[..end]);
        match key {
            "from" => rej.from = Some(val.to_owned()),
            "to" => rej.to = Some(val.to_owned()),
            "proto" => rej.proto = Some(val.to_owned()),
            "helo" => rej.helo = Some(val.to_owned()),
            _ => {}
        }
        s = &v[end..];
    }
}

fn noqueue(service: &str, rest: &str) -> Event {
    if let Some(r) = rest.strip_prefix("reject: ") {
        return reject(service, None, r, false);
    }
    if let Some(r) = rest.strip_prefix("milter-reject: ") {
        return reject(service, None, r, true);
    }
    let kind = if rest.starts_with("reject_warning: ") {
        "reject-warning"
    } else if [
        "filter: ",
        "discard: ",
        "hold: ",
        "redirect: ",
        "warn: ",
        "milter-",
    ]
    .iter()
    .any(|p| rest.starts_with(p))
    {
        "action"
    } else {
        "noqueue-other"
    };
    Event::Other {
        queue_id: None,
        kind,
    }
}

/// Lines without a queue id: session noise we recognise but do not record.
fn no_queue_kind(service: &str, msg: &str) -> &'static str {
    if service == "postscreen" {
        return if msg.starts_with("PASS ") {
            "postscreen-pass"
        } else if msg.starts_with("DNSBL ") {
            "postscreen-dnsbl"
        } else if msg.starts_with("CONNECT ") {
            "postscreen-connect"
        } else {
            "postscreen"
        };
    }
    let prefixes: [(&str, &'static str); 16] = [
        ("connect from ", "connect"),
        ("disconnect from ", "disconnect"),
        ("lost connection after ", "lost-connection"),
        ("timeout after ", "timeout"),
        ("warning: ", "warning"),
        ("error: ", "error"),
        ("fatal: ", "error"),
        ("panic: ", "error"),
        ("statistics: ", "statistics"),
        ("connect to ", "connect-failure"),
        ("too many errors after ", "lost-connection"),
        ("improper command pipelining", "pipelining"),
        ("Anonymous TLS connection", "tls"),
        ("Untrusted TLS connection", "tls"),
        ("Trusted TLS connection", "tls"),
        ("Verified TLS connection", "tls"),
    ];
    for (p, k) in prefixes {
        if msg.starts_with(p) {
            return k;
        }
    }
    if msg.contains("TLS") || msg.contains("SSL") {
        "tls"
    } else {
        "unclassified"
    }
}
