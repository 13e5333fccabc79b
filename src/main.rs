//! The `mailtrail` command: parses arguments, handles signals and exit codes; the work is in the
//! library.

use clap::Parser;
use mailtrail::{
    cli::{self, Cli, CliError, Command},
    config::{Config, ConfigHandle, Source},
};
use std::{
    io::{IsTerminal, Write},
    process::ExitCode,
};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

/// mimalloc: an import allocates a few strings per log line on its parsing thread and frees
/// them on the writing thread, which glibc's allocator made a tenth of the writer's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sysexits.h EX_CONFIG: systemd should not restart into the same bad configuration.
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let args = Cli::parse();
    let filter = args.log.clone().unwrap_or_else(|| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    // Needs no configuration: it prints a value to put into one.
    if let Command::HashPassword = args.command {
        return hash_password();
    }

    let source = Source::resolve(args.config);
    let config = match source.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mailtrail: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };

    let result = match args.command {
        Command::Run => return run(source, config),
        Command::CheckConfig => check_config(&source, &config),
        Command::Archive(command) => {
            cli::archive_command(&config, command, &mut std::io::stdout().lock())
        }
        Command::Import {
            files,
            show_unknown,
        } => cli::import(
            &config,
            &files,
            show_unknown,
            local_offset(),
            &mut std::io::stdout().lock(),
        )
        .map(|_| ()),
        Command::Classify { lines } => {
            cli::classify(&config, &lines, &mut std::io::stdout().lock())
        }
        Command::Report(command) => {
            let local_offset =
                time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
            cli::report_command(
                &config,
                command,
                local_offset,
                &mut std::io::stdout().lock(),
            )
        }
        Command::HashPassword => unreachable!("handled before the configuration is read"),
        Command::Counters { json } => {
            cli::counters_command(&config, json, &mut std::io::stdout().lock())
        }
        Command::Status {
            today, week, json, ..
        } => {
            let list = match (today, week) {
                (true, _) => cli::StatusList::Today,
                (_, true) => cli::StatusList::Week,
                _ => cli::StatusList::Live,
            };
            cli::status_command(
                &config,
                list,
                json,
                local_offset(),
                time::OffsetDateTime::now_utc(),
                &mut std::io::stdout().lock(),
            )
        }
        Command::Stats { period, json } => cli::stats_command(
            &config,
            &period,
            json,
            local_offset(),
            time::OffsetDateTime::now_utc(),
            &mut std::io::stdout().lock(),
        ),
        Command::Policy(cli::PolicyCommand::Show { sender, auth, json }) => cli::policy_show(
            &config,
            &sender,
            auth.as_deref(),
            json,
            &mut std::io::stdout().lock(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailtrail: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The server's UTC offset (UTC when it cannot be read): local days and hours of statistics and
/// lists.
fn local_offset() -> time::UtcOffset {
    time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC)
}

fn hash_password() -> ExitCode {
    let read = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ")
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    };
    let password = match read {
        Ok(p) => p.trim_end_matches(['\r', '\n']).to_string(),
        Err(e) => {
            eprintln!("mailtrail: cannot read the password: {e}");
            return ExitCode::FAILURE;
        }
    };
    if password.is_empty() {
        eprintln!("mailtrail: empty password");
        return ExitCode::FAILURE;
    }
    match mailtrail::web::hash_password(&password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mailtrail: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(source: &Source, config: &Config) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
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
            mailtrail::config::MtaKind::Postfix => "postfix",
            mailtrail::config::MtaKind::Sendmail => "sendmail",
        },
        mta.retry.join(" "),
        mta.remove.join(" "),
        mta.config_dir
            .as_ref()
            .map_or(String::new(), |d| format!(", config {}", d.display()))
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

fn run(source: Source, config: Config) -> ExitCode {
    // Read while the process has one thread: later it is refused as unsound.
    let local_offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mailtrail: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handle = ConfigHandle::new(source, config);
    let result = runtime.block_on(async {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            error!("cannot install signal handlers");
            return Err(());
        };
        let reloader = handle.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                match reloader.reload() {
                    Ok(restart) if restart.is_empty() => info!("configuration reloaded"),
                    Ok(restart) => warn!(
                        "configuration reloaded; {} take effect after a restart",
                        restart.join(", ")
                    ),
                    Err(e) => error!("configuration not reloaded, keeping the running one: {e}"),
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM: finishing messages in flight"),
                _ = int.recv() => info!("SIGINT: finishing messages in flight"),
            }
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        };
        let ready = || {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        };
        mailtrail::run(handle, local_offset, shutdown, ready)
            .await
            .map_err(|e| error!("{e}"))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    }
}
