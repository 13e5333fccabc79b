//! The running configuration, shared by all tasks and replaced on SIGHUP.

use super::{Config, ConfigError, DEFAULT_PATH, load};
use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
};

/// Where the configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// No file: the built-in defaults.
    Defaults,
    File(PathBuf),
}

impl Source {
    /// An explicit `--config` must exist; without one the default path is used if present.
    pub fn resolve(explicit: Option<PathBuf>) -> Source {
        match explicit {
            Some(path) => Source::File(path),
            None if std::path::Path::new(DEFAULT_PATH).exists() => {
                Source::File(DEFAULT_PATH.into())
            }
            None => Source::Defaults,
        }
    }

    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            Source::Defaults => Ok(Config::defaults()),
            Source::File(path) => load(path),
        }
    }
}

/// A cheap handle on the current configuration; clones share it.
#[derive(Clone, Debug)]
pub struct ConfigHandle {
    source: Source,
    current: Arc<RwLock<Arc<Config>>>,
}

impl ConfigHandle {
    pub fn new(source: Source, config: Config) -> Self {
        ConfigHandle {
            source,
            current: Arc::new(RwLock::new(Arc::new(config))),
        }
    }

    /// The configuration in force now. Callers keep the `Arc` for one unit of work (a message),
    /// so a reload never changes the rules half-way through it.
    pub fn current(&self) -> Arc<Config> {
        // A poisoned lock still holds a valid, fully written `Arc`.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the source. On error the running configuration stays in force. Settings that only
    /// take effect at start (listen address, state and store paths) are reported back.
    pub fn reload(&self) -> Result<Vec<&'static str>, ConfigError> {
        let new = self.source.load()?;
        let old = self.current();
        let mut needs_restart = Vec::new();
        if new.milter.listen != old.milter.listen {
            needs_restart.push("milter.listen");
        }
        if new.web.listen != old.web.listen || new.web.enabled != old.web.enabled {
            needs_restart.push("web.listen");
        }
        if new.store.path != old.store.path {
            needs_restart.push("store.path");
        }
        if new.archive.dir != old.archive.dir {
            needs_restart.push("archive.dir");
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        Ok(needs_restart)
    }
}
