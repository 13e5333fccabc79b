//! Copies made durable together. The store writer takes the copies of the messages ending at
//! about the same time: each is written to `tmp/` without a sync of its own, then all are
//! written back at once ([`write_back`]), and only then renamed into `new/`; the one sync of
//! `new/` that follows ([`super::Archive::sync_new_dir`], before the MTA gets its answers)
//! makes the batch durable. A crash before it leaves files in `tmp/` (cleared at start) or, in
//! `new/`, only copies whose bytes were written back before their rename: never a partial file.
//!
//! Names are those of the Maildir convention (and of the `maildir` crate, which reads them):
//! `tmp/SECS.#COUNTERMNANOSPPID.HOST`, then `new/SECS.#COUNTERMNANOSPPIDVDEVIINO.HOST,S=SIZE`.

use std::{
    fs::File,
    io::{self, Write},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    sync::{
        OnceLock,
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

    /// Moves the copy into `root/new` and returns its name. Call only once [`write_back`] has
    /// returned for it.
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

/// How a batch of copies reaches the disk before its renames into `new/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataSync {
    /// ext4 and XFS: each copy's pages are written back (`sync_file_range`), which allocates
    /// its blocks and sets its size in the running journal transaction. The sync of `new/`
    /// then commits that transaction, renames included, after a cache flush: one journal
    /// commit for the batch, and nothing of other processes written out.
    WriteBack,
    /// Any other file system, whose journal (if any) promises no such order: one `syncfs(2)`
    /// for the batch, before the renames.
    FileSystem,
}

impl DataSync {
    /// What the file system holding `dir` needs; [`DataSync::FileSystem`] when unsure.
    pub fn of(dir: &Path) -> DataSync {
        use std::os::unix::ffi::OsStrExt;
        let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
            return DataSync::FileSystem;
        };
        // SAFETY: statfs fills the zeroed struct it is given; the path is NUL-terminated.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statfs(path.as_ptr(), &mut fs) } != 0 {
            return DataSync::FileSystem;
        }
        #[allow(clippy::unnecessary_cast)] // f_type's width differs between platforms
        match fs.f_type as i64 {
            t if t == libc::EXT4_SUPER_MAGIC as i64 || t == libc::XFS_SUPER_MAGIC as i64 => {
                DataSync::WriteBack
            }
            _ => DataSync::FileSystem,
        }
    }
}

/// Writes back every copy of a batch, as [`DataSync`] says; one result per copy, in order.
/// Written back, a copy's pages are dropped from the page cache: a week of copies, seldom read,
/// would otherwise crowd out the MTA's queue and the store.
pub fn write_back(copies: &[&TmpCopy], how: DataSync) -> Vec<io::Result<()>> {
    let results: Vec<io::Result<()>> = match how {
        DataSync::WriteBack => {
            // Start every copy's writeback first, so the device sees them together, then wait.
            for copy in copies {
                let _ = sync_file_range(copy.file(), libc::SYNC_FILE_RANGE_WRITE);
            }
            let wait = libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER;
            copies
                .iter()
                .map(|copy| sync_file_range(copy.file(), wait))
                .collect()
        }
        DataSync::FileSystem => match copies.first().map(|c| syncfs(c.file())) {
            Some(Err(e)) => copies
                .iter()
                .map(|_| Err(io::Error::new(e.kind(), e.to_string())))
                .collect(),
            _ => copies.iter().map(|_| Ok(())).collect(),
        },
    };
    for (copy, result) in copies.iter().zip(&results) {
        if result.is_ok() {
            // SAFETY: a valid open descriptor; advice only, a failure changes nothing.
            unsafe {
                libc::posix_fadvise(copy.file().as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            }
        }
    }
    results
}

fn sync_file_range(file: &File, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: a valid open descriptor; offset 0 and length 0 mean the whole file.
    match unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, flags) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
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

    fn maildir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        dir
    }

    #[test]
    fn a_copy_reaches_new_under_a_maildir_name_and_an_abandoned_one_leaves_nothing() {
        let dir = maildir();
        let mut copy = TmpCopy::create(dir.path()).unwrap();
        copy.write_all(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let how = DataSync::of(dir.path());
        assert!(write_back(&[&copy], how)[0].is_ok());
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
    fn a_batch_is_written_back_either_way_and_leaves_the_page_cache() {
        for how in [DataSync::WriteBack, DataSync::FileSystem] {
            let dir = maildir();
            let copies: Vec<TmpCopy> = (0..8)
                .map(|i| {
                    let mut copy = TmpCopy::create(dir.path()).unwrap();
                    copy.write_all(&vec![b'a' + i; 20_000]).unwrap();
                    copy
                })
                .collect();
            // Just written, the pages are in the page cache (dirty: nothing can drop them).
            assert!(copies.iter().all(|c| resident_pages(&c.path) > 0));
            let results = write_back(&copies.iter().collect::<Vec<_>>(), how);
            assert_eq!(results.len(), 8);
            assert!(results.iter().all(|r| r.is_ok()), "{how:?}: {results:?}");
            // Only clean pages can be dropped: none left means every page was written back.
            for copy in &copies {
                assert_eq!(resident_pages(&copy.path), 0, "{how:?}");
            }
            for (i, copy) in copies.into_iter().enumerate() {
                let name = copy.into_new(dir.path()).unwrap();
                let bytes = std::fs::read(dir.path().join("new").join(name)).unwrap();
                assert_eq!(bytes, vec![b'a' + i as u8; 20_000]);
            }
        }
    }

    /// How many of the file's pages are in the page cache (`mincore(2)` of a mapping of it).
    fn resident_pages(path: &Path) -> usize {
        let file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: a read-only shared mapping of a regular file of `len` bytes, unmapped below;
        // mincore writes one byte per page into a vector of that many.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let mut vec = vec![0u8; len.div_ceil(page)];
            assert_eq!(libc::mincore(map, len, vec.as_mut_ptr()), 0);
            libc::munmap(map, len);
            vec.iter().filter(|&&b| b & 1 == 1).count()
        }
    }

    #[test]
    fn ext4_and_xfs_are_written_back_other_file_systems_synced_whole() {
        // This machine's /tmp and /dev/shm: ext4 (or XFS) and tmpfs on Debian.
        let tmp = DataSync::of(&std::env::temp_dir());
        let shm = DataSync::of(Path::new("/dev/shm"));
        assert_eq!(shm, DataSync::FileSystem);
        assert_eq!(
            DataSync::of(Path::new("/no/such/dir")),
            DataSync::FileSystem
        );
        let kind = std::process::Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(std::env::temp_dir())
            .output()
            .unwrap();
        let kind = String::from_utf8_lossy(&kind.stdout);
        let expected = match kind.trim() {
            "ext2/ext3" | "xfs" => DataSync::WriteBack,
            _ => DataSync::FileSystem,
        };
        assert_eq!(tmp, expected, "{kind}");
    }
}
