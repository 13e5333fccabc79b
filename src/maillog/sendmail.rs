//! Sendmail message grammar: the text after `sm-mta[pid]: ` (or `sendmail`, `sm-msp-queue`).

use super::event::{
    Delivery, DeliveryStatus, Event, NotificationKind, Reject, RejectSource, SmtpStage,
};
use super::text::{code_dsn_text, find_top_level, sendmail_delay, unbracket};

/// Sendmail ids: 8 to 20 alphanumerics (`64JM06wX002011`, `j4K488I4001736`); `NOQUEUE`
/// is not an id.
pub(crate) fn is_queue_id(t: &str) -> bool {
    (8..=20).contains(&t.len())
        && t.bytes().all(|c| c.is_ascii_alphanumeric())
        && t.bytes().any(|c| c.is_ascii_digit())
}

pub(crate) fn parse(msg: &str) -> Option<Event> {
    if let Some(colon) = msg.find(": ") {
        let qid = &msg[..colon];
        if is_queue_id(qid) {
            return with_queue_id(qid, &msg[colon + 2..]);
        }
        // `QID[2]: ...`: the second piece of a line too long for one syslog message.
        if let Some((q, n)) = qid.strip_suffix(']').and_then(|q| q.split_once('['))
            && is_queue_id(q)
            && n.bytes().all(|c| c.is_ascii_digit())
        {
            return Some(other(q, "continuation"));
        }
    }
    let msg = msg.strip_prefix("NOQUEUE: ").unwrap_or(msg);
    if msg.starts_with("ruleset=") {
        return Some(ruleset_reject(None, msg));
    }
    if msg.starts_with("AUTH=server") {
        return Some(sasl_login(None, msg));
    }
    Some(Event::Other {
        queue_id: None,
        kind: session_kind(msg).unwrap_or("unclassified"),
    })
}

fn other(qid: &str, kind: &'static str) -> Event {
    Event::Other {
        queue_id: Some(qid.to_owned()),
        kind,
    }
}

fn with_queue_id(qid: &str, rest: &str) -> Option<Event> {
    if rest.starts_with("to=") {
        return delivery(qid, rest);
    }
    if rest.starts_with("AUTH=server") {
        return Some(sasl_login(Some(qid), rest));
    }
    if rest.starts_with("from=") {
        return Some(from_line(qid, rest));
    }
    if rest.starts_with("ruleset=") {
        return Some(ruleset_reject(Some(qid), rest));
    }
    if let Some(m) = rest.strip_prefix("Milter") {
        // `Milter: data, reject=...`; not `Milter change: header Subject: <a stranger's text>`.
        if m.starts_with(": ") && m.contains("reject=") {
            return Some(milter_reject(qid, m));
        }
        return Some(other(qid, "milter"));
    }
    if rest.starts_with('<') {
        // `<addr>... User unknown`: the RCPT reply sendmail gave a client.
        if let Some(i) = rest.find(">... ") {
            return Some(Event::Reject(Reject {
                to: Some(rest[1..i].to_owned()),
                stage: SmtpStage::RcptTo,
                reason: rest[i + 5..].to_owned(),
                ..Reject::new(Some(qid), RejectSource::SendmailRcpt)
            }));
        }
    }
    // `QID: NEWQID: DSN: text` and friends: a notice was queued as NEWQID.
    let (notice, text) = match rest.find(": ") {
        Some(c) if is_queue_id(&rest[..c]) => (Some(&rest[..c]), &rest[c + 2..]),
        _ => (None, rest),
    };
    if let Some(ev) = notification(qid, notice, text) {
        return Some(ev);
    }
    if notice.is_some() {
        return Some(other(qid, "notice-other"));
    }
    if let Some(kind) = session_kind(rest) {
        return Some(other(qid, kind));
    }
    None
}

fn notification(qid: &str, notice: Option<&str>, text: &str) -> Option<Event> {
    let (label, body) = text.split_once(": ").unwrap_or((text, ""));
    let expired = body.starts_with("Cannot send message for");
    let kind = match label {
        "DSN" if body.starts_with("Return receipt") => NotificationKind::Success,
        "DSN" | "sender notify" if body.starts_with("Warning: could not send") => {
            NotificationKind::Delay
        }
        "DSN" | "sender notify" => NotificationKind::NonDelivery,
        "return to sender" => NotificationKind::ReturnToSender,
        "postmaster notify" => NotificationKind::PostmasterNotify,
        "clone" => return Some(other(qid, "clone")),
        _ => return None,
    };
    if expired && kind != NotificationKind::PostmasterNotify {
        return Some(Event::Expired {
            queue_id: qid.to_owned(),
            from: None,
            notice_queue_id: notice.map(str::to_owned),
            reason: body.to_owned(),
        });
    }
    Some(Event::Notification {
        queue_id: qid.to_owned(),
        kind,
        notice_queue_id: notice.map(str::to_owned),
    })
}

/// Recognised sendmail noise (AUTH, STARTTLS, session aborts ...).
fn session_kind(m: &str) -> Option<&'static str> {
    let table: [(&str, &'static str); 20] = [
        ("message size", "size-exceeded"),
        ("Syntax error", "syntax-error"),
        ("Fixed MIME", "mime"),
        ("File descriptors missing", "daemon"),
        ("grew WorkList", "daemon"),
        ("accepting connections", "daemon"),
        ("AUTH=", "auth"),
        ("AUTH failure", "auth-failure"),
        ("STARTTLS", "starttls"),
        ("lost input channel", "lost-input-channel"),
        ("done;", "done"),
        ("SYSERR", "syserr"),
        ("timeout waiting", "timeout"),
        ("collect:", "collect"),
        ("rejecting commands from", "pregreet"),
        ("starting daemon", "daemon"),
        ("alias database", "daemon"),
        ("Authentication-Warning", "auth-warning"),
        ("discarded", "discarded"),
        ("headers too large", "collect"),
    ];
    for (p, k) in table {
        if m.starts_with(p) {
            return Some(k);
        }
    }
    if m.contains("possible SMTP attack") {
        Some("smtp-attack")
    } else if m.contains("did not issue MAIL/EXPN/VRFY/ETRN")
        || m.contains(": ETRN ")
        || m.contains("]: EXPN ")
        || m.contains("]: VRFY ")
        || m.contains("]: expn ")
        || m.contains("]: vrfy ")
        || m.contains("protocol error")
        || m.starts_with("rejecting connections")
    {
        Some("smtp-session")
    } else if m.contains("[more]") {
        Some("continuation")
    } else {
        None
    }
}

/// Sendmail `key=value, ...`: `reply=` runs to `, stat=`, `stat=` and `reject=` to the end
/// (their text holds `, `).
fn fields(s: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = s;
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if rest.is_empty() {
                return None;
            }
            let stop = rest.find(['=', ',']).unwrap_or(rest.len());
            if rest.as_bytes().get(stop) != Some(&b'=') {
                rest = &rest[stop..];
                if rest.is_empty() {
                    return None;
                }
                rest = &rest[1..];
                continue;
            }
            let key = &rest[..stop];
            let v = &rest[stop + 1..];
            let end = match key {
                "stat" | "reject" => v.len(),
                // The reply is the remote server's text; sendmail's own `stat=` is the last.
                "reply" => v.rfind(", stat=").unwrap_or(v.len()),
                // Addresses (a client's, quoted local parts and all) hold `, ` and `=` too.
                _ => find_top_level(v, ", ").unwrap_or(v.len()),
            };
            rest = &v[end..];
            return Some((key, &v[..end]));
        }
    })
}

/// `host. [ip] (may be forged)`, `[ip]`, `localhost`, `user@localhost`.
fn relay(v: &str) -> (Option<String>, Option<String>) {
    let v = v.strip_suffix(" (may be forged)").unwrap_or(v);
    let (host, ip) = match v.find(" [") {
        Some(i) => (&v[..i], v[i + 2..].split(']').next()),
        None => (v, None),
    };
    let host = host.trim_end_matches('.');
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip = ip.or_else(|| v.strip_prefix('[').and_then(|h| h.strip_suffix(']')));
    (
        (!host.is_empty()).then(|| host.to_owned()),
        ip.map(str::to_owned),
    )
}

/// Splits `<a>,<b>` or `a,b` at top-level commas.
fn recipients(v: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(1);
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in v.bytes().enumerate() {
        match c {
            b'"' => quoted = !quoted,
            b'<' if !quoted => depth += 1,
            b'>' if !quoted => depth -= 1,
            b',' if !quoted && depth <= 0 => {
                out.push(unbracket(v[start..i].trim()).to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(unbracket(v[start..].trim()).to_owned());
    out
}

fn from_line(qid: &str, rest: &str) -> Event {
    let (mut from, mut size, mut nrcpt, mut message_id, mut host, mut ip, mut proto) =
        (String::new(), None, None, None, None, None, None);
    for (k, v) in fields(rest) {
        match k {
            "from" => from = unbracket(v).to_owned(),
            "size" => size = v.parse().ok(),
            "nrcpts" => nrcpt = v.parse().ok(),
            "msgid" => message_id = Some(unbracket(v).to_owned()),
            "proto" => proto = Some(v.to_owned()),
            "relay" => (host, ip) = relay(v),
            _ => {}
        }
    }
    Event::Queued {
        queue_id: qid.to_owned(),
        from,
        size,
        nrcpt,
        message_id,
        client_host: host,
        client_ip: ip,
        proto,
    }
}

fn delivery(qid: &str, rest: &str) -> Option<Event> {
    let mut d = Delivery::new(qid, "");
    let mut stat = None;
    let mut reply = None;
    let mut seen = Vec::with_capacity(10);
    for (k, v) in fields(rest) {
        // The first value of each field is sendmail's own.
        if seen.contains(&k) {
            continue;
        }
        seen.push(k);
        match k {
            "to" => {
                let mut all = recipients(v).into_iter();
                d.to = all.next().unwrap_or_default();
                d.also_to = all.collect();
            }
            "delay" => d.delay_secs = sendmail_delay(v),
            "xdelay" => d.delays = Some(v.to_owned()),
            "mailer" => d.agent = v.to_owned(),
            "relay" => (d.relay_host, d.relay_ip) = relay(v),
            "dsn" => d.dsn = Some(v.to_owned()),
            "reply" => reply = Some(v),
            "stat" => stat = Some(v),
            _ => {}
        }
    }
    let dsn_class = d.dsn.as_deref().and_then(|s| s.bytes().next());
    let stat_text = stat.unwrap_or("");
    d.status = if stat_text.starts_with("Sent") {
        DeliveryStatus::Sent
    } else if stat_text.starts_with("Deferred") {
        DeliveryStatus::Deferred
    } else if stat_text.starts_with("queued") {
        // Queued for a later run without an attempt.
        return Some(other(qid, "queued"));
    } else {
        match dsn_class {
            Some(b'2') => DeliveryStatus::Sent,
            Some(b'4') => DeliveryStatus::Deferred,
            Some(b'5') => DeliveryStatus::Bounced,
            _ if stat.is_none() => return Some(other(qid, "to-without-stat")),
            // Old sendmail logs failures without dsn=; anything but Sent/Deferred is final.
            _ => DeliveryStatus::Bounced,
        }
    };
    // The reply: reply= (8.16.1+), else the text in `Sent (..)` / after `Deferred: `.
    let text = match reply {
        Some(r) => r,
        None => {
            if let Some(t) = stat_text.strip_prefix("Sent (") {
                t.strip_suffix(')').unwrap_or(t)
            } else if let Some(t) = stat_text.strip_prefix("Deferred: ") {
                t
            } else {
                stat_text
            }
        }
    };
    let (code, _, _) = code_dsn_text(text);
    d.smtp_code = code;
    if text.starts_with("Connection refused")
        || text.starts_with("Connection timed out")
        || text.contains("host name lookup failure")
    {
        d.stage = Some(SmtpStage::Connect);
    }
    d.reply = text.to_owned();
    // The submission program's hand-over to the daemon on this host: `QID2 Message accepted
    // for delivery`. The message goes on as QID2; this is no delivery of its own.
    if d.status == DeliveryStatus::Sent && d.relay_is_loopback() {
        d.handed_to = text
            .split_once(" Message accepted for delivery")
            .map(|(qid, _)| qid.trim())
            .filter(|qid| is_queue_id(qid))
            .map(str::to_owned);
    }
    Some(Event::Delivery(d))
}

fn set_reply(rej: &mut Reject, v: &str) {
    let (code, dsn, text) = code_dsn_text(v);
    rej.code = code;
    rej.dsn = dsn.map(str::to_owned);
    rej.reason = text.to_owned();
}

/// `ruleset=check_rcpt, arg1=<..>, relay=host [ip], reject=550 5.7.1 ...`
fn ruleset_reject(qid: Option<&str>, rest: &str) -> Event {
    let mut rej = Reject::new(qid, RejectSource::Ruleset);
    let mut ruleset = "";
    let mut arg1 = None;
    let mut any_reject = false;
    for (k, v) in fields(rest) {
        match k {
            "ruleset" => ruleset = v,
            "arg1" => arg1 = Some(v),
            "relay" => (rej.client_host, rej.client_ip) = relay(v),
            "reject" => {
                any_reject = true;
                set_reply(&mut rej, v);
            }
            _ => {}
        }
    }
    if !any_reject {
        // `ruleset=... discard` / `quarantine=` lines are not rejects.
        return Event::Other {
            queue_id: qid.map(str::to_owned),
            kind: "ruleset",
        };
    }
    rej.stage = match ruleset {
        "check_relay" => SmtpStage::Connect,
        "check_mail" => SmtpStage::MailFrom,
        "check_rcpt" | "check_compat" => SmtpStage::RcptTo,
        "check_data" => SmtpStage::Data,
        "check_eom" | "check_eoh" => SmtpStage::EndOfData,
        _ => SmtpStage::Unknown,
    };
    match rej.stage {
        SmtpStage::RcptTo => rej.to = arg1.map(|a| unbracket(a).to_owned()),
        SmtpStage::MailFrom => rej.from = arg1.map(|a| unbracket(a).to_owned()),
        _ => {}
    }
    Event::Reject(rej)
}

/// `Milter: data, reject=550 5.7.1 ...`, `Milter: to=<x>, reject=...`.
fn milter_reject(qid: &str, m: &str) -> Event {
    let mut rej = Reject::new(Some(qid), RejectSource::Milter);
    let m = m.trim_start_matches([':', ' ']);
    rej.stage = if m.starts_with("data") {
        SmtpStage::EndOfData
    } else if m.starts_with("to=") {
        SmtpStage::RcptTo
    } else if m.starts_with("from=") {
        SmtpStage::MailFrom
    } else if m.starts_with("helo") {
        SmtpStage::Helo
    } else if m.starts_with("connect") {
        SmtpStage::Connect
    } else {
        SmtpStage::Unknown
    };
    for (k, v) in fields(m) {
        match k {
            "to" => rej.to = Some(unbracket(v).to_owned()),
            "from" => rej.from = Some(unbracket(v).to_owned()),
            "reject" => set_reply(&mut rej, v),
            _ => {}
        }
    }
    Event::Reject(rej)
}

/// `AUTH=server, relay=host [ip], authid=user, mech=LOGIN, bits=0`: a client logged in.
fn sasl_login(qid: Option<&str>, m: &str) -> Event {
    let (mut host, mut ip, mut username, mut mechanism) = (None, None, String::new(), None);
    for (k, v) in fields(m) {
        match k {
            "relay" => (host, ip) = relay(v),
            "authid" => username = v.to_owned(),
            "mech" => mechanism = Some(v.to_owned()),
            _ => {}
        }
    }
    Event::SaslLogin {
        queue_id: qid.map(str::to_owned),
        client_host: host,
        client_ip: ip,
        username,
        mechanism,
    }
}
