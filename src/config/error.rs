//! Configuration errors, located in their file: the line and the key of what is wrong, with
//! anything repeated from the file clipped.

use super::params::{Interval, ParseParamError};
use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};
use toml::Spanned;

/// A configuration error, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}", path = path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}: {message}", path = path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The line an `Invalid` error points at.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid { line, .. } => Some(*line),
            ConfigError::Read { .. } => None,
        }
    }
}

/// Finds line and key of a byte offset in the file's text, for errors.
pub(super) struct Locator<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Locator<'_> {
    pub(super) fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// The key written on the line holding `offset`: `name` of `name = ...` or of `[name]`.
    pub(super) fn key_at(&self, offset: usize) -> String {
        let start = self.text[..offset.min(self.text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line = self.text[start..].lines().next().unwrap_or("").trim();
        let key = match line.split_once('=') {
            Some((key, _)) if !line.starts_with('[') => key,
            _ => line.trim_start_matches('[').split(']').next().unwrap_or(""),
        };
        if line.starts_with('[') {
            return key.trim().to_string();
        }
        // Qualify with the table the line is in: `milter.listen`, not `listen`.
        let table = self.text[..start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
        match (table, key.trim()) {
            (_, "") => "(file)".into(),
            (Some(table), key) => format!("{table}.{key}"),
            (None, key) => key.to_string(),
        }
    }

    pub(super) fn error<T>(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: self.line(span.start),
            key: clip(key),
            message: clip(&message.into()),
        })
    }

    /// `value` parsed as its type; an error names the file, line and key.
    pub(super) fn value<T>(&self, value: &Spanned<String>, key: &str) -> Result<T, ConfigError>
    where
        T: FromStr<Err = ParseParamError>,
    {
        value
            .get_ref()
            .parse()
            .or_else(|e: ParseParamError| self.error(value.span(), key, e.to_string()))
    }

    /// A duration longer than zero ([`Interval`]).
    pub(super) fn duration(
        &self,
        value: &Spanned<String>,
        key: &str,
    ) -> Result<Duration, ConfigError> {
        self.value::<Interval>(value, key).map(|i| i.0)
    }
}

/// Longest key or message an error repeats from the file: a 200 KB line stays in the file.
const MAX_ERROR_TEXT: usize = 160;

/// `text` cut to [`MAX_ERROR_TEXT`] bytes (at a character boundary), marked with `…`.
pub(super) fn clip(text: &str) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
