//! Atomic file replacement: write `NAME.tmp`, fsync, rename over `NAME`, fsync the
//! directory. A reader (or a rerun after a crash) sees the old file or the new one,
//! never a half-written one; a leftover `.tmp` is garbage a rerun deletes. A file that
//! several processes may write at once (`stage.json`, written by every rank, always
//! with the same bytes) gets a temporary name of its own per write, so their writes
//! never mix; once its rename is done, each such write deletes the other temporaries
//! of that name (those a killed write left behind, and those of writes still going),
//! and a write whose own temporary another one deleted that way counts as done, since
//! the file then holds the deleter's bytes (if they differ from its own it writes
//! again). Deleting only after the rename keeps the file present whenever a write
//! finds its temporary gone.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{At, FileError, FileResult};

/// Suffix of files being written.
pub const TMP_SUFFIX: &str = ".tmp";

/// `path` with [`TMP_SUFFIX`] appended.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// Writes `bytes` to `path` atomically (creating its directory); only one process
/// writes `path` at a time.
pub fn write_file(path: &Path, bytes: &[u8]) -> FileResult<()> {
    if let Some(parent) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(parent).at_file(parent)?;
    }
    write_via(&tmp_path(path), path, bytes)
}

/// Writes `bytes` to `path` atomically when other processes (or threads) may be
/// writing it too: each write goes through a temporary name of its own.
pub fn write_shared_file(path: &Path, bytes: &[u8]) -> FileResult<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    const ATTEMPTS: usize = 4;
    for attempt in 1.. {
        let write = WRITES.fetch_add(1, Ordering::Relaxed);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{}-{write}{TMP_SUFFIX}", std::process::id()));
        match write_via(Path::new(&tmp), path, bytes) {
            Ok(()) => return remove_shared_temporaries(path),
            Err(FileError { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && attempt < ATTEMPTS =>
            {
                // A writer that finished first removed our temporary with the rest.
                if fs::read(path).is_ok_and(|written| written == bytes) {
                    return Ok(());
                }
            }
            failed => return failed,
        }
    }
    unreachable!("the last attempt returns")
}

/// Deletes the per-write temporaries of `path` (`NAME.PID-N.tmp`) in its directory.
fn remove_shared_temporaries(path: &Path) -> FileResult<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).at_file(dir),
    };
    for entry in entries {
        let entry = entry.at_file(dir)?;
        let file = entry.file_name();
        let file = file.to_string_lossy();
        let tag = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(TMP_SUFFIX));
        if tag.is_some_and(|t| t.contains('-') && t.chars().all(|c| c.is_ascii_digit() || c == '-'))
        {
            remove_if_exists(&entry.path())?;
        }
    }
    Ok(())
}

fn write_via(tmp: &Path, path: &Path, bytes: &[u8]) -> FileResult<()> {
    let mut file = File::create(tmp).at_file(tmp)?;
    file.write_all(bytes).at_file(tmp)?;
    commit(file, tmp, path)
}

/// Finishes an atomic write: fsyncs `file` (open on `tmp`), renames `tmp` to `path`
/// and fsyncs the directory so the rename survives a power cut.
pub fn commit(file: File, tmp: &Path, path: &Path) -> FileResult<()> {
    file.sync_all().at_file(tmp)?;
    drop(file);
    fs::rename(tmp, path).at_file(path)?;
    sync_parent(path)
}

/// Finishes an atomic write of a file another writer filled at `tmp` (a library that
/// writes to a path): fsyncs it, renames it to `path`, fsyncs the directory.
pub fn commit_written(tmp: &Path, path: &Path) -> FileResult<()> {
    commit(File::open(tmp).at_file(tmp)?, tmp, path)
}

/// Makes the directory `staging` (every file in it written) durable and renames it to
/// `target`, replacing a `target` already there: a reader sees the old directory, no
/// directory, or the whole new one, never part of it.
pub fn publish_dir(staging: &Path, target: &Path) -> FileResult<()> {
    for entry in fs::read_dir(staging).at_file(staging)? {
        let path = entry.at_file(staging)?.path();
        File::open(&path)
            .and_then(|f| f.sync_all())
            .at_file(&path)?;
    }
    sync_dir(staging)?;
    if target.exists() {
        fs::remove_dir_all(target).at_file(target)?;
    }
    fs::rename(staging, target).at_file(target)?;
    sync_parent(target)
}

/// Fsyncs the directory holding `path`, making a rename to `path` durable. A bare
/// file name's parent is "", which cannot be opened: it is the working directory.
fn sync_parent(path: &Path) -> FileResult<()> {
    let parent = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    sync_dir(parent.unwrap_or(Path::new(".")))
}

/// Fsyncs a directory, making renames in it durable.
pub fn sync_dir(dir: &Path) -> FileResult<()> {
    File::open(dir).and_then(|d| d.sync_all()).at_file(dir)
}

/// Removes a file; a file already gone is fine.
pub fn remove_if_exists(path: &Path) -> FileResult<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err).at_file(path),
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
    fn a_published_directory_replaces_the_old_one_whole() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("step-1");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("old.bin"), b"old").unwrap();
        let staging = dir.path().join(".step-1.tmp");
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join("model.bin"), b"new").unwrap();
        publish_dir(&staging, &target).unwrap();
        assert!(!staging.exists());
        assert!(!target.join("old.bin").exists());
        assert_eq!(fs::read(target.join("model.bin")).unwrap(), b"new");
        let missing = publish_dir(&staging, &target).unwrap_err();
        assert_eq!(missing.path, staging);
    }

    #[test]
    fn a_file_written_elsewhere_is_committed_in_place_of_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        fs::write(&path, b"old").unwrap();
        fs::write(tmp_path(&path), b"new").unwrap();
        commit_written(&tmp_path(&path), &path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn a_shared_write_deletes_what_killed_writes_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stage.json");
        let killed = dir.path().join("stage.json.4242-0.tmp");
        fs::write(&killed, b"half").unwrap();
        fs::write(dir.path().join("stage.json.tmp"), b"not a shared write's").unwrap();
        fs::write(dir.path().join("unit-00000.json"), b"{}").unwrap();
        write_shared_file(&path, b"whole").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        assert!(!killed.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
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
