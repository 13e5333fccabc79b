//! What is failing right now, for the pages to say: set where a write fails, cleared where the
//! next one succeeds. In-process only (the milter and the pages run in one daemon); the
//! counters keep the history.

use std::{sync::Mutex, time::SystemTime};

/// A part of mailtrail whose writes can fail on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Copies into the archive Maildir.
    Archive,
    /// Envelope rows into the store.
    Store,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Archive => "archive copies",
            Part::Store => "envelope records",
        }
    }
}

/// A part failing since `since`, with the last error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub part: Part,
    pub since: SystemTime,
    pub error: String,
}

#[derive(Debug, Default)]
pub struct Health {
    archive: Mutex<Option<Problem>>,
    store: Mutex<Option<Problem>>,
}

impl Health {
    fn slot(&self, part: Part) -> &Mutex<Option<Problem>> {
        match part {
            Part::Archive => &self.archive,
            Part::Store => &self.store,
        }
    }

    /// A write of `part` failed with `error`; the first failure of a run gives `since`.
    pub fn failed(&self, part: Part, error: &str) {
        let mut slot = self.slot(part).lock().unwrap_or_else(|e| e.into_inner());
        let since = slot.as_ref().map_or_else(SystemTime::now, |p| p.since);
        *slot = Some(Problem {
            part,
            since,
            error: error.to_string(),
        });
    }

    /// A write of `part` succeeded: it is not failing any more.
    pub fn succeeded(&self, part: Part) {
        let mut slot = self.slot(part).lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            *slot = None;
        }
    }

    /// What is failing now, archive first.
    pub fn problems(&self) -> Vec<Problem> {
        [Part::Archive, Part::Store]
            .into_iter()
            .filter_map(|part| {
                self.slot(part)
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
