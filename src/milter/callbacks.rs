//! One short async function per milter stage. Only end-of-message does real work: it stores the
//! archive copy and commits the envelope row before answering the MTA.

use super::{
    Shared,
    session::{MessageInFlight, Session},
};
use crate::model::health::Part;
use crate::{
    config::{OnError, Receipts},
    model::counters::Counters,
    model::envelope::ArchiveState,
};
use indymilter::{
    Actions, Callbacks, Context, ContextActions, EomContext, MacroStage, NegotiateContext,
    ProtoOpts, SetErrorReply, SocketInfo, Status,
};
use std::{
    ffi::{CStr, CString},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};
use tracing::{debug, error, info, warn};

/// Macros asked of the MTA per stage. Postfix sends `i` from DATA on, sendmail from MAIL on, so
/// the queue id is read at end-of-message.
const MACROS: &[(MacroStage, &CStr)] = &[
    (
        MacroStage::Connect,
        c"j {client_addr} {client_name} {daemon_name}",
    ),
    (MacroStage::Helo, c"{tls_version} {cipher}"),
    (MacroStage::Mail, c"i {auth_authen} {auth_type} {mail_addr}"),
    (MacroStage::Rcpt, c"i {rcpt_addr}"),
    (MacroStage::Data, c"i"),
    (MacroStage::Eoh, c"i"),
    (MacroStage::Eom, c"i"),
];

/// Whether the "no recipient rewriting" warning was logged.
static REWRITE_WARNED: AtomicBool = AtomicBool::new(false);

pub fn callbacks(shared: Arc<Shared>) -> Callbacks<Session> {
    macro_rules! stage {
        ($f:ident $(, $arg:ident)*) => {{
            let shared = shared.clone();
            move |cx: &mut _, $($arg),*| {
                let shared = shared.clone();
                Box::pin(async move { $f(&shared, cx, $($arg),*).await }) as indymilter::CallbackFuture<'_>
            }
        }};
    }
    Callbacks::new()
        .on_negotiate(stage!(negotiate, actions, opts))
        .on_connect(stage!(connect, hostname, socket))
        .on_helo(stage!(helo, name))
        .on_mail(stage!(mail, args))
        .on_rcpt(stage!(rcpt, args))
        .on_header(stage!(header, name, value))
        .on_eoh(stage!(eoh))
        .on_body(stage!(body, chunk))
        .on_eom(stage!(eom))
        .on_abort(stage!(abort))
}

/// The stages whose answer is always "continue": the MTA sends them without waiting for one,
/// which saves a round trip per header, the body and the envelope's commands. RCPT keeps its
/// answer (the suppression list refuses there); end-of-message's answer is the promise.
pub const NO_REPLY: ProtoOpts = ProtoOpts::NOREPLY_CONNECT
    .union(ProtoOpts::NOREPLY_HELO)
    .union(ProtoOpts::NOREPLY_MAIL)
    .union(ProtoOpts::NOREPLY_HEADER)
    .union(ProtoOpts::NOREPLY_EOH)
    .union(ProtoOpts::NOREPLY_BODY);

/// The protocol options asked of the MTA (masked by what it offers): the headers' leading space
/// as sent, no unknown commands, no DATA command, and the no-reply stages.
pub const REQUESTED_OPTS: ProtoOpts = ProtoOpts::LEADING_SPACE
    .union(ProtoOpts::NO_UNKNOWN)
    .union(ProtoOpts::NO_DATA)
    .union(NO_REPLY);

/// "Go on" at a stage the MTA may have been told not to wait at (`NO_REPLY`).
fn go_on(cx: &Context<Session>, stage: ProtoOpts) -> Status {
    match cx.data.as_ref().is_some_and(|s| s.no_reply.contains(stage)) {
        true => Status::Noreply,
        false => Status::Continue,
    }
}

async fn negotiate(
    shared: &Shared,
    cx: &mut NegotiateContext<Session>,
    mta_actions: Actions,
    mta_opts: ProtoOpts,
) -> Status {
    let config = shared.config.current();
    // Only ask for what the MTA offers: indymilter refuses the connection otherwise.
    cx.requested_opts = mta_opts & REQUESTED_OPTS;
    let mut wanted_actions = Actions::empty();
    if config.archive.bcc.is_some() {
        wanted_actions |= Actions::ADD_RCPT;
    }
    let rewrite = Actions::DELETE_RCPT | Actions::ADD_RCPT_EXT;
    let wants_rewrite = config.senders.iter().any(|s| s.receipts == Receipts::Dsn);
    // Both or neither: deleting a recipient that cannot be re-added would lose it.
    let can_rewrite_recipients = wants_rewrite && mta_actions.contains(rewrite);
    if can_rewrite_recipients {
        wanted_actions |= rewrite;
    } else if wants_rewrite && !REWRITE_WARNED.swap(true, Ordering::Relaxed) {
        // Once per process: the MTA's offer is the same on every connection.
        warn!(
            "the MTA does not let milters delete recipients and add them with ESMTP arguments: \
             receipts = \"dsn\" has no effect"
        );
    }
    cx.requested_actions = mta_actions & wanted_actions;
    for (stage, macros) in MACROS {
        cx.requested_macros.insert(*stage, (*macros).into());
    }
    cx.data = Some(Session {
        exact_leading_space: cx.requested_opts.contains(ProtoOpts::LEADING_SPACE),
        can_rewrite_recipients,
        no_reply: cx.requested_opts & NO_REPLY,
        ..Session::default()
    });
    Status::Continue
}

async fn connect(
    _: &Shared,
    cx: &mut Context<Session>,
    hostname: CString,
    socket: SocketInfo,
) -> Status {
    let mta_host = macro_value(&cx.macros, c"j");
    let client_addr = macro_value(&cx.macros, c"{client_addr}").or(match socket {
        SocketInfo::Inet(addr) => Some(addr.ip().to_string()),
        _ => None,
    });
    let session = cx.data.get_or_insert_with(Session::default);
    session.client_name = Some(lossy(hostname.as_bytes()));
    session.client_addr = client_addr;
    session.mta_host = mta_host;
    go_on(cx, ProtoOpts::NOREPLY_CONNECT)
}

async fn helo(_: &Shared, cx: &mut Context<Session>, name: CString) -> Status {
    cx.data.get_or_insert_with(Session::default).helo = Some(lossy(name.as_bytes()));
    go_on(cx, ProtoOpts::NOREPLY_HELO)
}

async fn mail(shared: &Shared, cx: &mut Context<Session>, args: Vec<CString>) -> Status {
    let sasl_user = macro_value(&cx.macros, c"{auth_authen}");
    let args = args.iter().map(|a| lossy(a.as_bytes())).collect();
    let message = MessageInFlight::new(
        shared.config.current(),
        shared.archive.as_ref(),
        args,
        sasl_user,
    );
    if message.excluded {
        Counters::add(&shared.counters.messages_excluded, 1);
    }
    // A new transaction always starts from clean state, whatever came before.
    cx.data.get_or_insert_with(Session::default).message = Some(message);
    go_on(cx, ProtoOpts::NOREPLY_MAIL)
}

async fn rcpt(shared: &Shared, cx: &mut Context<Session>, args: Vec<CString>) -> Status {
    let queue_id = macro_value(&cx.macros, c"i");
    if let Some(message) = message_of(cx) {
        let args: Vec<String> = args.iter().map(|a| lossy(a.as_bytes())).collect();
        if let Some(reply) = suppressed(shared, message, &args, queue_id.as_deref()) {
            let _ = cx.reply.set_error_reply("550", Some("5.7.1"), [reply]);
            return Status::Reject;
        }
        if !message.add_recipient(args) {
            Counters::add(&shared.counters.recipients_dropped, 1);
        }
    }
    Status::Continue
}

/// The reply text when the recipient in `args` is on the suppression list and the list is
/// enforced for this sender; `None` lets it through (counted when `mode = "record"` would
/// have refused it). The null sender (bounces, mailtrail's own notices) and postmaster@ are
/// never refused.
fn suppressed(
    shared: &Shared,
    message: &MessageInFlight,
    args: &[String],
    queue_id: Option<&str>,
) -> Option<String> {
    let rules = &message.config.suppression;
    if rules.mode == crate::suppression::Mode::Off {
        return None;
    }
    let recipient = crate::model::address::strip_brackets(args.first()?);
    let sender_domain = crate::suppression::sender_domain_of(&message.mail_from)?;
    if crate::suppression::is_exempt(&recipient) {
        return None;
    }
    let now = message.arrived_at.unix_timestamp();
    let hit = shared
        .suppression
        .read(|index| index.lookup(&sender_domain, &recipient, now))?;
    let qid = queue_id.unwrap_or("NOQUEUE");
    let text = hit.reply_text();
    let (to, from) = (recipient.escape_debug(), message.mail_from.escape_debug());
    if rules.refuses_for(&message.policy.mode) {
        Counters::add(&shared.counters.suppression_refused, 1);
        info!("{qid}: refused RCPT <{to}> from <{from}>: {text}");
        return Some(text);
    }
    Counters::add(&shared.counters.suppression_would_refuse, 1);
    let why = match rules.mode {
        crate::suppression::Mode::Record => "suppression mode = record".to_string(),
        _ => format!(
            "not enforced for mode {}",
            message.policy.mode.escape_debug()
        ),
    };
    info!("{qid}: RCPT <{to}> from <{from}> let through ({why}): {text}");
    None
}

async fn header(
    shared: &Shared,
    cx: &mut Context<Session>,
    name: CString,
    value: CString,
) -> Status {
    let exact = cx.data.as_ref().is_some_and(|s| s.exact_leading_space);
    if let Some(message) = message_of(cx)
        && !message.add_header(name.as_bytes(), value.as_bytes(), exact)
    {
        Counters::add(&shared.counters.headers_dropped, 1);
    }
    go_on(cx, ProtoOpts::NOREPLY_HEADER)
}

async fn eoh(_: &Shared, cx: &mut Context<Session>) -> Status {
    if let Some(message) = message_of(cx) {
        message.spool.append(b"\r\n");
    }
    go_on(cx, ProtoOpts::NOREPLY_EOH)
}

async fn body(_: &Shared, cx: &mut Context<Session>, chunk: bytes::Bytes) -> Status {
    if let Some(message) = message_of(cx) {
        message.spool.append(&chunk);
    }
    go_on(cx, ProtoOpts::NOREPLY_BODY)
}

async fn eom(shared: &Shared, cx: &mut EomContext<Session>) -> Status {
    let queue_id = macro_value(&cx.macros, c"i");
    let qid = queue_id.as_deref().unwrap_or("NOQUEUE");
    let Some(session) = cx.data.as_mut() else {
        return Status::Continue;
    };
    let Some(mut message) = session.message.take() else {
        warn!("{qid}: end of message without MAIL FROM; nothing recorded");
        return Status::Continue;
    };
    let on_error = message.config.milter.on_error;
    let bcc = message
        .config
        .archive
        .bcc
        .clone()
        .filter(|_| !message.excluded);
    let dsn_rewrites = if session.can_rewrite_recipients {
        message.dsn_rewrites()
    } else {
        Vec::new()
    };
    let envelope = message.envelope(session, queue_id.clone());
    let spool = std::mem::replace(&mut message.spool, crate::archive::Spool::counting());
    let copy = copy_to_store(shared, qid, spool, &envelope);
    let mut failed = !record(shared, qid, envelope, copy).await;

    if let Some(bcc) = bcc
        && let Err(e) = cx.actions.add_recipient(format!("<{bcc}>")).await
    {
        error!("{qid}: cannot add archive recipient <{bcc}>: {e}");
        Counters::add(&shared.counters.archive_errors, 1);
        failed = true;
    }

    rewrite_for_receipts(cx, qid, dsn_rewrites).await;

    if failed && on_error == OnError::Tempfail {
        let _ = cx.reply.set_error_reply(
            "451",
            Some("4.3.0"),
            ["Message not archived, please try again later"],
        );
        return Status::Tempfail;
    }
    Status::Continue
}

/// The message's copy when it is to be archived (the store writer stores it with the others
/// of its batch); a copy over the size limit is only logged and counted.
fn copy_to_store(
    shared: &Shared,
    qid: &str,
    spool: crate::archive::Spool,
    envelope: &crate::model::envelope::Envelope,
) -> Option<crate::archive::Spool> {
    match envelope.archive_state {
        ArchiveState::Stored if shared.archive.is_some() => Some(spool),
        ArchiveState::TooLarge => {
            info!(
                "{qid}: {} bytes, over archive.max_message_size: recorded, not archived",
                envelope.size
            );
            Counters::add(&shared.counters.messages_too_large, 1);
            None
        }
        _ => None,
    }
}

/// Stores the copy and commits the envelope row (the recorder's group commit); false when
/// either failed (logged, counted and shown in the health of its part).
async fn record(
    shared: &Shared,
    qid: &str,
    envelope: crate::model::envelope::Envelope,
    copy: Option<crate::archive::Spool>,
) -> bool {
    use crate::milter::recorder::{CopyOutcome, RecordError};
    let (from, rcpts) = (envelope.mail_from.clone(), envelope.recipients.len());
    let copied = match shared.recorder.record(envelope, copy).await {
        Ok(recorded) => {
            debug!(
                "{qid}: recorded as message {}: from=<{from}> nrcpt={rcpts}",
                recorded.id
            );
            shared.health.succeeded(Part::Store);
            recorded.copy
        }
        Err(e @ RecordError::ArchiveSync(_)) => {
            error!("{qid}: {e}");
            shared.health.failed(Part::Archive, &e.to_string());
            Counters::add(&shared.counters.archive_errors, 1);
            return false;
        }
        Err(e) => {
            error!("{qid}: {e}");
            shared.health.failed(Part::Store, &e.to_string());
            Counters::add(&shared.counters.store_errors, 1);
            return false;
        }
    };
    match copied {
        CopyOutcome::None => true,
        CopyOutcome::Stored => {
            shared.health.succeeded(Part::Archive);
            true
        }
        CopyOutcome::Failed(e) => {
            error!("{qid}: archive copy not stored: {e}");
            shared.health.failed(Part::Archive, &e.to_string());
            false
        }
    }
}

/// `receipts = "dsn"`: deletes each recipient and adds it again with NOTIFY. The milter
/// protocol cannot change one recipient's arguments in place. A failure here costs only the
/// receipts, so it does not fail the message.
async fn rewrite_for_receipts(
    cx: &mut EomContext<Session>,
    qid: &str,
    rewrites: Vec<(String, String)>,
) {
    for (rcpt, args) in rewrites {
        let result = match cx.actions.delete_recipient(rcpt.as_str()).await {
            Ok(()) => cx
                .actions
                .add_recipient_ext(rcpt.as_str(), Some(args.as_str()))
                .await
                .map_err(|e| format!("deleted but not re-added with {args}: {e}")),
            Err(e) => Err(format!(
                "cannot delete it (it goes out without NOTIFY): {e}"
            )),
        };
        if let Err(e) = result {
            error!("{qid}: receipts = \"dsn\" for {rcpt}: {e}");
        }
    }
}

async fn abort(_: &Shared, cx: &mut Context<Session>) -> Status {
    if let Some(session) = cx.data.as_mut() {
        session.reset_message();
    }
    Status::Continue
}

fn message_of(cx: &mut Context<Session>) -> Option<&mut MessageInFlight> {
    cx.data.as_mut().and_then(|s| s.message.as_mut())
}

fn macro_value(macros: &indymilter::Macros, name: &CStr) -> Option<String> {
    macros
        .get(name)
        .map(|v| lossy(v.to_bytes()))
        .filter(|v| !v.is_empty())
}

/// Mail is not always UTF-8: keep what can be shown, never fail on it.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
