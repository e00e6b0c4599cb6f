//! Atomic file replacement: write `NAME.tmp`, fsync, rename over `NAME`, fsync the
//! directory. A reader (or a rerun after a crash) sees the old file or the new one,
//! never a half-written one; a leftover `.tmp` is garbage a rerun deletes. A file that
//! several processes may write at once (`stage.json`, written by every rank) gets a
//! temporary name of its own per process, so their writes never mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IoContext, Result};

/// Suffix of files being written.
pub const TMP_SUFFIX: &str = ".tmp";

/// `path` with [`TMP_SUFFIX`] appended.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// Writes `bytes` to `path` atomically; only one process writes `path` at a time.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via(&tmp_path(path), path, bytes)
}

/// Writes `bytes` to `path` atomically when other processes (or threads) may be
/// writing it too: each write goes through a temporary name of its own.
pub fn write_shared_file(path: &Path, bytes: &[u8]) -> Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let write = WRITES.fetch_add(1, Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}-{write}{TMP_SUFFIX}", std::process::id()));
    write_via(Path::new(&tmp), path, bytes)
}

fn write_via(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(tmp).at(tmp)?;
    file.write_all(bytes).at(tmp)?;
    commit(file, tmp, path)
}

/// Finishes an atomic write: fsyncs `file` (open on `tmp`), renames `tmp` to `path`
/// and fsyncs the directory so the rename survives a power cut.
pub fn commit(file: File, tmp: &Path, path: &Path) -> Result<()> {
    file.sync_all().at(tmp)?;
    drop(file);
    fs::rename(tmp, path).at(path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Fsyncs a directory, making renames in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Removes a file; a file already gone is fine.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err).at(path),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_file_replaces_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stage.json");
        write_file(&path, b"one").unwrap();
        write_file(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!tmp_path(&path).exists());
        remove_if_exists(&path).unwrap();
        remove_if_exists(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn concurrent_shared_writes_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stage.json");
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| (0..50).for_each(|_| write_shared_file(&path, b"same").unwrap()));
            }
        });
        assert_eq!(fs::read(&path).unwrap(), b"same");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }
}
