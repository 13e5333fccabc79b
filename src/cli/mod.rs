//! Command-line interface: argument definitions and the inspection commands.

mod archive;
mod config;
mod docs;
mod doctor;
mod import;
mod policy;
mod report;
mod stats;
mod suppress;
mod users;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub use archive::archive_command;
pub use config::{check_config, hash_password};
pub use import::{classify, import};
pub use policy::policy_show;
pub use report::report_command;
pub use stats::{StatusList, StatusSource, stats_command, status_command};
pub use suppress::{SuppressCommand, suppress_command};
pub use users::{UserCommand, user_command};

#[derive(Debug, Parser)]
#[command(
    name = "mailtrail",
    version,
    about = "Delivery companion for sendmail and postfix"
)]
pub struct Cli {
    /// Configuration file [default: /etc/mailtrail/mailtrail.toml if present, else built-in defaults]
    #[arg(short, long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log filter, as in RUST_LOG (e.g. "debug" or "mailtrail=debug")
    #[arg(long, global = true, value_name = "FILTER", env = "MAILTRAIL_LOG")]
    pub log: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: the milter and the archive sweep
    Run,
    /// Serve the pages over the whole fleet, read from the [fleet] database (no milter, no
    /// store of its own)
    Dashboard,
    /// Check the configuration file and print the settings in force
    CheckConfig,
    /// Inspect, export and expire archived messages
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Backfill the store from MTA log files (plain or .gz, in the order given)
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// List the lines no grammar recognised
        #[arg(long)]
        show_unknown: bool,
    },
    /// Print the bounce category of each line "DSN<TAB>REPLY TEXT" (arguments or standard input)
    Classify { lines: Vec<String> },
    /// Read a password from standard input (or the terminal) and print its argon2id hash for
    /// a [[web.user]] password_hash
    HashPassword,
    /// Print the error and activity counters
    Counters {
        #[arg(long)]
        json: bool,
    },
    /// Explain retry policies
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// List messages as the status pages do: the last 100 of today (default), today, or the
    /// last 7 days
    Status {
        /// The last 100 messages of today (the default)
        #[arg(long, group = "list")]
        live: bool,
        /// Every message of today
        #[arg(long, group = "list")]
        today: bool,
        /// Every message of today and the 6 days before
        #[arg(long, group = "list")]
        week: bool,
        /// Read the fleet database ([fleet] database): every host's messages
        #[arg(long)]
        fleet: bool,
        /// Only this MTA host's messages (with --fleet)
        #[arg(long, requires = "fleet", value_name = "NAME")]
        host: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the statistics of a period (summary, by month, day, weekday, hour, host, sender,
    /// SMTP errors, bounce categories). Refreshes the statistics first when the last refresh
    /// is older than [web] stats_refresh
    Stats {
        /// this-month, last-month, year (this one), YYYY-MM, YYYY or YYYY-MM-DD..YYYY-MM-DD
        #[arg(long, default_value = "this-month")]
        period: String,
        /// Every host's statistics, summed, from the fleet database ([fleet] database), with a
        /// section by MTA host
        #[arg(long)]
        fleet: bool,
        /// Only this MTA host's statistics (with --fleet)
        #[arg(long, requires = "fleet", value_name = "NAME")]
        host: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The weekly summary e-mail
    #[command(subcommand)]
    Report(ReportCommand),
    /// The suppression list: recipients a sender domain's mail is refused for at RCPT
    #[command(subcommand)]
    Suppress(SuppressCommand),
    /// Users of the pages kept in the state directory (beside [[web.user]] of the file)
    #[command(subcommand)]
    User(UserCommand),
    /// Check how mailtrail is wired to the MTA and the machine; print only what is wrong, each
    /// with the line to paste (exit 1), or that nothing is (exit 0)
    Doctor {
        /// The user mailtrail runs as [default: the installed unit's User=, else you]
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// Write the man pages and shell completions into DIR (for packaging)
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Build the weekly summary and print it, write it to a file or send it now (a manual
    /// send does not count as the scheduled one)
    Weekly(WeeklyArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("action").required(true).multiple(true))]
pub struct WeeklyArgs {
    /// Print the text part to standard output
    #[arg(long, group = "action")]
    pub print: bool,
    /// Write the whole message (text, HTML, charts) to FILE, to open in a mail client
    #[arg(long, value_name = "FILE", group = "action")]
    pub eml: Option<PathBuf>,
    /// Send it through the SMTP server of [notify] smtp
    #[arg(long, group = "action")]
    pub send: bool,
    /// The report's day: it covers the 7 days before [default: the last scheduled day]
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<String>,
    /// Recipients instead of report.recipients
    #[arg(long, value_name = "ADDR")]
    pub to: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The mode, timings and receipts a sender gets, and which [[sender]] entry decided them
    Show {
        /// The envelope sender (MAIL FROM), with or without <>; "<>" is the null sender
        sender: String,
        /// The SASL user the message was submitted as
        #[arg(long, value_name = "USER")]
        auth: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// List recorded messages, newest first
    Ls(LsArgs),
    /// Show one message by id or queue id
    Show {
        /// Message id (from `ls`) or MTA queue id
        id: String,
        /// The archived copy exactly as received
        #[arg(long, conflicts_with = "headers")]
        raw: bool,
        /// Only the archived copy's header block
        #[arg(long, conflicts_with = "json")]
        headers: bool,
        /// The envelope and every recipient's delivery state and attempts, as JSON
        #[arg(long, conflicts_with = "raw")]
        json: bool,
    },
    /// Export archived copies as .eml files or one mbox file
    Export {
        /// Message ids or queue ids
        #[arg(required = true)]
        ids: Vec<String>,
        /// Write DIR/<name>.eml per message
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "mbox",
            conflicts_with = "mbox"
        )]
        eml: Option<PathBuf>,
        /// Append all messages to one mbox file
        #[arg(long, value_name = "FILE")]
        mbox: Option<PathBuf>,
    },
    /// Delete copies older than archive.retention now (the daemon does this every hour)
    Expire {
        /// Only list what would be deleted
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only messages that arrived within this long (e.g. 1d, 2h)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Sender address contains this text
    #[arg(long, value_name = "ADDR")]
    pub from: Option<String>,
    /// A recipient address contains this text
    #[arg(long, value_name = "ADDR")]
    pub to: Option<String>,
    /// Subject contains this text
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,
    /// At most this many messages
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// An error for the operator, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("--fleet reads the fleet database: configure [fleet] database")]
    NoFleet,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    #[error(transparent)]
    Sweep(#[from] crate::archive::sweep::SweepError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Report(#[from] crate::notify::weekly::ReportError),
    #[error(transparent)]
    Import(#[from] crate::tracking::import::ImportError),
    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error("{0} {things} to fix", things = if *.0 == 1 { "thing" } else { "things" })]
    Findings(usize),
}

/// Replaces control characters so text from mail cannot drive the terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `mailtrail counters`: every counter, zeros included.
pub fn counters_command(
    config: &crate::config::Config,
    json: bool,
    out: &mut impl std::io::Write,
) -> Result<(), CliError> {
    let mut counters: std::collections::BTreeMap<String, u64> =
        crate::model::counters::Counters::NAMES
            .iter()
            .chain(crate::model::counters::LOG_COUNTERS)
            .map(|n| (n.to_string(), 0))
            .collect();
    if config.store.path.exists() {
        let store = crate::store::Store::open(&config.store.path)?;
        counters.extend(store.counters()?);
        if config.fleet.is_some() {
            let lag = store.outbox_lag()?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            counters.insert("fleet_lag_records".into(), lag.records);
            counters.insert("fleet_lag_seconds".into(), lag.seconds(now));
        }
    }
    if json {
        serde_json::to_writer_pretty(&mut *out, &counters).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        for (name, value) in &counters {
            writeln!(out, "{name:<22} {value}")?;
        }
    }
    Ok(())
}

/// Runs a command that reads the store or the files and prints its result (every command but
/// `run` and `hash-password`). `offset` is the server's UTC offset, read by the caller while
/// the process has one thread.
pub fn execute(
    source: &crate::config::Source,
    config: &crate::config::Config,
    command: Command,
    offset: time::UtcOffset,
    out: &mut impl std::io::Write,
) -> Result<(), CliError> {
    let now = time::OffsetDateTime::now_utc();
    match command {
        Command::Run | Command::Dashboard | Command::HashPassword => {
            Err(CliError::Usage("not a command that reads the store".into()))
        }
        Command::CheckConfig => check_config(source, config, out),
        Command::Archive(command) => archive_command(config, command, out),
        Command::Import {
            files,
            show_unknown,
        } => import(config, &files, show_unknown, offset, out).map(|_| ()),
        Command::Classify { lines } => classify(config, &lines, out),
        Command::Report(command) => report_command(config, command, offset, out),
        Command::Suppress(command) => suppress_command(config, command, offset, out),
        Command::User(command) => user_command(config, command, out),
        Command::GenerateDocs { dir } => docs::generate_docs(&dir, out),
        Command::Doctor { user } => doctor::doctor(config, user.as_deref(), out),
        Command::Counters { json } => counters_command(config, json, out),
        Command::Status {
            today,
            week,
            fleet,
            host,
            json,
            ..
        } => {
            let list = match (today, week) {
                (true, _) => StatusList::Today,
                (_, true) => StatusList::Week,
                _ => StatusList::Live,
            };
            let source = match fleet {
                true => StatusSource::Fleet { host },
                false => StatusSource::Local,
            };
            status_command(config, list, source, json, offset, now, out)
        }
        Command::Stats {
            period,
            fleet,
            host,
            json,
        } => {
            let source = match fleet {
                true => StatusSource::Fleet { host },
                false => StatusSource::Local,
            };
            stats_command(config, &period, source, json, offset, now, out)
        }
        Command::Policy(PolicyCommand::Show { sender, auth, json }) => {
            policy_show(config, &sender, auth.as_deref(), json, out)
        }
    }
}
