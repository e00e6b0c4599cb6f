//! Commands that print to stdout, read through a pipe that closes early.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::harness::*;

/// Regression: `rlpt tokenizer encode … | head -1` panicked on the broken pipe (exit
/// 101); a closed stdout ends the command quietly.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let tokenizer = repo_root().join("data-samples/tokenizers/smollm2-135m.json.gz");
    let mut child = rlpt_in(&repo_root())
        .args([
            "tokenizer",
            "encode",
            "--tokenizer",
            arg(&tokenizer),
            "--input",
            arg(&sample_dir().join("stem-en.jsonl")),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('['), "{first}");
    // The reader is gone: the rest of the output meets a closed pipe.
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
