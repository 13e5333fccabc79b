//! Reading the TOML file into the validated model, one function per table, with errors that
//! name file, line and key.

use super::{
    error::{ConfigError, Locator, clip},
    format::*,
    model::*,
    params::{HttpUrl, ListenSocket, ServerAddr, TimeOfDay, Weekday},
};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};
use toml::Spanned;

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // The valid part is text: the line and key of the bad byte are found in it.
        let prefix = std::str::from_utf8(valid).unwrap_or_default();
        let loc = Locator { path, text: prefix };
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line: loc.line(prefix.len()),
            key: clip(&loc.key_at(prefix.len())),
            message: format!(
                "the file is not UTF-8 text (byte 0x{:02x})",
                e.as_bytes()[valid.len()]
            ),
        }
    })?;
    parse(path, &text)
}

/// Validates configuration text; `path` is only used in errors and as the source.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let loc = Locator { path, text };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line: loc.line(span.start),
            key: clip(&loc.key_at(span.start)),
            message: clip(e.message().trim()),
        }
    })?;

    let mut config = Config::defaults();
    config.source = Some(path.to_path_buf());

    if let Some(dir) = raw.state.and_then(|s| s.dir) {
        config.state_dir = PathBuf::from(dir.get_ref());
        config.store.path = config.state_dir.join(super::DB_FILE);
        config.archive.dir = config.state_dir.join(super::ARCHIVE_DIR);
    }

    if let Some(m) = raw.milter {
        parse_milter(&loc, m, &mut config.milter)?;
    }

    if let Some(s) = raw.store
        && let Some(p) = s.path
    {
        config.store.path = PathBuf::from(p.get_ref());
    }

    if let Some(a) = raw.archive {
        parse_archive(&loc, a, &mut config.archive)?;
    }

    if let Some(m) = raw.maillog {
        parse_maillog(&loc, m, &mut config.maillog)?;
    }

    if let Some(n) = raw.notify {
        parse_notify(&loc, n, &mut config.notify)?;
    }

    if let Some(w) = raw.web {
        parse_web(&loc, w, &mut config.web)?;
    }

    if let Some(f) = raw.fleet {
        config.fleet = Some(parse_fleet(&loc, f, &config.web)?);
    }

    if let Some(r) = raw.report {
        parse_report(&loc, r, &mut config.report)?;
    }

    if let Some(rules) = raw.bounce.and_then(|b| b.rules) {
        config.bounce_rules = Some(PathBuf::from(rules));
    }

    for (name, policy) in raw.policy {
        let parsed = parse_policy(&loc, &name, &policy, &config.policies)?;
        config.policies.insert(name, parsed);
    }

    for (index, sender) in raw.sender.iter().enumerate() {
        config
            .senders
            .push(parse_sender(&loc, index, sender, &config.policies)?);
    }

    if let Some(m) = raw.mta {
        config.mta = parse_mta(&loc, m)?;
    }

    if let Some(s) = raw.suppression {
        parse_suppression(&loc, s, &config.policies, &mut config.suppression)?;
    }
    Ok(config)
}

/// `[suppression]`; `modes` must name policy modes that exist.
fn parse_suppression(
    loc: &Locator,
    s: RawSuppression,
    policies: &BTreeMap<String, Policy>,
    suppression: &mut SuppressionConfig,
) -> Result<(), ConfigError> {
    if let Some(mode) = &s.mode {
        suppression.mode = match mode.get_ref().parse() {
            Ok(mode) => mode,
            Err(message) => return loc.error(mode.span(), "suppression.mode", message),
        };
    }
    if let Some(list) = &s.categories {
        suppression.categories = list
            .get_ref()
            .iter()
            .map(|c| match c.get_ref().parse::<crate::bounce::Category>() {
                Ok(category) => Ok(category),
                Err(e) => loc.error(c.span(), "suppression.categories", e.to_string()),
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(n) = &s.full_mailbox_after {
        suppression.full_mailbox_after = match u32::try_from(*n.get_ref()) {
            Ok(n) if n <= 1000 => n,
            _ => {
                return loc.error(
                    n.span(),
                    "suppression.full_mailbox_after",
                    "must be 0 (never) to 1000",
                );
            }
        };
    }
    if let Some(keep) = &s.keep {
        suppression.keep = loc.duration(keep, "suppression.keep")?;
    }
    if let Some(list) = &s.modes {
        suppression.modes = list
            .get_ref()
            .iter()
            .map(|m| match policies.contains_key(m.get_ref()) {
                true => Ok(m.get_ref().clone()),
                false => loc.error(
                    m.span(),
                    "suppression.modes",
                    format!(
                        "no policy mode `{}` (modes: {})",
                        m.get_ref().escape_debug(),
                        policies.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ),
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}

/// The line of the `[[web.user]]` entry named `name` in the configuration file at `path`.
pub fn web_user_line(path: &Path, name: &str) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    let raw: RawConfig = toml::from_str(&text).ok()?;
    let loc = Locator { path, text: &text };
    raw.web?.user.iter().find_map(|user| {
        let n = user.get_ref().name.as_ref()?;
        (n.get_ref() == name).then(|| loc.line(n.span().start))
    })
}

/// `[milter]`.
fn parse_milter(loc: &Locator, m: RawMilter, milter: &mut MilterConfig) -> Result<(), ConfigError> {
    if let Some(listen) = m.listen {
        milter.listen = loc.value(&listen, "milter.listen")?;
    }
    if let Some(v) = m.on_error {
        milter.on_error = loc.value(&v, "milter.on_error")?;
    }
    if let Some(t) = m.idle_timeout {
        milter.idle_timeout = loc.duration(&t, "milter.idle_timeout")?;
    }
    let limits = [
        (
            m.max_recipients,
            "milter.max_recipients",
            &mut milter.max_recipients,
        ),
        (m.max_headers, "milter.max_headers", &mut milter.max_headers),
        (
            m.max_connections,
            "milter.max_connections",
            &mut milter.max_connections,
        ),
    ];
    for (value, key, slot) in limits {
        if let Some(v) = value {
            match usize::try_from(*v.get_ref()) {
                Ok(n) if n > 0 => *slot = n,
                _ => return loc.error(v.span(), key, "must be a positive number"),
            }
        }
    }

    Ok(())
}

/// `[maillog]`.
fn parse_maillog(
    loc: &Locator,
    m: RawMaillog,
    maillog: &mut MaillogConfig,
) -> Result<(), ConfigError> {
    if let Some(source) = m.source {
        maillog.source = loc.value(&source, "maillog.source")?;
    }
    if let Some(names) = m.syslog_names {
        maillog.syslog_names = names;
    }
    if let Some(r) = m.raw_retention {
        maillog.raw_retention = loc.duration(&r, "maillog.raw_retention")?;
    }
    if let Some(i) = m.poll_interval {
        maillog.poll_interval = loc.duration(&i, "maillog.poll_interval")?;
    }

    Ok(())
}

/// One `[policy.NAME]`, over the built-in policy of that name (or `normal`'s).
fn parse_policy(
    loc: &Locator,
    name: &str,
    policy: &Spanned<RawPolicy>,
    policies: &BTreeMap<String, Policy>,
) -> Result<Policy, ConfigError> {
    let base = policies.get(name).cloned().unwrap_or_else(Policy::normal);
    let key = |field: &str| format!("policy.{name}.{field}");
    let p = policy.get_ref();
    let parsed = Policy {
        retry_every: match &p.retry_every {
            Some(v) => loc.duration(v, &key("retry_every"))?,
            None => base.retry_every,
        },
        warn_after: match &p.warn_after {
            Some(v) if matches!(v.get_ref().as_str(), "off" | "never" | "none") => None,
            Some(v) => Some(loc.duration(v, &key("warn_after"))?),
            None => base.warn_after,
        },
        give_up_after: match &p.give_up_after {
            Some(v) => loc.duration(v, &key("give_up_after"))?,
            None => base.give_up_after,
        },
    };
    if parsed.warn_after.is_some_and(|w| w >= parsed.give_up_after) {
        return loc.error(
            policy.span(),
            &key("warn_after"),
            "must be shorter than give_up_after",
        );
    }
    Ok(parsed)
}

fn parse_mta(loc: &Locator, m: RawMta) -> Result<MtaConfig, ConfigError> {
    let kind = match &m.kind {
        None => MtaKind::Postfix,
        Some(k) => loc.value(k, "mta.kind")?,
    };
    // The kind picks the default commands; explicit lists replace them.
    let mut mta = MtaConfig::defaults(kind);
    if let Some(dir) = m.config_dir {
        if !dir.get_ref().starts_with('/') {
            return loc.error(dir.span(), "mta.config_dir", "must be an absolute path");
        }
        mta.config_dir = Some(PathBuf::from(dir.get_ref()));
    }
    for (value, key, slot) in [
        (m.retry, "mta.retry", &mut mta.retry),
        (m.remove, "mta.remove", &mut mta.remove),
    ] {
        let Some(value) = value else { continue };
        let argv = value.get_ref();
        if argv.first().is_none_or(|program| program.is_empty()) {
            return loc.error(value.span(), key, "must start with a program name");
        }
        // Without the queue id the command would act on the whole queue (`postqueue -f`).
        if !argv.iter().any(|a| a.contains(QUEUE_ID_PLACEHOLDER)) {
            return loc.error(
                value.span(),
                key,
                format!("must contain {QUEUE_ID_PLACEHOLDER} in one of its arguments"),
            );
        }
        *slot = argv.clone();
    }
    if let Some(t) = m.timeout {
        mta.timeout = loc.duration(&t, "mta.timeout")?;
    }
    Ok(mta)
}

fn parse_archive(
    loc: &Locator,
    a: RawArchive,
    archive: &mut ArchiveConfig,
) -> Result<(), ConfigError> {
    if let Some(m) = a.maildir {
        archive.maildir = m;
    }
    if let Some(d) = a.dir {
        archive.dir = PathBuf::from(d.get_ref());
    }
    if let Some(r) = a.retention {
        archive.retention = loc.duration(&r, "archive.retention")?;
    }
    if let Some(i) = a.sweep_interval {
        archive.sweep_interval = loc.duration(&i, "archive.sweep_interval")?;
    }
    if let Some(size) = a.max_message_size {
        let parsed = match size.get_ref() {
            toml::Value::Integer(n) => u64::try_from(*n).ok(),
            toml::Value::String(s) => byte_unit::Byte::parse_str(s, true).ok().map(|b| b.as_u64()),
            _ => None,
        };
        archive.max_message_size = match parsed {
            Some(n) if n > 0 => n,
            _ => {
                return loc.error(
                    size.span(),
                    "archive.max_message_size",
                    "must be a size like \"50MB\" or a number of bytes",
                );
            }
        };
    }
    for pattern in a.exclude {
        match AddressPattern::parse(pattern.get_ref()) {
            Some(p) => archive.exclude.push(p),
            None => {
                return loc.error(
                    pattern.span(),
                    "archive.exclude",
                    format!("`{}` is not an address or @domain", pattern.get_ref()),
                );
            }
        }
    }
    if let Some(bcc) = a.bcc {
        match AddressPattern::parse(bcc.get_ref()) {
            Some(AddressPattern::Address(addr))
                if !bcc.get_ref().contains(['\r', '\n', '<', '>']) =>
            {
                archive.bcc = Some(addr);
            }
            _ => {
                return loc.error(
                    bcc.span(),
                    "archive.bcc",
                    format!("`{}` is not a mail address", bcc.get_ref().escape_debug()),
                );
            }
        }
    }
    Ok(())
}

fn parse_notify(loc: &Locator, n: RawNotify, notify: &mut NotifyConfig) -> Result<(), ConfigError> {
    if let Some(enabled) = n.enabled {
        notify.enabled = enabled;
    }
    if let Some(smtp) = n.smtp {
        let server: ServerAddr = loc.value(&smtp, "notify.smtp")?;
        notify.smtp_host = server.host;
        notify.smtp_port = server.port;
    }
    if let Some(host) = n.reporting_mta {
        let valid = !host.get_ref().is_empty()
            && host
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !valid {
            return loc.error(host.span(), "notify.reporting_mta", "must be a host name");
        }
        notify.reporting_mta = host.get_ref().clone();
    }
    if let Some(language) = n.language {
        notify.language = loc.value(&language, "notify.language")?;
    }
    if let Some(tick) = n.tick {
        notify.tick = loc.duration(&tick, "notify.tick")?;
    }
    Ok(())
}

fn parse_web(loc: &Locator, w: RawWeb, web: &mut WebConfig) -> Result<(), ConfigError> {
    if let Some(enabled) = w.enabled {
        web.enabled = enabled;
    }
    if let Some(secure) = w.secure_cookie {
        web.secure_cookie = secure;
    }
    if let Some(every) = w.stats_refresh {
        web.stats_refresh = loc.duration(&every, "web.stats_refresh")?;
    }
    if let Some(listen) = w.listen {
        web.listen = loc.value::<ListenSocket>(&listen, "web.listen")?.0;
    }
    web.tls = parse_web_tls(loc, w.tls_cert, w.tls_key)?;
    for (index, user) in w.user.iter().enumerate() {
        let parsed = parse_web_user(loc, index, user, &web.users)?;
        web.users.push(parsed);
    }
    Ok(())
}

/// `[fleet]`: `database` is required; the rest has defaults.
fn parse_fleet(
    loc: &Locator,
    fleet: Spanned<RawFleet>,
    web: &WebConfig,
) -> Result<FleetConfig, ConfigError> {
    let span = fleet.span();
    let fleet = fleet.into_inner();
    let Some(database) = fleet.database else {
        return loc.error(
            span,
            "fleet.database",
            "missing: the fleet database's URL, like postgresql://mailtrail@db.example/mailtrail",
        );
    };
    let database = loc.value::<FleetDatabase>(&database, "fleet.database")?;
    let host = match fleet.host {
        Some(host) => loc.value::<HostLabel>(&host, "fleet.host")?,
        None => HostLabel::from_system(),
    };
    let token = match fleet.token {
        Some(token) => Some(loc.value::<FleetToken>(&token, "fleet.token")?),
        None => None,
    };
    let url = match fleet.url {
        Some(url) => loc.value::<HttpUrl>(&url, "fleet.url")?.0,
        None => {
            let scheme = if web.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}", web.listen)
        }
    };
    Ok(FleetConfig {
        database,
        host,
        token,
        url,
        ca: fleet.ca.map(|ca| PathBuf::from(ca.into_inner())),
    })
}

/// One `[[web.user]]`, the `index`th; `users` are those before it.
fn parse_web_user(
    loc: &Locator,
    index: usize,
    user: &Spanned<RawWebUser>,
    users: &[WebUser],
) -> Result<WebUser, ConfigError> {
    let key = |field: &str| format!("web.user[{index}].{field}");
    let u = user.get_ref();
    let name = match &u.name {
        Some(n) if !n.get_ref().is_empty() && !n.get_ref().contains(char::is_control) => {
            n.get_ref().clone()
        }
        Some(n) => return loc.error(n.span(), &key("name"), "must be a non-empty name"),
        None => return loc.error(user.span(), &key("name"), "each [[web.user]] needs a name"),
    };
    if users.iter().any(|other| other.name == name) {
        return loc.error(
            user.span(),
            &key("name"),
            format!("user `{name}` is defined twice"),
        );
    }
    let password_hash = match &u.password_hash {
        // Checked here so a typo fails at start, not at the first login.
        Some(h)
            if h.get_ref().starts_with("$argon2id$")
                && argon2::PasswordHash::new(h.get_ref()).is_ok() =>
        {
            h.get_ref().clone()
        }
        Some(h) => {
            return loc.error(
                h.span(),
                &key("password_hash"),
                "must be an argon2id PHC string from `mailtrail hash-password`",
            );
        }
        None => {
            return loc.error(
                user.span(),
                &key("password_hash"),
                "each [[web.user]] needs a password_hash",
            );
        }
    };
    let mut domains = Vec::new();
    if let Some(list) = &u.domains
        && list.get_ref().is_empty()
    {
        // An empty list must not silently mean "every domain".
        return loc.error(
            list.span(),
            &key("domains"),
            "must name at least one domain (leave it out for access to all mail)",
        );
    }
    for d in u.domains.iter().flat_map(|l| l.get_ref()) {
        let domain = d
            .get_ref()
            .trim()
            .trim_start_matches('@')
            .to_ascii_lowercase();
        let valid = !domain.is_empty()
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !valid {
            return loc.error(
                d.span(),
                &key("domains"),
                format!("`{}` is not a domain", d.get_ref().escape_debug()),
            );
        }
        domains.push(domain);
    }
    Ok(WebUser {
        name,
        password_hash,
        domains,
    })
}

fn parse_report(loc: &Locator, r: RawReport, report: &mut ReportConfig) -> Result<(), ConfigError> {
    // Addresses end up in headers: lettre's parser refuses anything but an addr-spec.
    let address =
        |value: &Spanned<String>, key: &str| match value.get_ref().parse::<lettre::Address>() {
            Ok(a) => Ok(a.to_string()),
            Err(_) => loc.error(
                value.span(),
                key,
                format!("`{}` is not a mail address", value.get_ref().escape_debug()),
            ),
        };
    if let Some(list) = &r.recipients {
        report.recipients = list
            .get_ref()
            .iter()
            .map(|a| address(a, "report.recipients"))
            .collect::<Result<_, _>>()?;
    }
    if let Some(from) = &r.from {
        report.from = Some(address(from, "report.from")?);
    }
    if let Some(day) = &r.weekday {
        report.weekday = loc.value::<Weekday>(day, "report.weekday")?.0;
    }
    if let Some(at) = &r.time {
        report.at = loc.value::<TimeOfDay>(at, "report.time")?.0;
    }
    if let Some(url) = &r.base_url {
        let text = url.get_ref().trim_end_matches('/');
        let valid = (text.starts_with("http://") || text.starts_with("https://"))
            && !text.contains(|c: char| c.is_whitespace() || c.is_control() || c == '"');
        if !valid {
            return loc.error(
                url.span(),
                "report.base_url",
                "must be an http:// or https:// URL",
            );
        }
        report.base_url = Some(text.to_string());
    }
    if let Some(enabled) = &r.enabled {
        if *enabled.get_ref() && report.recipients.is_empty() {
            let span = r.recipients.as_ref().map_or(enabled.span(), |l| l.span());
            return loc.error(
                span,
                "report.recipients",
                "the weekly report is enabled but goes to nobody: list at least one address",
            );
        }
        report.enabled = *enabled.get_ref();
    }
    Ok(())
}

/// `tls_cert` and `tls_key`: both (HTTPS) or neither (HTTP). The files are read when the web
/// server starts.
fn parse_web_tls(
    loc: &Locator,
    cert: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
) -> Result<Option<WebTls>, ConfigError> {
    for (value, name) in [(&cert, "web.tls_cert"), (&key, "web.tls_key")] {
        if let Some(v) = value
            && v.get_ref().trim().is_empty()
        {
            return loc.error(v.span(), name, "must be the path of a PEM file");
        }
    }
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(WebTls {
            cert: PathBuf::from(cert.get_ref()),
            key: PathBuf::from(key.get_ref()),
        })),
        (Some(cert), None) => loc.error(
            cert.span(),
            "web.tls_key",
            "missing: tls_cert is set, so tls_key (the PEM private key) must be too",
        ),
        (None, Some(key)) => loc.error(
            key.span(),
            "web.tls_cert",
            "missing: tls_key is set, so tls_cert (the PEM certificate chain) must be too",
        ),
    }
}

fn parse_sender(
    loc: &Locator,
    index: usize,
    sender: &Spanned<RawSender>,
    policies: &BTreeMap<String, Policy>,
) -> Result<SenderRule, ConfigError> {
    let key = |field: &str| format!("sender[{index}].{field}");
    let s = sender.get_ref();
    let matcher = match (&s.pattern, &s.sasl_user) {
        (Some(p), None) => match AddressPattern::parse(p.get_ref()) {
            Some(pattern) => SenderMatch::Pattern(pattern),
            None => {
                return loc.error(
                    p.span(),
                    &key("match"),
                    format!("`{}` is not an address or @domain", p.get_ref()),
                );
            }
        },
        (None, Some(u)) if !u.get_ref().is_empty() => SenderMatch::SaslUser(u.get_ref().clone()),
        (None, Some(u)) => return loc.error(u.span(), &key("sasl_user"), "must not be empty"),
        _ => {
            return loc.error(
                sender.span(),
                &key("match"),
                "each [[sender]] needs exactly one of `match` or `sasl_user`",
            );
        }
    };
    let mode = match &s.mode {
        Some(m) if policies.contains_key(m.get_ref()) => m.get_ref().clone(),
        Some(m) => {
            let known: Vec<&str> = policies.keys().map(String::as_str).collect();
            return loc.error(
                m.span(),
                &key("mode"),
                format!(
                    "unknown mode `{}` (defined: {})",
                    m.get_ref(),
                    known.join(", ")
                ),
            );
        }
        None => DEFAULT_MODE.to_string(),
    };
    let receipts = match &s.receipts {
        None => Receipts::Off,
        Some(r) => match r.get_ref() {
            toml::Value::Boolean(false) => Receipts::Off,
            toml::Value::Boolean(true) => Receipts::On,
            toml::Value::String(s) if s == "dsn" => Receipts::Dsn,
            _ => return loc.error(r.span(), &key("receipts"), "must be true, false or \"dsn\""),
        },
    };
    Ok(SenderRule {
        matcher,
        mode,
        receipts,
    })
}
