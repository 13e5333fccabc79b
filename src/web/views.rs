//! HTML templates (maud, checked at compile time). Everything that came in a message is
//! inserted with maud's escaping: never `PreEscaped` on mail data.

use super::CurrentUser;
use crate::render::local_time;
use crate::store::{
    LiveCursor, MessageCount, MessageNotice, MessageSummary, RawLine, RecipientDelivery,
    StoredMessage,
};
use crate::{bounce::Category, model::status::RecipientStatus};
use maud::{DOCTYPE, Markup, html};
use time::UtcOffset;

pub const STATUSES: [RecipientStatus; 5] = [
    RecipientStatus::Sent,
    RecipientStatus::Deferred,
    RecipientStatus::Bounced,
    RecipientStatus::Expired,
    RecipientStatus::Pending,
];

pub(super) fn layout(
    title: &str,
    current: &str,
    user: Option<&CurrentUser>,
    body: Markup,
) -> Markup {
    let nav: &[(&str, &str)] = match user.is_some_and(|u| u.fleet) {
        true => &[
            ("/", "Hosts"),
            ("/live", "Live"),
            ("/today", "Today"),
            ("/week", "Last 7 days"),
            ("/raw", "Raw log"),
            ("/stats", "Statistics"),
        ],
        false => &[
            ("/", "Live"),
            ("/today", "Today"),
            ("/week", "Last 7 days"),
            ("/raw", "Raw log"),
            ("/stats", "Statistics"),
            ("/suppression", "Suppression"),
        ],
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — mailtrail" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    strong { "mailtrail" }
                    @if let Some(user) = user {
                        @for (href, label) in nav {
                            a href=(href) class=[(*href == current).then_some("current")] { (label) }
                        }
                        form method="post" action="/logout" {
                            (user.user.name) " "
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

pub fn login(error: Option<&str>) -> Markup {
    layout(
        "Log in",
        "/login",
        None,
        html! {
            form.login method="post" action="/login" {
                @if let Some(error) = error { p.error { (error) } }
                label { "Name " input name="name" autocomplete="username" required; }
                label { "Password " input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        },
    )
}

pub fn badge(status: RecipientStatus) -> Markup {
    html! { span class={ "badge " (status.as_str()) } { (status.as_str()) } }
}

/// A category's name, or nothing.
fn category(c: Option<Category>) -> &'static str {
    c.map_or("", Category::as_str)
}

/// The address of a message's page (`suffix`: "", ".json", "/eml"): on the dashboard with
/// its host.
pub fn message_href(id: i64, host: Option<&str>, suffix: &str) -> String {
    match host {
        Some(host) => format!("/message/{id}{suffix}?host={}", url_encode(host)),
        None => format!("/message/{id}{suffix}"),
    }
}

/// One message row; also what the live page's event stream sends.
pub fn message_row(m: &MessageSummary, offset: UtcOffset) -> Markup {
    html! {
        tr data-id=(m.id) {
            @if let Some(host) = &m.host { td { (host) } }
            td { (local_time(m.arrived_at, offset)) }
            td { (m.queue_id.as_deref().unwrap_or("")) }
            td { (m.mail_from) }
            td {
                (m.first_recipient.as_deref().unwrap_or(""))
                @if m.recipients > 1 { " (+" (m.recipients - 1) ")" }
            }
            td { a href=(message_href(m.id, m.host.as_deref(), "")) { (m.subject.as_deref().unwrap_or("(no subject)")) } }
            td.num { (m.size) }
            td { (badge(m.status)) }
            td { (category(m.category)) }
        }
    }
}

fn message_table(
    rows: &[MessageSummary],
    offset: UtcOffset,
    live_after: Option<String>,
    fleet: bool,
) -> Markup {
    html! {
        table {
            thead { tr { @if fleet { th { "Host" } } th { "Time" } th { "Queue id" } th { "From" } th { "To" } th { "Subject" } th { "Size" } th { "Status" } th { "Category" } } }
            tbody id=[live_after.as_ref().map(|_| "live-rows")] data-after=[live_after] {
                @for m in rows { (message_row(m, offset)) }
            }
        }
    }
}

pub fn live(
    user: &CurrentUser,
    rows: &[MessageSummary],
    problems: &[String],
    offset: UtcOffset,
) -> Markup {
    let mut after = LiveCursor::default();
    after.advance(rows);
    let (path, title) = match user.fleet {
        true => ("/live", "Live: last 100 messages today, every host"),
        false => ("/", "Live: last 100 messages today"),
    };
    layout(
        title,
        path,
        Some(user),
        html! {
            @for problem in problems { p.problem role="alert" { (problem) } }
            p { "New messages appear as they arrive (needs JavaScript). "
                a href="/live.json" { "JSON" } " · " a href="/live.csv" { "CSV" } }
            (message_table(rows, offset, Some(after.to_string()), user.fleet))
            script src="/static/live.js" {}
        },
    )
}

/// The filters of a list page, echoed back into its form.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub status: Option<String>,
    pub category: Option<String>,
    pub subject: Option<String>,
    /// The MTA host, on the dashboard.
    pub host: Option<String>,
    pub page: Option<String>,
}

impl ListQuery {
    /// The same filters as a query string, for pager and export links.
    pub fn query_string(&self, page: Option<u32>) -> String {
        let mut pairs = Vec::new();
        let fields = [
            ("from", &self.from),
            ("to", &self.to),
            ("status", &self.status),
            ("category", &self.category),
            ("subject", &self.subject),
            ("host", &self.host),
        ];
        for (name, value) in fields {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                pairs.push(format!("{name}={}", url_encode(v)));
            }
        }
        if let Some(page) = page {
            pairs.push(format!("page={page}"));
        }
        pairs.join("&")
    }
}

pub(super) fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A message count as the pager shows it: `10,000+` when counting stopped at a cap.
pub fn count_text(count: MessageCount) -> String {
    let digits = count.count.to_string();
    let mut text = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    if count.capped {
        text.push('+');
    }
    text
}

pub struct ListPage<'a> {
    pub title: &'a str,
    pub path: &'a str,
    pub query: &'a ListQuery,
    pub rows: &'a [MessageSummary],
    pub page: u32,
    /// Pages of the counted matches (more may follow when the count is capped).
    pub pages: u32,
    pub total: MessageCount,
}

pub fn list(user: &CurrentUser, p: ListPage, offset: UtcOffset) -> Markup {
    let q = p.query;
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let export = q.query_string(None);
    html! {
        (layout(p.title, p.path, Some(user), html! {
            form.filter method="get" action=(p.path) {
                label { "Sender" input name="from" value=(value(&q.from)); }
                label { "Recipient" input name="to" value=(value(&q.to)); }
                label { "Subject" input name="subject" value=(value(&q.subject)); }
                @if user.fleet { label { "Host" input name="host" value=(value(&q.host)); } }
                label { "Status" select name="status" {
                    option value="" { "any" }
                    @for s in STATUSES.map(RecipientStatus::as_str) { option value=(s) selected[q.status.as_deref() == Some(s)] { (s) } }
                } }
                label { "Category" select name="category" {
                    option value="" { "any" }
                    @for c in crate::bounce::Category::ALL.map(|c| c.as_str()) { option value=(c) selected[q.category.as_deref() == Some(c)] { (c) } }
                } }
                button type="submit" { "Filter" }
            }
            p { (count_text(p.total)) " messages · "
                a href={ (p.path) ".json?" (export) } { "JSON" } " · "
                a href={ (p.path) ".csv?" (export) } { "CSV" } }
            (message_table(p.rows, offset, None, user.fleet))
            div.pager {
                @if p.page > 1 { a href={ (p.path) "?" (q.query_string(Some(p.page - 1))) } { "← newer" } }
                span { "page " (p.page) " of " (p.pages.max(1)) @if p.total.capped { "+" } }
                @if p.page < p.pages || p.total.capped { a href={ (p.path) "?" (q.query_string(Some(p.page + 1))) } { "older →" } }
            }
        }))
    }
}

/// The archived copy as shown: raw headers, text, the HTML part as text, attachments.
pub struct ArchivedView {
    pub headers: Vec<(String, String)>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<(String, String, usize)>,
}

/// The archived copy as the message page has it.
pub enum Copy {
    Shown(ArchivedView),
    /// None kept (its state says why).
    Absent,
    /// Kept on its host, which did not answer the dashboard.
    Unreachable {
        host: String,
    },
}

pub fn message(
    user: &CurrentUser,
    m: &StoredMessage,
    recipients: &[RecipientDelivery],
    notices: &[MessageNotice],
    archived: &Copy,
    hop: Option<&StoredMessage>,
    offset: UtcOffset,
) -> Markup {
    let e = &m.envelope;
    let host = m.host.as_deref();
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    html! {
        (layout("Message", "", Some(user), html! {
            p { a href=(message_href(m.id, host, ".json")) { "JSON" } }
            dl.envelope {
                @if let Some(host) = host { dt { "MTA host" } dd { (host) } }
                dt { "Subject" } dd { (opt(&e.subject)) }
                dt { "From" } dd { (e.mail_from) }
                dt { "Arrived" } dd { (local_time(e.arrived_at.unix_timestamp(), offset)) }
                dt { "Queue id" } dd {
                    (opt(&e.queue_id))
                    @if let Some(qid) = &e.queue_id {
                        " (" a href={ "/raw?days=7&queue_id=" (url_encode(qid)) "&host=" (url_encode(host.unwrap_or(""))) } { "log lines" } ")"
                    }
                }
                dt { "Message-ID" } dd { (opt(&e.message_id)) }
                dt { "Client" } dd { (opt(&e.client_name)) " [" (opt(&e.client_addr)) "]" }
                dt { "HELO" } dd { (opt(&e.helo)) }
                dt { "SASL user" } dd { (opt(&e.sasl_user)) }
                dt { "Size" } dd { (e.size) " bytes" }
                dt { "Mode" } dd { (e.mode) }
                dt { "Archive" } dd { (e.archive_state.as_str()) }
                @if let Some(hop) = hop {
                    dt { "Handed over by" } dd {
                        a href=(message_href(hop.id, host, "")) { (opt(&hop.envelope.queue_id)) }
                        " on this host (the envelope and the copy are from there)"
                    }
                }
            }
            h2 { "Recipients" }
            @for r in recipients {
                h3 { (r.address) " " (badge(r.status)) " " (category(r.category)) }
                @if let Some(orig) = &r.orig_to { p { "originally " (orig) } }
                ol.timeline {
                    @for a in &r.attempt_list {
                        li {
                            (local_time(a.at.unix_timestamp(), offset)) " " (badge(a.status.recipient_status()))
                            " relay " (a.relay_host.as_deref().unwrap_or("-"))
                            @if let Some(ip) = &a.relay_ip { " [" (ip) "]" }
                            " dsn " (a.dsn.as_deref().unwrap_or("-"))
                            " " (category(a.category))
                            @if !a.reply.is_empty() { pre { (a.reply) } }
                        }
                    }
                    @if r.attempt_list.is_empty() {
                        li { @match (&r.reply, r.status) {
                            (Some(reply), RecipientStatus::Bounced) => { "refused by the MTA, no delivery attempt: " (reply) },
                            _ => "no delivery attempt yet",
                        } }
                    }
                }
            }
            h2 { "Notices to the sender" }
            @if notices.is_empty() {
                p { "None." }
            } @else {
                table.notices {
                    thead { tr { th { "Notice" } th { "About" } th { "Decided" } th { "Sent" } } }
                    tbody { @for n in notices {
                        tr {
                            td { (n.kind) }
                            td { (n.recipients.join(", ")) }
                            td { (local_time(n.due_at.unix_timestamp(), offset)) }
                            td {
                                @match n.sent_at {
                                    Some(at) => (local_time(at.unix_timestamp(), offset)),
                                    None => {
                                        "not yet (" (n.attempts) " attempts"
                                        @if let Some(e) = &n.last_error { ": " (e) }
                                        ")"
                                    }
                                }
                            }
                        }
                    } }
                }
            }
            h2 { "Archived copy" }
            @match archived {
                Copy::Absent => p { "No archived copy (" (e.archive_state.as_str()) ")." },
                Copy::Unreachable { host } => p.problem role="alert" {
                    "The copy is on " (host) ", which does not answer."
                },
                Copy::Shown(view) => {
                    p { a href=(message_href(m.id, host, "/eml")) { "Download .eml" } }
                    h3 { "Headers" }
                    pre { @for (name, value) in &view.headers { (name) ": " (value) "\n" } }
                    h3 { "Text" }
                    pre { (view.text.as_deref().unwrap_or("(no text part)")) }
                    @if let Some(html) = &view.html {
                        details { summary { "HTML part (shown as text)" } pre { (html) } }
                    }
                    @if !view.attachments.is_empty() {
                        h3 { "Attachments" }
                        ul { @for (name, ctype, size) in &view.attachments { li { (name) " (" (ctype) ", " (size) " bytes)" } } }
                    }
                }
            }
        }))
    }
}

pub struct SuppressionPage<'a> {
    pub mode: crate::suppression::Mode,
    pub domain: &'a str,
    pub address: &'a str,
    /// What the last form did.
    pub done: Option<&'a str>,
    pub rows: &'a [crate::suppression::Suppression],
    /// More entries than the page shows.
    pub capped: bool,
}

pub fn suppression(user: &CurrentUser, p: SuppressionPage, offset: UtcOffset) -> Markup {
    use crate::suppression::Mode;
    let export = format!(
        "domain={}&address={}",
        url_encode(p.domain),
        url_encode(p.address)
    );
    let scoped = !user.user.domains.is_empty();
    html! {
        (layout("Suppression list", "/suppression", Some(user), html! {
            p {
                @match p.mode {
                    Mode::Off => { "The list is kept, not enforced: " code { "[suppression] mode = \"off\"" } "." }
                    Mode::Record => { "Recipients on the list are let through and counted (" code { "mode = \"record\"" } "): nothing is refused." }
                    Mode::Refuse => { "Mail from a sender domain to a recipient on its list is refused at RCPT with 550 5.7.1." }
                }
            }
            @if let Some(done) = p.done { p.done role="status" { (done) } }
            form.filter method="get" action="/suppression" {
                label { "Sender domain" input name="domain" value=(p.domain); }
                label { "Address" input name="address" value=(p.address); }
                button type="submit" { "Filter" }
            }
            p { (p.rows.len()) @if p.capped { "+" } " entries · "
                a href={ "/suppression.json?" (export) } { "JSON" } " · "
                a href={ "/suppression.csv?" (export) } { "CSV" } }
            form.filter method="post" action="/suppression/add" {
                label { "Address or *@domain" input name="address" required; }
                label { "For mail from"
                    @if scoped {
                        select name="domain" { @for d in &user.user.domains { option value=(d) { (d) } } }
                    } @else {
                        input name="domain" placeholder="example.com, or * for every sender" required;
                    }
                }
                label { "Reason" input name="reason" maxlength="200"; }
                button type="submit" { "Suppress" }
            }
            table {
                thead { tr { th { "For mail from" } th { "Address" } th { "Source" } th { "Why" } th { "Queue id" } th { "Since" } th { "Until" } th {} } }
                tbody {
                    @for e in p.rows {
                        tr {
                            td { (crate::suppression::sender_label(&e.sender_domain)) }
                            td { (e.target) }
                            td { (e.source.as_str()) }
                            td title=(e.reply.as_deref().unwrap_or("")) { (e.why()) }
                            td { (e.queue_id.as_deref().unwrap_or("")) }
                            td { (local_time(e.created_at, offset)) }
                            td { (e.expires_at.map_or("removed by hand".to_string(), |t| local_time(t, offset))) }
                            td {
                                form method="post" action="/suppression/remove" {
                                    input type="hidden" name="address" value=(e.target);
                                    input type="hidden" name="domain" value=(e.sender_domain);
                                    button type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }))
    }
}

pub struct RawPage<'a> {
    pub days: u32,
    pub q: &'a str,
    pub queue_id: &'a str,
    /// The host filter, on the dashboard.
    pub host: &'a str,
    pub lines: &'a [RawLine],
    pub truncated: bool,
}

pub fn raw(user: &CurrentUser, p: RawPage, offset: UtcOffset) -> Markup {
    let export = format!(
        "days={}&q={}&queue_id={}&host={}",
        p.days,
        url_encode(p.q),
        url_encode(p.queue_id),
        url_encode(p.host)
    );
    html! {
        (layout("Raw log", "/raw", Some(user), html! {
            form.filter method="get" action="/raw" {
                label { "Period" select name="days" {
                    option value="1" selected[p.days == 1] { "today" }
                    option value="7" selected[p.days == 7] { "last 7 days" }
                } }
                label { "Text" input name="q" value=(p.q); }
                label { "Queue id" input name="queue_id" value=(p.queue_id); }
                @if user.fleet { label { "Host" input name="host" value=(p.host); } }
                button type="submit" { "Search" }
            }
            p { (p.lines.len()) " lines"
                @if p.truncated { " (only the first ones; narrow the search or download)" }
                " · " a href={ "/raw.txt?" (export) } { "download" }
                " · " a href={ "/raw.json?" (export) } { "JSON" }
                " · " a href={ "/raw.csv?" (export) } { "CSV" } }
            pre { @for l in p.lines {
                (local_time(l.at, offset)) " "
                @if let Some(host) = &l.host { "[" (host) "] " }
                (l.line) "\n"
            } }
        }))
    }
}

/// The dashboard's first page: every host of the fleet with its mail of the last 7 days.
pub fn hosts(
    user: &CurrentUser,
    hosts: &[crate::store::fleet::FleetHost],
    offset: UtcOffset,
) -> Markup {
    html! {
        (layout("MTA hosts: last 7 days", "/", Some(user), html! {
            p {
                "Each host's statistics of today and the 6 days before, as of its last refresh. "
                a href="/hosts.json" { "JSON" } " · " a href="/hosts.csv" { "CSV" }
            }
            @if hosts.is_empty() {
                p { "No host has shipped records to the fleet database yet." }
            } @else {
                table {
                    thead { tr {
                        th { "Host" } th { "Last batch" } th { "Messages" } th { "Recipients" }
                        th { "Delivered" } th { "Deferred" } th { "Bounced" } th { "Expired" }
                    } }
                    tbody { @for h in hosts {
                        tr {
                            td {
                                a href={ "/week?host=" (url_encode(&h.name)) } { (h.name) }
                                @if h.conflicts > 0 {
                                    " " span.problem { "name also claimed by " (h.conflicts) " other store(s): not merged" }
                                }
                            }
                            td { (local_time(h.last_seen, offset)) }
                            td.num { (h.messages) } td.num { (h.recipients) }
                            td.num { (h.sent) } td.num { (h.deferred) }
                            td.num { (h.bounced) } td.num { (h.expired) }
                        }
                    } }
                }
            }
        }))
    }
}
