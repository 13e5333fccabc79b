//! The values a configuration writes as text, each parsed by `FromStr` with one typed error that
//! says what the value must look like (the parser adds file, line and key). Model types get
//! their `FromStr` here; values of foreign types get a small wrapper.

use super::model::{
    FleetDatabase, FleetToken, HostLabel, Language, ListenAddr, LogSource, MtaKind, OnError,
};
use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

/// Why a value is not what its key takes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseParamError {
    #[error("`{0}` is not inet:HOST:PORT or unix:/PATH")]
    Listen(String),
    #[error("`{0}` is not \"continue\" or \"tempfail\"")]
    OnError(String),
    #[error("`{0}` is not file:/PATH, journald, stdin or off")]
    LogSource(String),
    #[error("`{0}` is not \"postfix\" or \"sendmail\"")]
    MtaKind(String),
    #[error("`{0}` is not a shipped language (en, it)")]
    Language(String),
    #[error("`{0}` is not HOST:PORT")]
    HostPort(String),
    #[error("`{0}` is not a weekday (monday ... sunday)")]
    Weekday(String),
    #[error("`{0}` is not a time like 07:00")]
    TimeOfDay(String),
    #[error("`{text}` is not a duration like 10m, 4h or 7d ({reason})")]
    Duration { text: String, reason: String },
    #[error("must be longer than zero")]
    ZeroDuration,
    #[error("not a PostgreSQL connection URL (postgresql://USER@HOST/DATABASE): {0}")]
    DatabaseUrl(String),
    #[error("`{0}` is not a host name of letters, digits and hyphens (one DNS label, at most 63)")]
    HostLabel(String),
    #[error("must be at least 16 characters without spaces (the fleet's shared secret)")]
    FleetToken,
    #[error("`{0}` is not an http:// or https:// address")]
    HttpUrl(String),
}

/// `inet:HOST:PORT` (IPv6 in brackets, `inet6:` too; `localhost` is 127.0.0.1) or
/// `unix:/PATH`.
impl FromStr for ListenAddr {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        let bad = || ParseParamError::Listen(text.to_string());
        if let Some(path) = text.strip_prefix("unix:") {
            return match path.is_empty() {
                true => Err(bad()),
                false => Ok(ListenAddr::Unix(PathBuf::from(path))),
            };
        }
        let rest = text
            .strip_prefix("inet:")
            .or_else(|| text.strip_prefix("inet6:"))
            .ok_or_else(bad)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        let ip: std::net::IpAddr = host.parse().map_err(|_| bad())?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        Ok(ListenAddr::Inet((ip, port).into()))
    }
}

impl FromStr for OnError {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        match text {
            "continue" => Ok(OnError::Continue),
            "tempfail" => Ok(OnError::Tempfail),
            other => Err(ParseParamError::OnError(other.to_string())),
        }
    }
}

impl FromStr for LogSource {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        match text {
            "journald" => Ok(LogSource::Journald),
            "stdin" => Ok(LogSource::Stdin),
            "off" => Ok(LogSource::Off),
            other => match other.strip_prefix("file:") {
                Some(path) if path.starts_with('/') => Ok(LogSource::File(path.into())),
                _ => Err(ParseParamError::LogSource(other.to_string())),
            },
        }
    }
}

impl FromStr for MtaKind {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        match text {
            "postfix" => Ok(MtaKind::Postfix),
            "sendmail" => Ok(MtaKind::Sendmail),
            other => Err(ParseParamError::MtaKind(other.to_string())),
        }
    }
}

/// `en`/`it` (any case, region ignored: `it-IT`): the languages with templates.
impl FromStr for Language {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        let lang = text.split(['-', '_']).next().unwrap_or("");
        match lang.to_ascii_lowercase().as_str() {
            "en" => Ok(Language::En),
            "it" => Ok(Language::It),
            _ => Err(ParseParamError::Language(text.to_string())),
        }
    }
}

/// A duration longer than zero, written as humantime does: `90s`, `10m`, `4h`, `7d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval(pub Duration);

impl FromStr for Interval {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => Ok(Interval(d)),
            Ok(_) => Err(ParseParamError::ZeroDuration),
            Err(e) => Err(ParseParamError::Duration {
                text: text.to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

/// A socket address to listen on, `HOST:PORT` with an IP (or `localhost`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenSocket(pub SocketAddr);

impl FromStr for ListenSocket {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        text.replace("localhost", "127.0.0.1")
            .parse()
            .map(ListenSocket)
            .map_err(|_| ParseParamError::HostPort(text.to_string()))
    }
}

/// A server to connect to, `HOST:PORT` with a name or an address (IPv6 in brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAddr {
    pub host: String,
    pub port: u16,
}

impl FromStr for ServerAddr {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        text.rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .filter(|(host, _)| !host.is_empty() && !host.contains(char::is_whitespace))
            .map(|(host, port)| ServerAddr {
                host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
                port,
            })
            .ok_or_else(|| ParseParamError::HostPort(text.to_string()))
    }
}

/// A day of the week, in full or its first three letters, any case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weekday(pub time::Weekday);

impl FromStr for Weekday {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        use time::Weekday::*;
        let day = match text.to_ascii_lowercase().as_str() {
            "monday" | "mon" => Monday,
            "tuesday" | "tue" => Tuesday,
            "wednesday" | "wed" => Wednesday,
            "thursday" | "thu" => Thursday,
            "friday" | "fri" => Friday,
            "saturday" | "sat" => Saturday,
            "sunday" | "sun" => Sunday,
            _ => return Err(ParseParamError::Weekday(text.to_string())),
        };
        Ok(Weekday(day))
    }
}

/// A local time of day, `HH:MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeOfDay(pub time::Time);

impl FromStr for TimeOfDay {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        let format = time::macros::format_description!("[hour]:[minute]");
        time::Time::parse(text, format)
            .map(TimeOfDay)
            .map_err(|_| ParseParamError::TimeOfDay(text.to_string()))
    }
}

#[cfg(test)]
mod tests;

/// A PostgreSQL connection URL (or key=value string) tokio-postgres accepts. The reason is
/// tokio-postgres's own, which never repeats a password.
impl FromStr for FleetDatabase {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        let parsed: tokio_postgres::Config = text
            .parse()
            .map_err(|e: tokio_postgres::Error| ParseParamError::DatabaseUrl(e.to_string()))?;
        if parsed.get_hosts().is_empty() {
            return Err(ParseParamError::DatabaseUrl("it names no host".into()));
        }
        Ok(FleetDatabase(text.to_string()))
    }
}

/// One DNS label: the name a host's records carry in the fleet database and on the dashboard.
impl FromStr for HostLabel {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        let label_char = |c: char| c.is_ascii_alphanumeric() || c == '-';
        let valid = (1..=63).contains(&text.len())
            && text.chars().all(label_char)
            && !text.starts_with('-')
            && !text.ends_with('-');
        match valid {
            true => Ok(HostLabel(text.to_ascii_lowercase())),
            false => Err(ParseParamError::HostLabel(text.to_string())),
        }
    }
}

impl FromStr for FleetToken {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        match text.len() >= 16 && text.chars().all(|c| c.is_ascii_graphic()) {
            true => Ok(FleetToken(text.to_string())),
            false => Err(ParseParamError::FleetToken),
        }
    }
}

/// An `http://` or `https://` base address (a host's pages, as the dashboard reaches them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl(pub String);

impl FromStr for HttpUrl {
    type Err = ParseParamError;
    fn from_str(text: &str) -> Result<Self, ParseParamError> {
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
                Ok(HttpUrl(text.trim_end_matches('/').to_string()))
            }
            _ => Err(ParseParamError::HttpUrl(text.to_string())),
        }
    }
}
