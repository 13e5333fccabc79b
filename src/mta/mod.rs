//! MTA control: ask postfix or sendmail to retry one queued message now, or to drop it.
//!
//! The commands are argument lists from `[mta]` (defaults per kind in
//! [`MtaConfig::defaults`]), run without a shell, with `{queue_id}` replaced. Queue ids come from
//! the MTA log, i.e. from outside: only `[A-Za-z0-9]+` is accepted, so an id can never become an
//! option (`-…`), a path (`/`, `..`) or a shell word. Failures are returned, never panicked on: the
//! policy tick logs them and tries again on its next round.

use crate::config::{MtaConfig, MtaKind, QUEUE_ID_PLACEHOLDER};
use std::{path::Path, process::Stdio, time::Duration};

/// Longest queue id accepted (postfix long ids are ~15 characters, sendmail's 14).
const MAX_QUEUE_ID: usize = 64;
/// Most stderr kept in an error: enough for the MTA's message, bounded against a chatty tool.
const MAX_STDERR: usize = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtaAction {
    /// Deliver the message now (postfix `postqueue -i`, sendmail `-qI`).
    Retry,
    /// Delete the message from the queue without a bounce.
    Remove,
}

impl MtaAction {
    pub fn as_str(self) -> &'static str {
        match self {
            MtaAction::Retry => "retry",
            MtaAction::Remove => "remove",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MtaError {
    #[error("refusing queue id {0:?}: only letters and digits are accepted (and not ALL)")]
    BadQueueId(String),
    #[error("{action} {queue_id}: cannot start `{program}`: {source}", action = action.as_str())]
    Spawn {
        action: MtaAction,
        queue_id: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} {queue_id}: `{command}` still running after {}; killed",
        humantime::format_duration(*after), action = action.as_str())]
    Timeout {
        action: MtaAction,
        queue_id: String,
        command: String,
        after: Duration,
    },
    #[error("{action} {queue_id}: `{command}` failed ({status}): {stderr}", action = action.as_str())]
    Failed {
        action: MtaAction,
        queue_id: String,
        command: String,
        status: std::process::ExitStatus,
        /// The command's standard error, trimmed and cut to a bounded length.
        stderr: String,
    },
}

/// Runs the configured retry and remove commands.
#[derive(Clone, Debug)]
pub struct MtaControl {
    config: MtaConfig,
}

impl MtaControl {
    pub fn new(config: MtaConfig) -> Self {
        MtaControl { config }
    }

    /// Asks the MTA to attempt delivery of `queue_id` now. Success means the request was
    /// accepted, not that an attempt happened: `postqueue -i` and `sendmail -qI` also exit 0
    /// for an id that is no longer queued. The MTA log shows the attempt.
    pub async fn retry(&self, queue_id: &str) -> Result<(), MtaError> {
        self.run(MtaAction::Retry, queue_id).await
    }

    /// Deletes `queue_id` from the MTA queue (the MTA sends no bounce for it). An id that is not
    /// queued is an error (postfix: postsuper's "Deleted: 0 messages"; sendmail default: no qf).
    pub async fn remove(&self, queue_id: &str) -> Result<(), MtaError> {
        self.run(MtaAction::Remove, queue_id).await
    }

    /// The argv that `action` runs for `queue_id`: the configured list with `{queue_id}`
    /// replaced and, for the MTA's own tools, `-c DIR` / `-C FILE` after the program name.
    pub fn command_for(&self, action: MtaAction, queue_id: &str) -> Result<Vec<String>, MtaError> {
        if !valid_queue_id(queue_id) {
            return Err(MtaError::BadQueueId(queue_id.to_string()));
        }
        let template = match action {
            MtaAction::Retry => &self.config.retry,
            MtaAction::Remove => &self.config.remove,
        };
        let mut argv: Vec<String> = template
            .iter()
            .map(|arg| arg.replace(QUEUE_ID_PLACEHOLDER, queue_id))
            .collect();
        if let (Some(dir), Some(program)) = (&self.config.config_dir, argv.first()) {
            let name = Path::new(program).file_name().and_then(|n| n.to_str());
            // Only the tools known to take the option get it; a custom script is left alone.
            let flag = match (self.config.kind, name) {
                (MtaKind::Postfix, Some("postqueue" | "postsuper")) => Some("-c"),
                (MtaKind::Sendmail, Some("sendmail")) => Some("-C"),
                _ => None,
            };
            if let Some(flag) = flag {
                let dir = dir.to_string_lossy().into_owned();
                argv.splice(1..1, [flag.to_string(), dir]);
            }
        }
        Ok(argv)
    }

    async fn run(&self, action: MtaAction, queue_id: &str) -> Result<(), MtaError> {
        let argv = self.command_for(action, queue_id)?;
        let command = argv.join(" ");
        let child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // A command that outlives its timeout is killed when the future is dropped.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| MtaError::Spawn {
                action,
                queue_id: queue_id.to_string(),
                program: argv[0].clone(),
                source,
            })?;
        let output = match tokio::time::timeout(self.config.timeout, child.wait_with_output()).await
        {
            Ok(Ok(output)) => output,
            Ok(Err(source)) => {
                return Err(MtaError::Spawn {
                    action,
                    queue_id: queue_id.to_string(),
                    program: argv[0].clone(),
                    source,
                });
            }
            Err(_) => {
                return Err(MtaError::Timeout {
                    action,
                    queue_id: queue_id.to_string(),
                    command,
                    after: self.config.timeout,
                });
            }
        };
        let stderr = bounded(&String::from_utf8_lossy(&output.stderr));
        if !output.status.success() || reports_nothing_deleted(action, &argv, &stderr) {
            return Err(MtaError::Failed {
                action,
                queue_id: queue_id.to_string(),
                command,
                status: output.status,
                stderr,
            });
        }
        Ok(())
    }
}

/// `postsuper -d` exits 0 also when the id is not queued; its "Deleted: 0 messages" is the only
/// sign, and the caller must not believe a message gone that was never found.
fn reports_nothing_deleted(action: MtaAction, argv: &[String], stderr: &str) -> bool {
    action == MtaAction::Remove
        && Path::new(&argv[0]).file_name().and_then(|n| n.to_str()) == Some("postsuper")
        && stderr.contains("Deleted: 0 messages")
}

/// Queue ids of both MTAs are letters and digits; anything else is refused, and so is `ALL`,
/// which `postsuper -d` takes as "every queued message".
pub fn valid_queue_id(queue_id: &str) -> bool {
    !queue_id.is_empty()
        && !queue_id.eq_ignore_ascii_case("ALL")
        && queue_id.len() <= MAX_QUEUE_ID
        && queue_id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn bounded(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_STDERR) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests;
