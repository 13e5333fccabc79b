//! `mailtrail user`: the users of the pages kept in the state directory (`users.toml`). Users
//! of the configuration file (`[[web.user]]`) are changed there; a name in both is an error.

use super::{CliError, config::read_password};
use crate::config::{
    Config, WebUser,
    users::{Users, UsersError},
};
use std::io::Write;

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is asked for on a terminal, else read from standard input
    Add {
        name: String,
        /// A sender domain the user sees (repeat for several); none: every message
        #[arg(long = "domain", value_name = "DOMAIN")]
        domains: Vec<String>,
    },
    /// Set a user's password (asked for, or read from standard input)
    Passwd { name: String },
    /// Remove a user
    Remove { name: String },
    /// The users of the pages: the state directory's and the configuration file's
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(serde::Serialize)]
struct Listed<'a> {
    name: &'a str,
    /// Empty: every message.
    domains: &'a [String],
    /// `users.toml` or the configuration file.
    defined_in: String,
}

fn users_error(e: UsersError) -> CliError {
    CliError::Usage(e.to_string())
}

pub fn user_command(
    config: &Config,
    command: UserCommand,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let path = Users::path_in(&config.state_dir);
    let mut users = Users::load(&path).map_err(users_error)?;
    let in_config = |name: &str| -> Result<(), CliError> {
        if !config.web.users.iter().any(|u| u.name == name) {
            return Ok(());
        }
        let source = config.source.clone().unwrap_or_default();
        let line = crate::config::web_user_line(&source, name).unwrap_or(0);
        Err(users_error(UsersError::InConfig {
            name: name.to_string(),
            config: source,
            line,
        }))
    };
    let hash = |password: String| {
        crate::config::hash_password(&password).map_err(|e| CliError::Usage(e.to_string()))
    };
    match command {
        UserCommand::Add { name, domains } => {
            in_config(&name)?;
            if users.find(&name).is_some() {
                return Err(users_error(UsersError::Exists { name }));
            }
            let domains = domains
                .iter()
                .map(|d| {
                    crate::suppression::parse_sender_domain(d)
                        .ok()
                        .filter(|d| d != crate::suppression::ALL_SENDERS)
                        .ok_or_else(|| CliError::Usage(format!("`{d}` is not a domain")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let password_hash = hash(read_password()?)?;
            users
                .add(WebUser {
                    name: name.clone(),
                    password_hash,
                    domains,
                })
                .map_err(users_error)?;
            users.save().map_err(users_error)?;
            writeln!(out, "user {name} added to {}", path.display())?;
        }
        UserCommand::Passwd { name } => {
            in_config(&name)?;
            if users.find(&name).is_none() {
                return Err(users_error(UsersError::Unknown { name, path }));
            }
            let password_hash = hash(read_password()?)?;
            users
                .set_password(&name, password_hash)
                .map_err(users_error)?;
            users.save().map_err(users_error)?;
            writeln!(out, "password of {name} changed")?;
        }
        UserCommand::Remove { name } => {
            in_config(&name)?;
            users.remove(&name).map_err(users_error)?;
            users.save().map_err(users_error)?;
            writeln!(out, "user {name} removed")?;
        }
        UserCommand::List { json } => {
            let config_file = config
                .source
                .as_ref()
                .map_or("the configuration".into(), |p| p.display().to_string());
            let listed: Vec<Listed> = users
                .users()
                .iter()
                .map(|u| (u, path.display().to_string()))
                .chain(config.web.users.iter().map(|u| (u, config_file.clone())))
                .map(|(u, defined_in)| Listed {
                    name: &u.name,
                    domains: &u.domains,
                    defined_in,
                })
                .collect();
            if json {
                serde_json::to_writer_pretty(&mut *out, &listed).map_err(std::io::Error::from)?;
                writeln!(out)?;
            } else {
                for u in &listed {
                    let sees = match u.domains.is_empty() {
                        true => "every message".to_string(),
                        false => u.domains.join(", "),
                    };
                    writeln!(out, "{:<20} {:<40} {}", u.name, sees, u.defined_in)?;
                }
            }
        }
    }
    Ok(())
}
