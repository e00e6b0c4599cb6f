//! What `--input` names, and how it becomes work: a file, a directory (walked
//! recursively) or a glob expands to a sorted list of [`InputFile`]s, which
//! [`plan_units`] groups into [`WorkUnit`]s. A unit's index is its position in that
//! plan — it never depends on rank or world size — so output names, and bytes, are the
//! same however the work is split.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, IoContext, Result};

/// One input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Where to open it.
    pub path: PathBuf,
    /// Its path relative to the input root (the directory or the glob's fixed prefix).
    pub rel: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: u128,
    /// The rows of a table shard this input is (a large shard is read by several work
    /// units, a range each); `None`: the whole file.
    pub rows: Option<RowRange>,
}

/// Rows `start..end` of a table shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRange {
    /// The first row.
    pub start: u64,
    /// One past the last row.
    pub end: u64,
}

impl InputFile {
    /// The name to show a person and record in rejects: the path as found.
    pub fn display(&self) -> String {
        self.path.display().to_string()
    }

    fn stat(path: PathBuf, rel: String) -> Result<Self> {
        let meta = fs::metadata(&path).at(&path)?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Ok(Self {
            bytes: meta.len(),
            path,
            rel,
            mtime_ns,
            rows: None,
        })
    }
}

/// Expands `--input` to the files `accept` takes, sorted by relative path.
/// Hidden entries and entries starting with `_` (rlpt's own `_manifest`) are skipped
/// when walking a directory.
pub fn expand(spec: &str, accept: impl Fn(&Path) -> bool) -> Result<Vec<InputFile>> {
    let problem = |problem: String| Error::Input {
        spec: spec.to_string(),
        problem,
    };
    let path = Path::new(spec);
    let mut files = if is_glob(spec) {
        expand_glob(spec, &accept).map_err(problem)?
    } else if path.is_dir() {
        let mut found = Vec::new();
        walk(path, path, &accept, &mut found)?;
        found
    } else if path.is_file() {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        vec![InputFile::stat(path.to_path_buf(), name)?]
    } else if path.exists() {
        return Err(problem(
            "not a regular file (a FIFO, socket or device): give a file, a directory or a glob"
                .into(),
        ));
    } else {
        return Err(problem("no such file or directory".into()));
    };
    if files.is_empty() {
        return Err(problem("matched no input files".into()));
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}

/// A filter for [`expand`] that keeps files not under `dir` (which need not exist).
pub fn outside(dir: &Path) -> impl Fn(&Path) -> bool {
    let dir = dir.canonicalize().ok();
    move |path: &Path| match (&dir, path.canonicalize()) {
        (Some(dir), Ok(path)) => !path.starts_with(dir),
        _ => true,
    }
}

fn is_glob(spec: &str) -> bool {
    spec.contains(['*', '?', '['])
}

fn expand_glob(
    spec: &str,
    accept: &impl Fn(&Path) -> bool,
) -> std::result::Result<Vec<InputFile>, String> {
    let root = glob_root(spec);
    let paths = glob::glob(spec).map_err(|err| format!("bad glob pattern: {err}"))?;
    let mut files = Vec::new();
    for entry in paths {
        let path = entry.map_err(|err| err.to_string())?;
        if path.is_file() && accept(&path) {
            let rel = relative(&root, &path);
            files.push(InputFile::stat(path, rel).map_err(|err| err.to_string())?);
        }
    }
    Ok(files)
}

/// The directory part of a glob before its first wildcard.
pub(crate) fn glob_root(spec: &str) -> PathBuf {
    let fixed = &spec[..spec.find(['*', '?', '[']).unwrap_or(spec.len())];
    match fixed.rfind('/') {
        Some(slash) => PathBuf::from(&fixed[..=slash]),
        None => PathBuf::from("."),
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn walk(
    root: &Path,
    dir: &Path,
    accept: &impl Fn(&Path) -> bool,
    found: &mut Vec<InputFile>,
) -> Result<()> {
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, accept, found)?;
        } else if !path.is_file() {
            // A FIFO would block the read for ever; a socket or device is no input.
            tracing::warn!(
                "skipping {}: not a regular file (a FIFO, socket, device or broken link)",
                path.display()
            );
        } else if accept(&path) {
            let rel = relative(root, &path);
            found.push(InputFile::stat(path, rel)?);
        }
    }
    Ok(())
}

/// A group of consecutive input files processed together: the unit of sharding
/// (rank `r` of `n` takes units with `index % n == r`), of resume and of output naming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkUnit {
    /// Position in the plan.
    pub index: usize,
    /// Its input files, in order.
    pub files: Vec<InputFile>,
    /// Other files its output depends on (another step's output): a change to them
    /// changes the fingerprint, so the unit is recomputed.
    pub deps: Vec<InputFile>,
}

impl WorkUnit {
    /// Total input bytes.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Identifies the unit's inputs and dependencies (names, sizes, modification
    /// times): when it changes, a finished unit is recomputed.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.files.iter().chain(&self.deps))
    }

    /// Identifies the unit's inputs alone.
    pub fn files_fingerprint(&self) -> String {
        fingerprint(self.files.iter())
    }
}

pub(crate) fn fingerprint<'a>(files: impl Iterator<Item = &'a InputFile>) -> String {
    let mut hasher = Xxh3::new();
    for file in files {
        hasher.update(file.rel.as_bytes());
        hasher.update(&[0]);
        hasher.update(&file.bytes.to_le_bytes());
        hasher.update(&file.mtime_ns.to_le_bytes());
    }
    format!("{:016x}", hasher.digest())
}

/// Groups files, in order, into units of about `unit_bytes`: a unit is closed when the
/// next file would take it past the limit, so a file larger than the limit is alone.
pub fn plan_units(files: Vec<InputFile>, unit_bytes: u64) -> Vec<WorkUnit> {
    let mut units: Vec<WorkUnit> = Vec::new();
    let mut current: Vec<InputFile> = Vec::new();
    let mut current_bytes = 0u64;
    for file in files {
        if !current.is_empty() && current_bytes + file.bytes > unit_bytes {
            units.push(WorkUnit {
                index: units.len(),
                files: std::mem::take(&mut current),
                deps: Vec::new(),
            });
            current_bytes = 0;
        }
        current_bytes += file.bytes;
        current.push(file);
    }
    if !current.is_empty() {
        units.push(WorkUnit {
            index: units.len(),
            files: current,
            deps: Vec::new(),
        });
    }
    units
}

/// Input files for listed paths, named relative to `root`.
pub fn stat_paths(paths: &[PathBuf], root: &Path) -> Result<Vec<InputFile>> {
    paths
        .iter()
        .map(|path| InputFile::stat(path.clone(), relative(root, path)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, rel: &str, bytes: usize) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, vec![b'x'; bytes]).unwrap();
    }

    fn rels(files: &[InputFile]) -> Vec<&str> {
        files.iter().map(|f| f.rel.as_str()).collect()
    }

    #[test]
    fn a_directory_is_walked_sorted_skipping_hidden_and_manifest_entries() {
        let dir = tempfile::tempdir().unwrap();
        for rel in [
            "b/2.jsonl",
            "a.jsonl",
            "b/1.jsonl",
            ".hidden.jsonl",
            "_manifest/x.jsonl",
            "c.txt",
        ] {
            touch(dir.path(), rel, 3);
        }
        let jsonl = |p: &Path| p.extension().is_some_and(|e| e == "jsonl");
        let files = expand(dir.path().to_str().unwrap(), jsonl).unwrap();
        assert_eq!(rels(&files), ["a.jsonl", "b/1.jsonl", "b/2.jsonl"]);
    }

    #[test]
    fn files_under_an_output_directory_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        for rel in ["a.jsonl", "out/part-00000-0000.parquet"] {
            touch(dir.path(), rel, 3);
        }
        let files = expand(
            dir.path().to_str().unwrap(),
            outside(&dir.path().join("out")),
        )
        .unwrap();
        assert_eq!(rels(&files), ["a.jsonl"]);
        let all = expand(
            dir.path().to_str().unwrap(),
            outside(&dir.path().join("missing")),
        )
        .unwrap();
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn a_glob_is_relative_to_its_fixed_prefix() {
        let dir = tempfile::tempdir().unwrap();
        for rel in ["x/b.jsonl", "x/a.jsonl", "x/skip.txt"] {
            touch(dir.path(), rel, 1);
        }
        let spec = format!("{}/x/*.jsonl", dir.path().display());
        let files = expand(&spec, |_| true).unwrap();
        assert_eq!(rels(&files), ["a.jsonl", "b.jsonl"]);
    }

    #[test]
    fn nothing_to_read_is_an_error_naming_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let spec = format!("{}/*.jsonl", dir.path().display());
        let err = expand(&spec, |_| true).unwrap_err().to_string();
        assert!(
            err.contains("matched no input files") && err.contains(&spec),
            "{err}"
        );
        let missing = format!("{}/nope", dir.path().display());
        assert!(
            expand(&missing, |_| true)
                .unwrap_err()
                .to_string()
                .contains("no such file")
        );
    }

    #[test]
    fn units_group_small_files_and_isolate_big_ones() {
        let file = |rel: &str, bytes| InputFile {
            path: rel.into(),
            rel: rel.into(),
            bytes,
            mtime_ns: 0,
            rows: None,
        };
        let files = vec![
            file("a", 40),
            file("b", 40),
            file("c", 40),
            file("d", 500),
            file("e", 10),
        ];
        let units = plan_units(files, 100);
        let grouped: Vec<Vec<&str>> = units.iter().map(|u| rels(&u.files)).collect();
        assert_eq!(grouped, [vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"]]);
        assert_eq!(
            units.iter().map(|u| u.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert_ne!(units[0].fingerprint(), units[1].fingerprint());
    }
}
