//! Locks that keep two rlpt processes from mixing their output in one directory
//! (`flock` through `std::fs::File::lock`; released by the kernel when a process dies,
//! so a killed run leaves no stale lock).
//!
//! - A stage directory: every process writing it holds `_manifest/lock` shared while
//!   it runs under the config `stage.json` records, so the ranks of one run work side
//!   by side; a process that must (re)write `stage.json` — a fresh directory, or
//!   `--force` with another config — takes it exclusively first, and gives up, naming
//!   the holders' pids, while another run holds it.
//! - A work unit: `_manifest/locks/unit-N`, held exclusively while the unit is
//!   computed, so two processes of the same config never write one unit at once (the
//!   second waits, then reuses the first one's work).
//! - A training run: `rlpt.lock` in its output directory, exclusively for the run.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// How long a process waits for another one to finish (re)writing a directory's
/// config before it gives up.
const WAIT_FOR_WRITER: Duration = Duration::from_secs(10);

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct Held {
    file: File,
    path: PathBuf,
}

impl Held {
    fn new(file: File, path: &Path) -> Self {
        Self {
            file,
            path: path.to_path_buf(),
        }
    }

    /// Trades an exclusive lock for a shared one, after checking with `still_ours`
    /// that nobody changed the directory in the instant between.
    pub fn share(self, still_ours: impl Fn() -> Result<bool>) -> Result<Self> {
        self.file.unlock().at(&self.path)?;
        self.file.lock_shared().at(&self.path)?;
        if !still_ours()? {
            return Err(busy(&self.path, "rewrote its configuration meanwhile"));
        }
        Ok(self)
    }
}

fn open(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .at(path)
}

/// What a stage process holds on its directory's lock.
#[derive(Debug)]
pub enum DirLock {
    /// The directory already records this process's config: write units under it.
    Shared(Held),
    /// The config must be (re)written first; then [`Held::share`].
    Exclusive(Held),
}

/// Locks the stage directory lock file `path`: shared when `is_ours()` says the
/// directory records this process's config, else exclusive — waiting a little for a
/// process that is (re)writing it, and refusing while another run works in it.
pub fn stage_dir(path: &Path, is_ours: impl Fn() -> Result<bool>) -> Result<DirLock> {
    let file = open(path)?;
    let started = Instant::now();
    loop {
        if is_ours()? {
            file.lock_shared().at(path)?;
            if is_ours()? {
                return Ok(DirLock::Shared(Held::new(file, path)));
            }
            file.unlock().at(path)?;
        }
        match file.try_lock() {
            Ok(()) => return Ok(DirLock::Exclusive(Held::new(file, path))),
            Err(TryLockError::WouldBlock) if started.elapsed() < WAIT_FOR_WRITER => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(busy(path, "is writing it with another configuration"));
            }
            Err(TryLockError::Error(err)) => return Err(err).at(path),
        }
    }
}

/// Locks `path` exclusively, waiting for whoever holds it.
pub fn wait_exclusive(path: &Path) -> Result<Held> {
    let file = open(path)?;
    file.lock().at(path)?;
    Ok(Held::new(file, path))
}

/// Locks `path` exclusively, or refuses naming the holders.
pub fn exclusive(path: &Path, what: &str) -> Result<Held> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Held::new(file, path)),
        Err(TryLockError::WouldBlock) => Err(busy(path, what)),
        Err(TryLockError::Error(err)) => Err(err).at(path),
    }
}

fn busy(lock: &Path, doing: &str) -> Error {
    let holders = holders(lock);
    let who = if holders.is_empty() {
        "another rlpt process".to_string()
    } else {
        let pids: Vec<String> = holders.iter().map(u32::to_string).collect();
        format!("another rlpt process (pid {})", pids.join(", "))
    };
    Error::Busy {
        lock: lock.to_path_buf(),
        problem: format!("{who} {doing}; wait for it to finish, or choose another directory"),
    }
}

/// The processes other than this one that have `lock` open, from `/proc/*/fd` (empty
/// where that cannot be read).
fn holders(lock: &Path) -> Vec<u32> {
    let Ok(target) = std::fs::canonicalize(lock) else {
        return Vec::new();
    };
    let me = std::process::id();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = processes
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                    .any(|link| link == target)
            })
        })
        .collect();
    pids.sort_unstable();
    pids
}
