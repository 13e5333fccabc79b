//! The `mailtrail` command: parses arguments, handles signals and exit codes; the work is in the
//! library.

use clap::Parser;
use mailtrail::{
    cli::{self, Cli, CliError, Command},
    config::{Config, ConfigHandle, Source},
};
use std::{io::IsTerminal, process::ExitCode};
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
        return exit_code(cli::hash_password(&mut std::io::stdout().lock()));
    }

    let source = Source::resolve(args.config);
    let config = match source.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("mailtrail: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match args.command {
        Command::Run => return run(source, config, Serve::Daemon),
        Command::Dashboard => return run(source, config, Serve::Dashboard),
        _ => {}
    }
    // The server's UTC offset (UTC when it cannot be read), for local days and hours; read
    // while the process has one thread, as later it is refused as unsound.
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    exit_code(cli::execute(
        &source,
        &config,
        args.command,
        offset,
        &mut std::io::stdout().lock(),
    ))
}

/// 0, or 1 with the error on standard error; a closed pipe (`| head`) is no failure.
fn exit_code(result: Result<(), CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailtrail: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `run` serves until a signal.
enum Serve {
    /// `mailtrail run`: the milter, the follower, the jobs and this host's pages.
    Daemon,
    /// `mailtrail dashboard`: the pages over the fleet database.
    Dashboard,
}

fn run(source: Source, config: Config, serve: Serve) -> ExitCode {
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
        let served = match serve {
            Serve::Daemon => mailtrail::run(handle, local_offset, shutdown, ready).await,
            Serve::Dashboard => {
                ready();
                mailtrail::dashboard(handle, local_offset, shutdown).await
            }
        };
        served.map_err(|e| error!("{e}"))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(()) => ExitCode::FAILURE,
    }
}
