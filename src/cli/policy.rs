//! `mailtrail policy show`: which retry policy a sender gets, and why.

use super::{CliError, printable};
use crate::{
    config::{Config, MatchedRule, Receipts},
    policy::is_null_sender,
};
use std::io::Write;

/// What `policy show --json` prints.
#[derive(Debug, serde::Serialize)]
struct Shown<'a> {
    sender: &'a str,
    sasl_user: Option<&'a str>,
    /// `null`: no `[[sender]]` entry matched, the default mode applies.
    rule: Option<MatchedRule>,
    mode: &'a str,
    #[serde(with = "humantime_serde")]
    retry_every: std::time::Duration,
    /// `null`: this mode never sends a delay warning.
    #[serde(with = "humantime_serde::option")]
    warn_after: Option<std::time::Duration>,
    #[serde(with = "humantime_serde")]
    give_up_after: std::time::Duration,
    receipts: Receipts,
    /// False for the null sender and MAILER-DAEMON: they never get any notice.
    notices: bool,
}

pub fn policy_show(
    config: &Config,
    sender: &str,
    sasl_user: Option<&str>,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let sender = crate::model::address::strip_brackets(sender);
    let explained = config.explain_sender(&sender, sasl_user);
    let mode = explained.policy.mode.as_str();
    let policy = config
        .policy(mode)
        .ok_or_else(|| CliError::NotFound(format!("mode `{mode}` is not defined")))?;
    let shown = Shown {
        sender: &sender,
        sasl_user,
        rule: explained.rule,
        mode,
        retry_every: policy.retry_every,
        warn_after: policy.warn_after,
        give_up_after: policy.give_up_after,
        receipts: explained.policy.receipts,
        notices: !is_null_sender(&sender),
    };
    if json {
        serde_json::to_writer_pretty(&mut *out, &shown).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let duration = |d| humantime::format_duration(d).to_string();
    let shown_sender = if sender.is_empty() {
        "<>".to_string()
    } else {
        printable(&sender)
    };
    writeln!(out, "sender:        {shown_sender}")?;
    if let Some(user) = sasl_user {
        writeln!(out, "sasl user:     {}", printable(user))?;
    }
    match &shown.rule {
        Some(rule) => writeln!(
            out,
            "matched:       [[sender]] #{} ({})",
            rule.index,
            printable(&rule.matcher)
        )?,
        None => writeln!(out, "matched:       default (no [[sender]] entry)")?,
    }
    writeln!(out, "mode:          {mode}")?;
    writeln!(out, "retry every:   {}", duration(shown.retry_every))?;
    let warn = shown.warn_after.map_or("never".to_string(), duration);
    writeln!(out, "warn after:    {warn}")?;
    writeln!(out, "give up after: {}", duration(shown.give_up_after))?;
    let receipts = match shown.receipts {
        Receipts::Off => "off",
        Receipts::On => "on (mailtrail sends a receipt when all recipients are final)",
        Receipts::Dsn => "dsn (the milter asks for NOTIFY=SUCCESS,FAILURE,DELAY)",
    };
    writeln!(out, "receipts:      {receipts}")?;
    if !shown.notices {
        writeln!(
            out,
            "notices:       never (null sender or MAILER-DAEMON: no warning, expiry notice or receipt)"
        )?;
    }
    Ok(())
}
