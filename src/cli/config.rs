//! `mailtrail check-config` (the settings in force) and `mailtrail hash-password` (a value for
//! `[[web.user]] password_hash`).

use super::CliError;
use crate::config::{Config, MtaKind, Source};
use std::io::{BufRead, IsTerminal, Write};

/// `mailtrail check-config`: where the configuration came from and the settings that matter
/// most, once it was read without error.
pub fn check_config(
    source: &Source,
    config: &Config,
    out: &mut impl Write,
) -> Result<(), CliError> {
    match source {
        Source::File(path) => writeln!(out, "{}: OK", path.display())?,
        Source::Defaults => writeln!(out, "no configuration file: built-in defaults")?,
    }
    writeln!(out, "milter.listen = {}", config.milter.listen)?;
    writeln!(out, "store = {}", config.store.path.display())?;
    writeln!(out, "archive = {}", config.archive.dir.display())?;
    let mta = &config.mta;
    writeln!(
        out,
        "mta {}: retry `{}`, remove `{}`{}",
        match mta.kind {
            MtaKind::Postfix => "postfix",
            MtaKind::Sendmail => "sendmail",
        },
        mta.retry.join(" "),
        mta.remove.join(" "),
        mta.config_dir
            .as_ref()
            .map_or(String::new(), |d| format!(", config {}", d.display()))
    )?;
    let s = &config.suppression;
    writeln!(
        out,
        "suppression: {}; learned from {}, full-mailbox after {}, kept {}; enforced for {}",
        serde_json::to_value(s.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        s.categories
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        s.full_mailbox_after,
        humantime::format_duration(s.keep),
        match s.modes.is_empty() {
            true => "every mode".to_string(),
            false => s.modes.join(", "),
        }
    )?;
    for (mode, policy) in &config.policies {
        let warn = policy.warn_after.map_or("never".into(), |d| {
            humantime::format_duration(d).to_string()
        });
        writeln!(
            out,
            "policy {mode}: retry every {}, warn after {warn}, give up after {}",
            humantime::format_duration(policy.retry_every),
            humantime::format_duration(policy.give_up_after)
        )?;
    }
    Ok(())
}

/// `mailtrail hash-password`: asks for the password on a terminal, else reads one line of
/// standard input, and prints its argon2id hash.
pub fn hash_password(out: &mut impl Write) -> Result<(), CliError> {
    let hash = crate::config::hash_password(&read_password()?)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    writeln!(out, "{hash}")?;
    Ok(())
}

/// A password from the terminal (asked for), else one line of standard input.
pub(super) fn read_password() -> Result<String, CliError> {
    let read = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ")
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    };
    let password = read
        .map_err(|e| CliError::Usage(format!("cannot read the password: {e}")))?
        .trim_end_matches(['\r', '\n'])
        .to_string();
    if password.is_empty() {
        return Err(CliError::Usage("empty password".into()));
    }
    Ok(password)
}
