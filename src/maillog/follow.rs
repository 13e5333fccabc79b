//! Followers: complete lines from a log file (surviving rename and copytruncate rotation),
//! from journald (`journalctl --output=json`), or from stdin, each with the position after it
//! so the store can save the position in the same transaction as the events.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

/// Where reading stopped: the byte after the last line handed out (files) or the journal
/// cursor of the last entry (journald).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    pub path: PathBuf,
    pub inode: u64,
    pub offset: u64,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedLine {
    /// The line without its newline (invalid UTF-8 replaced).
    pub text: String,
    /// Position just after this line: resuming there neither repeats nor skips it.
    pub position: LogPosition,
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("journal entry: {0}")]
    Journal(String),
    #[error("journalctl: {0}")]
    Spawn(io::Error),
    #[error("receiver dropped")]
    Closed,
    #[error("follower task: {0}")]
    Task(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FollowError + '_ {
    move |source| FollowError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A line longer than this is handed out in pieces rather than buffered without bound.
const MAX_LINE: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;

struct Open {
    file: File,
    inode: u64,
    /// Bytes consumed into complete lines (the position after the last line handed out).
    offset: u64,
    /// Bytes after `offset` already read, waiting for their newline.
    partial: Vec<u8>,
}

/// Follows one file by polling. Call [`FileFollower::poll`] (or [`FileFollower::run`]).
pub struct FileFollower {
    path: PathBuf,
    cur: Option<Open>,
    /// A saved position not applied yet (the file may not exist yet).
    start: Option<LogPosition>,
    /// The inode at `path` differs from ours: switch after one quiet poll of the old file,
    /// so a writer still appending to the renamed file does not lose lines.
    rotated_pending: bool,
    /// Soft cap on lines per poll (the read chunk in hand is finished first).
    pub max_batch: usize,
}

impl FileFollower {
    /// Follows `path` from `start` (a position this follower handed out before), or from the
    /// beginning of the file when `start` is None.
    pub fn new(path: impl Into<PathBuf>, start: Option<LogPosition>) -> Self {
        FileFollower {
            path: path.into(),
            cur: None,
            start,
            rotated_pending: false,
            max_batch: 10_000,
        }
    }

    /// The position after the last line returned.
    pub fn position(&self) -> LogPosition {
        match &self.cur {
            Some(o) => LogPosition {
                path: self.path.clone(),
                inode: o.inode,
                offset: o.offset,
                cursor: None,
            },
            None => self.start.clone().unwrap_or_else(|| LogPosition {
                path: self.path.clone(),
                ..Default::default()
            }),
        }
    }

    fn open_initial(&mut self) -> Result<bool, FollowError> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(&self.path)(e)),
        };
        let meta = file.metadata().map_err(io_err(&self.path))?;
        let mut offset = 0;
        if let Some(start) = self.start.take() {
            if start.inode == meta.ino() && meta.len() >= start.offset {
                offset = start.offset;
            } else if start.inode != meta.ino() && start.inode != 0 {
                // Rotated while we were down: finish the old file first if it is still beside.
                if let Some(old) = find_by_inode(&self.path, start.inode)
                    && let Ok(mut f) = File::open(&old)
                    && f.seek(SeekFrom::Start(start.offset)).is_ok()
                {
                    self.cur = Some(Open {
                        file: f,
                        inode: start.inode,
                        offset: start.offset,
                        partial: Vec::new(),
                    });
                    self.rotated_pending = true;
                    return Ok(true);
                }
            }
            // Same inode but shorter: truncated while we were down; read it from the start.
        }
        let mut file = file;
        file.seek(SeekFrom::Start(offset))
            .map_err(io_err(&self.path))?;
        self.cur = Some(Open {
            file,
            inode: meta.ino(),
            offset,
            partial: Vec::new(),
        });
        Ok(true)
    }

    /// Reads whatever complete lines are available now (at most `max_batch`).
    pub fn poll(&mut self) -> Result<Vec<FollowedLine>, FollowError> {
        let mut out = Vec::new();
        if self.cur.is_none() && !self.open_initial()? {
            return Ok(out);
        }
        loop {
            let got = self.read_available(&mut out)?;
            if out.len() >= self.max_batch {
                return Ok(out);
            }
            let Some(cur) = self.cur.as_mut() else {
                return Ok(out);
            };
            match std::fs::metadata(&self.path) {
                Ok(meta) if meta.ino() != cur.inode => {
                    if got > 0 && !self.rotated_pending {
                        // Renamed: give the writer one more poll on the old file.
                        self.rotated_pending = true;
                        return Ok(out);
                    }
                    if !cur.partial.is_empty() {
                        // The old file is finished: its unterminated tail is a line.
                        let tail = std::mem::take(&mut cur.partial);
                        cur.offset += tail.len() as u64;
                        let position = LogPosition {
                            path: self.path.clone(),
                            inode: cur.inode,
                            offset: cur.offset,
                            cursor: None,
                        };
                        out.push(FollowedLine {
                            text: to_text(&tail),
                            position,
                        });
                    }
                    let file = File::open(&self.path).map_err(io_err(&self.path))?;
                    self.cur = Some(Open {
                        file,
                        inode: meta.ino(),
                        offset: 0,
                        partial: Vec::new(),
                    });
                    self.rotated_pending = false;
                    continue;
                }
                Ok(meta) if meta.len() < cur.offset + cur.partial.len() as u64 => {
                    // copytruncate: the file shrank under us; start again at 0.
                    cur.file
                        .seek(SeekFrom::Start(0))
                        .map_err(io_err(&self.path))?;
                    cur.offset = 0;
                    cur.partial.clear();
                    continue;
                }
                // Missing path: rotation in progress; keep the old file until a new one appears.
                _ => return Ok(out),
            }
        }
    }

    /// Reads to EOF of the current file, appending complete lines. Returns bytes read.
    fn read_available(&mut self, out: &mut Vec<FollowedLine>) -> Result<usize, FollowError> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(0);
        };
        let mut total = 0;
        let mut buf = vec![0u8; READ_CHUNK];
        while out.len() < self.max_batch {
            let n = match cur.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(&self.path)(e)),
            };
            total += n;
            let mut chunk = &buf[..n];
            while let Some(nl) = chunk.iter().position(|&c| c == b'\n') {
                let line_len = cur.partial.len() + nl + 1;
                let text = if cur.partial.is_empty() {
                    to_text(&chunk[..nl])
                } else {
                    cur.partial.extend_from_slice(&chunk[..nl]);
                    let t = to_text(&cur.partial);
                    cur.partial.clear();
                    t
                };
                cur.offset += line_len as u64;
                out.push(FollowedLine {
                    text,
                    position: LogPosition {
                        path: self.path.clone(),
                        inode: cur.inode,
                        offset: cur.offset,
                        cursor: None,
                    },
                });
                chunk = &chunk[nl + 1..];
            }
            cur.partial.extend_from_slice(chunk);
            if cur.partial.len() > MAX_LINE {
                let piece = std::mem::take(&mut cur.partial);
                cur.offset += piece.len() as u64;
                out.push(FollowedLine {
                    text: to_text(&piece),
                    position: LogPosition {
                        path: self.path.clone(),
                        inode: cur.inode,
                        offset: cur.offset,
                        cursor: None,
                    },
                });
            }
        }
        if out.len() >= self.max_batch && !cur.partial.is_empty() {
            // Stopped early: rewind to the end of the last complete line so nothing is held.
            cur.file
                .seek(SeekFrom::Start(cur.offset))
                .map_err(io_err(&self.path))?;
            cur.partial.clear();
        }
        Ok(total)
    }

    /// Polls every `interval`, sending non-empty batches until the receiver goes away.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Vec<FollowedLine>>,
        interval: Duration,
    ) -> Result<(), FollowError> {
        loop {
            // File reads block: do them off the async workers.
            let (back, batch) = tokio::task::spawn_blocking(move || {
                let batch = self.poll();
                (self, batch)
            })
            .await
            .map_err(|e| FollowError::Task(e.to_string()))?;
            self = back;
            let batch = batch?;
            // A full batch means more is waiting: poll again at once.
            let full = batch.len() >= self.max_batch;
            if !batch.is_empty() && tx.send(batch).await.is_err() {
                return Err(FollowError::Closed);
            }
            if !full {
                tokio::time::sleep(interval).await;
            }
        }
    }
}

fn to_text(b: &[u8]) -> String {
    let b = b.strip_suffix(b"\r").unwrap_or(b);
    String::from_utf8_lossy(b).into_owned()
}

/// A file beside `path` (same directory, name starting with its name, not compressed)
/// whose inode is `inode`: where a rotated log went (`maillog.1`, `mail.log-20260531`).
fn find_by_inode(path: &Path, inode: u64) -> Option<PathBuf> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name()?.to_str()?;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let fname = entry.file_name();
        let Some(f) = fname.to_str() else { continue };
        if f != name
            && f.starts_with(name)
            && !f.ends_with(".gz")
            && !f.ends_with(".xz")
            && !f.ends_with(".bz2")
            && let Ok(m) = entry.metadata()
            && m.ino() == inode
        {
            return Some(entry.path());
        }
    }
    None
}

/// Opens a log for a one-off import, decompressing `.gz` (by magic bytes) transparently.
pub fn open_import(path: impl AsRef<Path>) -> Result<Box<dyn BufRead + Send>, FollowError> {
    let path = path.as_ref();
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut magic = [0u8; 2];
    let n = read_fully(&mut f, &mut magic).map_err(io_err(path))?;
    // Put the peeked bytes back in front instead of seeking, so pipes work too.
    let r = io::Cursor::new(magic).take(n as u64).chain(f);
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::read::MultiGzDecoder::new(r),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(256 * 1024, r)))
    }
}

fn read_fully(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Turns one `journalctl --output=json` entry into a syslog-style line the parser reads
/// (`2026-05-31T04:26:22.123456+00:00 host ident[pid]: message`) and its cursor.
pub fn journal_entry_to_line(json: &str) -> Result<(String, String), FollowError> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| FollowError::Journal(e.to_string()))?;
    let field = |k: &str| -> Option<String> {
        match v.get(k)? {
            serde_json::Value::String(s) => Some(s.clone()),
            // journald sends non-UTF-8 or binary fields as arrays of bytes.
            serde_json::Value::Array(a) => {
                let bytes: Vec<u8> = a
                    .iter()
                    .filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
                    .collect();
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let cursor = field("__CURSOR").ok_or_else(|| FollowError::Journal("no __CURSOR".into()))?;
    let micros: i128 = field("__REALTIME_TIMESTAMP")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| FollowError::Journal("no __REALTIME_TIMESTAMP".into()))?;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(micros * 1000)
        .map_err(|e| FollowError::Journal(e.to_string()))?;
    let host = field("_HOSTNAME").unwrap_or_else(|| "localhost".into());
    let ident = field("SYSLOG_IDENTIFIER")
        .or_else(|| field("_COMM"))
        .unwrap_or_else(|| "unknown".into());
    let pid = field("SYSLOG_PID").or_else(|| field("_PID"));
    let msg = field("MESSAGE").unwrap_or_default();
    // One entry is one line: a stray newline in MESSAGE must not split it.
    let msg = msg.replace(['\n', '\r'], " ");
    let stamp = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    );
    let line = match pid {
        Some(p) => format!("{stamp} {host} {ident}[{p}]: {msg}"),
        None => format!("{stamp} {host} {ident}: {msg}"),
    };
    Ok((line, cursor))
}

/// Follows journald through `journalctl`; mail facility entries only (postfix, sendmail).
#[derive(Debug, Clone, Default)]
pub struct JournalFollower {
    /// Resume after this cursor (from a saved [`LogPosition::cursor`]).
    pub cursor: Option<String>,
    /// Without a cursor: start at this `--since` time (journalctl syntax); else all entries.
    pub since: Option<String>,
    pub journalctl: Option<PathBuf>,
}

impl JournalFollower {
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--follow".to_owned(),
            "--output=json".to_owned(),
            "--no-pager".to_owned(),
        ];
        match (&self.cursor, &self.since) {
            (Some(c), _) => a.push(format!("--after-cursor={c}")),
            (None, Some(s)) => a.push(format!("--since={s}")),
            (None, None) => a.push("--lines=all".to_owned()),
        }
        // LOG_MAIL: postfix/*, sendmail, sm-mta all log there; the parser filters the rest.
        a.push("SYSLOG_FACILITY=2".to_owned());
        a
    }

    /// Runs journalctl and sends batches of lines until it exits or the receiver goes away.
    pub async fn run(self, tx: mpsc::Sender<Vec<FollowedLine>>) -> Result<(), FollowError> {
        let prog = self
            .journalctl
            .clone()
            .unwrap_or_else(|| PathBuf::from("journalctl"));
        let mut child = tokio::process::Command::new(&prog)
            .args(self.args())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(FollowError::Spawn)?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| FollowError::Journal("no stdout".into()))?;
        let mut reader = tokio::io::BufReader::new(stdout);
        let mut batch = Vec::new();
        let mut buf = String::new();
        loop {
            buf.clear();
            let n = reader
                .read_line(&mut buf)
                .await
                .map_err(FollowError::Spawn)?;
            if n == 0 {
                break;
            }
            match journal_entry_to_line(buf.trim_end()) {
                Ok((text, cursor)) => batch.push(FollowedLine {
                    text,
                    position: journal_position(cursor),
                }),
                Err(e) => tracing::warn!("skipping journal entry: {e}"),
            }
            if !batch.is_empty() && (reader.buffer().is_empty() || batch.len() >= 1000) {
                tx.send(std::mem::take(&mut batch))
                    .await
                    .map_err(|_| FollowError::Closed)?;
            }
        }
        if !batch.is_empty() {
            tx.send(batch).await.map_err(|_| FollowError::Closed)?;
        }
        let status = child.wait().await.map_err(FollowError::Spawn)?;
        Err(FollowError::Journal(format!("journalctl exited: {status}")))
    }
}

fn journal_position(cursor: String) -> LogPosition {
    LogPosition {
        path: PathBuf::from("journal"),
        inode: 0,
        offset: 0,
        cursor: Some(cursor),
    }
}

/// Reads standard input on a thread; each line's position counts bytes read (`path` is `-`).
pub fn spawn_stdin(
    tx: mpsc::Sender<Vec<FollowedLine>>,
) -> std::thread::JoinHandle<Result<(), FollowError>> {
    std::thread::spawn(move || {
        let stdin = io::stdin();
        read_lines_into(stdin.lock(), Path::new("-"), &tx)
    })
}

/// Shared by stdin and tests: lines from any reader, in batches, until EOF.
pub fn read_lines_into(
    mut r: impl BufRead,
    path: &Path,
    tx: &mpsc::Sender<Vec<FollowedLine>>,
) -> Result<(), FollowError> {
    let mut offset = 0u64;
    let mut batch = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        offset += n as u64;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        batch.push(FollowedLine {
            text: to_text(line),
            position: LogPosition {
                path: path.to_owned(),
                inode: 0,
                offset,
                cursor: None,
            },
        });
        // Asking the reader whether more is buffered would block on a quiet pipe, so each
        // line goes out at once; bulk imports use `open_import` instead.
        tx.blocking_send(std::mem::take(&mut batch))
            .map_err(|_| FollowError::Closed)?;
    }
    Ok(())
}
