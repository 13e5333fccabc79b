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

/// `user`: the user mailtrail runs as (`doctor --user`); by default the installed unit's
/// `User=`, else whoever runs doctor.
pub fn doctor(config: &Config, user: Option<&str>, out: &mut impl Write) -> Result<(), CliError> {
    let mut findings = Vec::new();
    let mta = match config.mta.kind {
        MtaKind::Postfix => postfix(config, &mut findings),
        MtaKind::Sendmail => sendmail(config, &mut findings),
    };
    if config.notify.enabled && config.mta.kind == MtaKind::Postfix {
        let me = current_user();
        let user = user
            .map(str::to_string)
            .or_else(unit_user)
            .unwrap_or_else(|| me.clone());
        remove_allowed(config, (&user, &me), &mut findings);
    }
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
        if mta_duration(get("delay_warning_time"), 'h') != Some(Duration::ZERO) {
            findings.push(finding(
                format!(
                    "delay_warning_time is \"{}\": postfix warns senders too, beside mailtrail's notices",
                    get("delay_warning_time")
                ),
                postconf("delay_warning_time = 0h"),
            ));
        }
        for name in ["maximal_queue_lifetime", "bounce_queue_lifetime"] {
            let lifetime = mta_duration(get(name), 'd');
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

/// A postfix or sendmail time value (`0`, `5d`, `4h`, `30m`, `10s`, `1w`; sendmail's `1d12h`); a
/// bare number is in `unit`.
fn mta_duration(value: &str, unit: char) -> Option<Duration> {
    // Postfix writes one number and unit; sendmail may chain them ("1d12h").
    let value = value.trim();
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut seen = false;
    let mut add = |number: &mut String, unit: char| -> Option<()> {
        let n: u64 = number.parse().ok()?;
        let seconds = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        total += Duration::from_secs(n.checked_mul(seconds)?);
        number.clear();
        Some(())
    };
    for c in value.chars() {
        match c {
            '0'..='9' => number.push(c),
            c if c.is_ascii_alphabetic() => {
                add(&mut number, c)?;
                seen = true;
            }
            _ => return None,
        }
    }
    if !number.is_empty() {
        add(&mut number, unit)?;
        seen = true;
    }
    seen.then_some(total)
}

/// Where the packaged unit is, and where an administrator's copy or drop-ins override it.
const UNIT_FILES: [&str; 2] = [
    "/lib/systemd/system/mailtrail.service",
    "/etc/systemd/system/mailtrail.service",
];
const UNIT_DROP_INS: &str = "/etc/systemd/system/mailtrail.service.d";

/// The user the daemon runs as: the last `User=` of the installed unit and its drop-ins.
fn unit_user() -> Option<String> {
    let mut files: Vec<PathBuf> = UNIT_FILES.iter().map(PathBuf::from).collect();
    if let Ok(entries) = std::fs::read_dir(UNIT_DROP_INS) {
        let mut drop_ins: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        drop_ins.sort();
        files.extend(drop_ins);
    }
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("User=").map(|u| u.trim().to_string()))
                .collect::<Vec<_>>()
        })
        .next_back()
        .filter(|u| !u.is_empty())
}

fn current_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "root".into())
}

/// A queue id to ask sudo about (any id: sudoers rules match `-d *`).
const SAMPLE_QUEUE_ID: &str = "4F2A1B3C5D";

/// sudo's options that take a value, to find the command past them.
const SUDO_OPTIONS_WITH_VALUE: [&str; 9] = ["-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"];

/// With notices on, mailtrail removes a message it gave up on from postfix's queue (it has
/// told the sender already): `postsuper -d` needs root, so `[mta] remove` must be allowed to
/// `user` through sudo, or `user` must be root. `me`: whoever runs doctor (sudo answers for
/// another user only with `-U`).
fn remove_allowed(config: &Config, (user, me): (&str, &str), findings: &mut Vec<Finding>) {
    let argv: Vec<String> = config
        .mta
        .remove
        .iter()
        .map(|a| a.replace(crate::config::QUEUE_ID_PLACEHOLDER, SAMPLE_QUEUE_ID))
        .collect();
    let program = |arg: &str| {
        Path::new(arg)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    };
    let Some(first) = argv.first() else {
        return;
    };
    let rule = |command: &str| format!("{user} ALL=(root) NOPASSWD: {command} -d *");
    if program(first).as_deref() == Some("sudo") {
        let mut rest = argv[1..].iter().peekable();
        while let Some(option) = rest.next_if(|a| a.starts_with('-')) {
            if SUDO_OPTIONS_WITH_VALUE.contains(&option.as_str()) {
                rest.next();
            }
        }
        let command: Vec<&String> = rest.collect();
        let Some(target) = command.first() else {
            return;
        };
        let mut check = Command::new(first);
        check.args(["-n", "-l"]);
        if user != me {
            check.args(["-U", user]);
        }
        let shown = command
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        match check.args(&command).output() {
            Err(e) => findings.push(finding(
                format!("[mta] remove runs {first}, which cannot be run ({e})"),
                "apt-get install sudo",
            )),
            Ok(out) if !out.status.success() => findings.push(finding(
                format!(
                    "{user} may not run `{shown}` through sudo: messages mailtrail gave up on stay in postfix's queue"
                ),
                format!("{}   (in /etc/sudoers.d/mailtrail)", rule(target)),
            )),
            Ok(_) => {}
        }
    } else if program(first).as_deref() == Some("postsuper") && user != "root" {
        findings.push(finding(
            format!(
                "[mta] remove runs postsuper as {user}: postsuper -d needs root, so messages mailtrail gave up on stay in postfix's queue"
            ),
            format!(
                "remove = [\"sudo\", \"-n\", \"/usr/sbin/postsuper\", \"-d\", \"{{queue_id}}\"]   ([mta] in mailtrail.toml), with  {}   in /etc/sudoers.d/mailtrail",
                rule("/usr/sbin/postsuper")
            ),
        ));
    }
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
    if config.notify.enabled {
        sendmail_timeouts(config, &text, findings);
    }
    format!("sendmail ({})", cf.display())
}

/// Sendmail's `O Timeout.NAME=VALUE` as written (the `.normal` priority's when given) and as a
/// duration; sendmail's default when the file has none.
fn sendmail_timeout(cf: &str, name: &str, default: &str, unit: char) -> (String, Option<Duration>) {
    let value_of = |option: &str| {
        cf.lines().rev().find_map(|l| {
            let (key, value) = l.strip_prefix("O ")?.split_once('=')?;
            (key.trim() == option).then(|| value.trim().to_string())
        })
    };
    let value = value_of(&format!("Timeout.{name}.normal"))
        .or_else(|| value_of(&format!("Timeout.{name}")))
        .unwrap_or_else(|| default.to_string());
    let duration = mta_duration(&value, unit);
    (value, duration)
}

/// With notices on, sendmail must keep mail queued longer than mailtrail's longest promise
/// (`Timeout.queuereturn`) and never warn senders itself (`Timeout.queuewarn` beyond it).
fn sendmail_timeouts(config: &Config, cf: &str, findings: &mut Vec<Finding>) {
    let longest = config.longest_give_up_after();
    let days = |d: Duration| d.as_secs().div_ceil(86_400);
    // Sendmail's defaults: 5 days, 4 hours; a bare number counts days and hours.
    let (returned, queuereturn) = sendmail_timeout(cf, "queuereturn", "5d", 'd');
    let (warned, queuewarn) = sendmail_timeout(cf, "queuewarn", "4h", 'h');
    let mut keep = queuereturn.unwrap_or_default();
    if queuereturn.is_none_or(|r| r <= longest) {
        keep = Duration::from_secs((days(longest) + 1) * 86_400);
        findings.push(finding(
            format!(
                "Timeout.queuereturn is \"{returned}\": sendmail gives up before mailtrail's longest give_up_after ({})",
                humantime::format_duration(longest)
            ),
            format!(
                "define(`confTO_QUEUERETURN', `{}d')dnl   (sendmail.mc, then make -C /etc/mail)",
                days(keep)
            ),
        ));
    }
    if queuewarn.is_none_or(|w| w <= keep) {
        findings.push(finding(
            format!(
                "Timeout.queuewarn is \"{warned}\": sendmail warns senders too, beside mailtrail's notices"
            ),
            format!(
                "define(`confTO_QUEUEWARN', `{}d')dnl   (longer than the return time: sendmail never warns)",
                days(keep) + 1
            ),
        ));
    }
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
            mta_duration("5d", 'd'),
            Some(Duration::from_secs(5 * 86_400))
        );
        assert_eq!(mta_duration("0", 'h'), Some(Duration::ZERO));
        assert_eq!(mta_duration("4", 'h'), Some(Duration::from_secs(4 * 3600)));
        assert_eq!(
            mta_duration("1w", 'd'),
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(mta_duration("soon", 'd'), None);
        assert_eq!(
            mta_duration("1d12h", 'd'),
            Some(Duration::from_secs(36 * 3600))
        );
        assert_eq!(mta_duration("", 'd'), None);
        assert!(sendmail_socket_is("inet:8899@127.0.0.1", &listen));
        assert!(sendmail_socket_is("inet:8899@localhost", &listen));
        assert!(!sendmail_socket_is("inet:25@127.0.0.1", &listen));
    }
}
