//! `mailtrail doctor`: checks how mailtrail is wired to its MTA and to the machine, and prints
//! only what is wrong — each finding with the line to paste — then a summary. Postfix is read
//! with `postconf` (honouring `[mta] config_dir`), sendmail from its `.cf` file.

use super::CliError;
use crate::config::{Config, ListenAddr, LogSource, MtaKind};
use std::{
    collections::BTreeMap,
    io::Write,
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

/// Something wrong, and what to do about it.
#[derive(Debug, PartialEq, Eq)]
pub struct Finding {
    pub what: String,
    /// The line to paste (a command or a configuration line).
    pub fix: String,
}

fn finding(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        what: what.into(),
        fix: fix.into(),
    }
}

pub fn doctor(config: &Config, out: &mut impl Write) -> Result<(), CliError> {
    let mut findings = Vec::new();
    let mta = match config.mta.kind {
        MtaKind::Postfix => postfix(config, &mut findings),
        MtaKind::Sendmail => sendmail(config, &mut findings),
    };
    machine(config, &mut findings);
    for f in &findings {
        writeln!(out, "✗ {}\n    {}", f.what, f.fix)?;
    }
    match findings.len() {
        0 => {
            writeln!(
                out,
                "nothing wrong: {mta} is wired to mailtrail on {}",
                config.milter.listen
            )?;
            Ok(())
        }
        n => Err(CliError::Findings(n)),
    }
}

/// The postfix checks; returns what was checked, for the summary.
fn postfix(config: &Config, findings: &mut Vec<Finding>) -> String {
    let dir = config
        .mta
        .config_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/etc/postfix"));
    let names = [
        "smtpd_milters",
        "non_smtpd_milters",
        "milter_default_action",
        "delay_warning_time",
        "maximal_queue_lifetime",
        "bounce_queue_lifetime",
    ];
    let output = Command::new("postconf")
        .arg("-c")
        .arg(&dir)
        .arg("-x")
        .args(names)
        .output();
    let params = match output {
        Ok(out) if out.status.success() => parse_postconf(&String::from_utf8_lossy(&out.stdout)),
        Ok(out) => {
            findings.push(finding(
                format!(
                    "looked for postfix's configuration in {}: postconf says {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                "set [mta] config_dir = \"/path/to/postfix\" (or kind = \"sendmail\") in mailtrail.toml",
            ));
            return format!("postfix ({})", dir.display());
        }
        Err(_) => {
            findings.push(finding(
                "looked for postfix: no `postconf` on this machine",
                "set [mta] kind = \"sendmail\" in mailtrail.toml if sendmail is the MTA, or install postfix",
            ));
            return "postfix".into();
        }
    };
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let postconf = |line: &str| format!("postconf -c {} -e '{line}'", dir.display());
    for name in ["smtpd_milters", "non_smtpd_milters"] {
        if !milters_reach(get(name), &config.milter.listen) {
            let listen = postfix_address(&config.milter.listen);
            let value = match get(name).trim() {
                "" => listen,
                other => format!("{other}, {listen}"),
            };
            findings.push(finding(
                format!(
                    "{name} does not reach mailtrail on {} (it is \"{}\")",
                    config.milter.listen,
                    get(name)
                ),
                postconf(&format!("{name} = {value}")),
            ));
        }
    }
    if get("milter_default_action") != "accept" {
        findings.push(finding(
            format!(
                "milter_default_action is \"{}\": while mailtrail is down postfix does not let mail through",
                get("milter_default_action")
            ),
            postconf("milter_default_action = accept"),
        ));
    }
    if config.notify.enabled {
        let longest = config.longest_give_up_after();
        if postfix_duration(get("delay_warning_time"), 'h') != Some(Duration::ZERO) {
            findings.push(finding(
                format!(
                    "delay_warning_time is \"{}\": postfix warns senders too, beside mailtrail's notices",
                    get("delay_warning_time")
                ),
                postconf("delay_warning_time = 0h"),
            ));
        }
        for name in ["maximal_queue_lifetime", "bounce_queue_lifetime"] {
            let lifetime = postfix_duration(get(name), 'd');
            if lifetime.is_none_or(|l| l <= longest) {
                let hours = longest.as_secs().div_ceil(3600) + 1;
                findings.push(finding(
                    format!(
                        "{name} is \"{}\": postfix gives up before mailtrail's longest give_up_after ({})",
                        get(name),
                        humantime::format_duration(longest)
                    ),
                    postconf(&format!("{name} = {hours}h")),
                ));
            }
        }
    }
    format!("postfix ({})", dir.display())
}

/// `name = value` lines of `postconf`.
fn parse_postconf(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// How postfix writes mailtrail's listen address in a milter list.
fn postfix_address(listen: &ListenAddr) -> String {
    match listen {
        ListenAddr::Inet(addr) => format!("inet:{}:{}", addr.ip(), addr.port()),
        ListenAddr::Unix(path) => format!("unix:{}", path.display()),
    }
}

/// Whether a postfix milter list (`inet:host:port`, `unix:/path`, `{ inet:… , … }`, separated
/// by commas or spaces) names mailtrail's address.
fn milters_reach(list: &str, listen: &ListenAddr) -> bool {
    list.split(|c: char| c == ',' || c.is_whitespace() || c == '{' || c == '}')
        .filter(|t| !t.is_empty())
        .any(|token| match (listen, token.split_once(':')) {
            (ListenAddr::Inet(addr), Some(("inet", rest))) => {
                let Some((host, port)) = rest.rsplit_once(':') else {
                    return false;
                };
                port.parse() == Ok(addr.port()) && host_is(host, addr)
            }
            (ListenAddr::Unix(path), Some(("unix" | "local", rest))) => Path::new(rest) == path,
            _ => false,
        })
}

/// Whether `host` (a name or an address, maybe in brackets) reaches `addr`'s address.
fn host_is(host: &str, addr: &SocketAddr) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if addr.ip().is_unspecified() {
        return true;
    }
    (host, addr.port())
        .to_socket_addrs()
        .is_ok_and(|mut found| found.any(|a| a.ip() == addr.ip()))
}

/// A postfix time value (`0`, `5d`, `4h`, `30m`, `10s`, `1w`); a bare number is in `unit`.
fn postfix_duration(value: &str, unit: char) -> Option<Duration> {
    let value = value.trim();
    let (number, unit) = match value.chars().last()? {
        c if c.is_ascii_alphabetic() => (&value[..value.len() - 1], c),
        _ => (value, unit),
    };
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n * seconds))
}

/// The sendmail checks: an `X` line for mailtrail's socket without `F=T` or `F=R` (which would
/// tempfail or reject mail while mailtrail is down).
fn sendmail(config: &Config, findings: &mut Vec<Finding>) -> String {
    let cf = config
        .mta
        .config_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/etc/mail/sendmail.cf"));
    let text = match std::fs::read_to_string(&cf) {
        Ok(text) => text,
        Err(e) => {
            findings.push(finding(
                format!("looked for sendmail: cannot read {} ({e})", cf.display()),
                "set [mta] config_dir = \"/path/to/sendmail.cf\" (or kind = \"postfix\") in mailtrail.toml",
            ));
            return "sendmail".into();
        }
    };
    let socket = match &config.milter.listen {
        ListenAddr::Inet(addr) => format!("inet:{}@{}", addr.port(), addr.ip()),
        ListenAddr::Unix(path) => format!("unix:{}", path.display()),
    };
    let line = text.lines().find(|l| {
        l.starts_with('X')
            && l.split(',').any(|f| {
                f.trim()
                    .strip_prefix("S=")
                    .is_some_and(|s| sendmail_socket_is(s, &config.milter.listen))
            })
    });
    match line {
        None => findings.push(finding(
            format!("{} has no X line for mailtrail on {socket}", cf.display()),
            format!("INPUT_MAIL_FILTER(`mailtrail', `S={socket}, T=S:30s;R:5m;E:5m')dnl   (sendmail.mc, then make -C /etc/mail)"),
        )),
        Some(line) => {
            let flags = line
                .split(',')
                .find_map(|f| f.trim().strip_prefix("F="))
                .unwrap_or("");
            if flags.contains('T') || flags.contains('R') {
                findings.push(finding(
                    format!("the X line for mailtrail has F={flags}: mail is refused while mailtrail is down"),
                    format!("INPUT_MAIL_FILTER(`mailtrail', `S={socket}, T=S:30s;R:5m;E:5m')dnl   (no F=)"),
                ));
            }
        }
    }
    format!("sendmail ({})", cf.display())
}

fn sendmail_socket_is(spec: &str, listen: &ListenAddr) -> bool {
    match (listen, spec.split_once(':')) {
        (ListenAddr::Inet(addr), Some(("inet", rest))) => rest
            .split_once('@')
            .is_some_and(|(port, host)| port.parse() == Ok(addr.port()) && host_is(host, addr)),
        (ListenAddr::Unix(path), Some(("unix" | "local", rest))) => Path::new(rest) == path,
        _ => false,
    }
}

/// The machine: the log source, the milter socket, the state directory, the web port.
fn machine(config: &Config, findings: &mut Vec<Finding>) {
    if let LogSource::File(path) = &config.maillog.source {
        match std::fs::File::open(path).and_then(|f| f.metadata()) {
            Err(e) => findings.push(finding(
                format!("the MTA log {} cannot be read ({e})", path.display()),
                "[maillog] source = \"file:/var/log/mail.log\"   (or \"journald\"), and make it readable by the mailtrail user",
            )),
            Ok(meta) => {
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .unwrap_or_default();
                if age > Duration::from_secs(24 * 3600) {
                    findings.push(finding(
                        format!(
                            "the MTA log {} has not changed for {}: is the MTA logging elsewhere?",
                            path.display(),
                            humantime::format_duration(Duration::from_secs(age.as_secs()))
                        ),
                        "[maillog] source = \"file:/path/the/MTA/logs/to\"   (or \"journald\")",
                    ));
                }
            }
        }
    }
    let answers = match &config.milter.listen {
        ListenAddr::Inet(addr) => TcpStream::connect_timeout(addr, Duration::from_secs(2)).is_ok(),
        ListenAddr::Unix(path) => std::os::unix::net::UnixStream::connect(path).is_ok(),
    };
    if !answers {
        findings.push(finding(
            format!(
                "nothing answers on {}: mailtrail is not running",
                config.milter.listen
            ),
            "systemctl enable --now mailtrail",
        ));
    }
    for dir in [&config.state_dir, &config.archive.dir] {
        if dir.exists() && !writable(dir) {
            findings.push(finding(
                format!("{} is not writable", dir.display()),
                format!("chown -R mailtrail:mailtrail {}", dir.display()),
            ));
        }
    }
    if config.web.enabled && std::net::TcpListener::bind(config.web.listen).is_err() && !answers {
        findings.push(finding(
            format!(
                "the pages' port {} is taken by another program",
                config.web.listen
            ),
            "[web] listen = \"127.0.0.1:8026\"   (a free port)",
        ));
    }
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    let ok = std::fs::File::create(&probe).is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milter_lists_and_durations_are_read_as_postfix_writes_them() {
        let listen = ListenAddr::Inet("127.0.0.1:8899".parse().unwrap());
        assert!(milters_reach("inet:127.0.0.1:8899", &listen));
        assert!(milters_reach("unix:/x, inet:localhost:8899", &listen));
        assert!(milters_reach(
            "{ inet:[127.0.0.1]:8899, default_action=accept }",
            &listen
        ));
        assert!(!milters_reach("inet:127.0.0.1:8898", &listen));
        assert!(!milters_reach("", &listen));
        let unix = ListenAddr::Unix("/run/mailtrail/milter.sock".into());
        assert!(milters_reach("unix:/run/mailtrail/milter.sock", &unix));
        assert_eq!(
            postfix_duration("5d", 'd'),
            Some(Duration::from_secs(5 * 86_400))
        );
        assert_eq!(postfix_duration("0", 'h'), Some(Duration::ZERO));
        assert_eq!(
            postfix_duration("4", 'h'),
            Some(Duration::from_secs(4 * 3600))
        );
        assert_eq!(
            postfix_duration("1w", 'd'),
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(postfix_duration("soon", 'd'), None);
        assert!(sendmail_socket_is("inet:8899@127.0.0.1", &listen));
        assert!(sendmail_socket_is("inet:8899@localhost", &listen));
        assert!(!sendmail_socket_is("inet:25@127.0.0.1", &listen));
    }
}
