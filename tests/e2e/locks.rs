//! Two processes on one output directory: a run that would rewrite a directory another
//! one is writing, or a second trainer on one `--output`, is refused naming the pid
//! that holds it; a run of the same config waits and reuses.

use std::fs::OpenOptions;

use crate::harness::*;

/// Regression: two `--force` runs with different configs on one directory left a mix
/// of both (one exited 0), and two trainers on one `--output` interleaved checkpoints.
#[test]
fn a_directory_another_run_writes_is_refused_naming_its_pid() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("documents");
    rlpt_ok(&ingest_args(&sample_input(), &out, &[]));
    // Another run of that config works in the directory: it holds the lock shared.
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .open(out.join("_manifest/lock"))
        .unwrap();
    lock.lock_shared().unwrap();
    let same = rlpt(&ingest_args(&sample_input(), &out, &[]));
    assert!(
        same.status.success(),
        "the same config shares it: {}",
        stderr(&same)
    );
    let other = rlpt(&ingest_args(
        &sample_input(),
        &out,
        &["--force", "--source", "other"],
    ));
    assert_eq!(other.status.code(), Some(1));
    let message = stderr(&other);
    let pid = std::process::id().to_string();
    assert!(
        message.contains("another rlpt process (pid") && message.contains(&pid),
        "{message}"
    );
    let sources: std::collections::BTreeSet<String> = read_rows(&out)
        .iter()
        .map(|r| get(r, "source").to_string())
        .collect();
    assert_eq!(
        sources.len(),
        3,
        "nothing of the refused config was written: {sources:?}"
    );
    drop(lock);
    rlpt_ok(&ingest_args(
        &sample_input(),
        &out,
        &["--force", "--source", "other"],
    ));

    let train = work.path().join("train");
    std::fs::create_dir_all(&train).unwrap();
    let train_lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(train.join("rlpt.lock"))
        .unwrap();
    train_lock.lock().unwrap();
    let second = rlpt(&["train", "--output", arg(&train), "--steps", "1"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("is training into it") && stderr(&second).contains(&pid),
        "{}",
        stderr(&second)
    );
    assert!(!train.join("latest").exists());
}
