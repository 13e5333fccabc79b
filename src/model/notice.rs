//! The notices mailtrail sends: their kinds, by the names the store, the pages and the
//! `X-Mailtrail-Notice` header use.

use super::status::UnknownState;
use serde::Serialize;
use std::str::FromStr;

/// Which notice, and the value of its `X-Mailtrail-Notice` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    Warning,
    Expiry,
    Receipt,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 3] = [NoticeKind::Warning, NoticeKind::Expiry, NoticeKind::Receipt];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Warning => "warning",
            NoticeKind::Expiry => "expiry",
            NoticeKind::Receipt => "receipt",
        }
    }

    /// The DSN `Action` for every recipient of this notice. A receipt says `relayed`: the
    /// destination server accepted the message, which says nothing about it being read.
    pub fn dsn_action(self) -> &'static str {
        match self {
            NoticeKind::Warning => "delayed",
            NoticeKind::Expiry => "failed",
            NoticeKind::Receipt => "relayed",
        }
    }
}

impl FromStr for NoticeKind {
    type Err = UnknownState;
    fn from_str(text: &str) -> Result<Self, UnknownState> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| UnknownState(text.to_string()))
    }
}

impl std::fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
