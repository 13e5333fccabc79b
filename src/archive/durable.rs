//! Copies made durable together. Each copy is written to `tmp/` without a sync of its own; the
//! messages ending at about the same time then share one `syncfs(2)` of the archive's file
//! system (group commit: whoever finds no sync running starts one, the others wait for the
//! next that starts after their write), and only then is each renamed into `new/`. A crash
//! before the sync leaves files in `tmp/` only (cleared at start); a copy is never in `new/`
//! before its bytes are on disk. The renames are made durable by the batched sync of `new/`
//! ([`super::Archive::sync_new_dir`]) before the MTA gets its answer.
//!
//! Names are those of the Maildir convention (and of the `maildir` crate, which reads them):
//! `tmp/SECS.#COUNTERMNANOSPPID.HOST`, then `new/SECS.#COUNTERMNANOSPPIDVDEVIINO.HOST,S=SIZE`.

use std::{
    fs::File,
    io::{self, Write},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    sync::{
        Condvar, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        // A name that could break a Maildir file name ('/', ':') is replaced.
        hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
            .replace(['/', ':'], "_")
    })
}

/// A copy being written in `tmp/`; unlinked when dropped before it reaches `new/`.
pub struct TmpCopy {
    file: File,
    path: PathBuf,
    stem: (u64, usize, u32),
    delivered: bool,
}

impl TmpCopy {
    /// A new file in `root/tmp`.
    pub fn create(root: &Path) -> io::Result<TmpCopy> {
        let pid = std::process::id();
        loop {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(io::Error::other)?;
            let (secs, nanos) = (now.as_secs(), now.subsec_nanos());
            let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = root
                .join("tmp")
                .join(format!("{secs}.#{counter:x}M{nanos}P{pid}.{}", hostname()));
            match File::options().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(TmpCopy {
                        file,
                        path,
                        stem: (secs, counter, nanos),
                        delivered: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves the copy into `root/new` and returns its name. Call only after a sync that started
    /// after the last write ([`GroupSync::sync_after_write`]).
    pub fn into_new(mut self, root: &Path) -> io::Result<String> {
        let meta = self.file.metadata()?;
        let (secs, counter, nanos) = self.stem;
        let name = format!(
            "{secs}.#{counter:x}M{nanos}P{}V{}I{}.{},S={}",
            std::process::id(),
            meta.dev(),
            meta.ino(),
            hostname(),
            meta.size()
        );
        std::fs::rename(&self.path, root.join("new").join(&name))?;
        self.delivered = true;
        Ok(name)
    }

    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Write for TmpCopy {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for TmpCopy {
    fn drop(&mut self) {
        if !self.delivered {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[derive(Default)]
struct Generations {
    /// Syncs started and finished so far; one runs while `started > finished`.
    started: u64,
    finished: u64,
    /// The error of the last finished sync, if it failed.
    failed: Option<(io::ErrorKind, String)>,
}

/// One `syncfs` for the copies written meanwhile (group commit).
#[derive(Default)]
pub struct GroupSync {
    state: Mutex<Generations>,
    done: Condvar,
}

impl GroupSync {
    /// Returns once a sync of `file`'s file system that started after this call has finished:
    /// everything written before the call is on disk. Blocking.
    pub fn sync_after_write(&self, file: &File) -> io::Result<()> {
        let lock = || self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = lock();
        // The sync running now may have started before our write: the next one covers it.
        let needed = state.started + 1;
        loop {
            if state.finished >= needed {
                return match &state.failed {
                    None => Ok(()),
                    Some((kind, text)) => Err(io::Error::new(*kind, text.clone())),
                };
            }
            if state.started == state.finished {
                state.started += 1;
                let generation = state.started;
                drop(state);
                let result = syncfs(file);
                state = lock();
                state.finished = generation;
                state.failed = result.err().map(|e| (e.kind(), e.to_string()));
                self.done.notify_all();
                continue;
            }
            state = self.done.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// `syncfs(2)`: writes back and waits for every dirty page and inode of the file system (errors
/// reported since Linux 5.8).
fn syncfs(file: &File) -> io::Result<()> {
    // SAFETY: a valid open descriptor.
    match unsafe { libc::syncfs(file.as_raw_fd()) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_copy_reaches_new_under_a_maildir_name_and_an_abandoned_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let mut copy = TmpCopy::create(dir.path()).unwrap();
        copy.write_all(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        GroupSync::default().sync_after_write(copy.file()).unwrap();
        let name = copy.into_new(dir.path()).unwrap();
        assert!(name.ends_with(",S=20"), "{name}");
        assert_eq!(
            std::fs::read(dir.path().join("new").join(&name)).unwrap(),
            b"Subject: x\r\n\r\nbody\r\n"
        );
        // The maildir crate finds it by that name.
        assert!(
            maildir::Maildir::from(dir.path().to_path_buf())
                .find(&name)
                .is_some()
        );
        let abandoned = TmpCopy::create(dir.path()).unwrap();
        drop(abandoned);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn each_writer_waits_for_a_sync_started_after_its_call_and_starts_at_most_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(File::create(dir.path().join("f")).unwrap());
        let group = Arc::new(GroupSync::default());
        let writers: Vec<_> = (0..16)
            .map(|_| {
                let (group, file) = (group.clone(), file.clone());
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        let before = group.state.lock().unwrap().started;
                        group.sync_after_write(&file).unwrap();
                        // A sync that started after the call has finished.
                        assert!(group.state.lock().unwrap().finished > before);
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        // A thread's ten calls in a row need ten syncs; no call starts more than one (how many
        // are shared depends on timing, so it is the benchmark's to show).
        let syncs = group.state.lock().unwrap().finished;
        assert!((10..=160).contains(&syncs), "{syncs} syncs for 160 writes");
    }
}
