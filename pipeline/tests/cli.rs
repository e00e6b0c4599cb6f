//! The command-line surface of the `rlpt` binary: help, version, usage errors and exit
//! codes. (Cargo builds the binary for these tests, which also keeps the one the
//! end-to-end crate runs up to date under `cargo test --workspace`.)

use std::process::{Command, Output};

fn rlpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlpt"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_every_command_and_global_flag() {
    let output = rlpt(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "ingest",
        "inspect",
        "run",
        "--threads",
        "--log-format",
        "--quiet",
        "--verbose",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn every_stage_command_reads_input_and_writes_output_with_sharding() {
    let output = rlpt(&["ingest", "--help"]);
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "--input <PATH>",
        "--output <DIR>",
        "--rank <R>",
        "--world-size <N>",
        "--force",
        "--strict",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn the_version_is_the_crate_version() {
    let output = rlpt(&["--version"]);
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        format!("rlpt {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_with_two() {
    assert_eq!(
        rlpt(&["ingest", "--output", "x"]).status.code(),
        Some(2),
        "--input is required"
    );
    assert_eq!(
        rlpt(&["--threads", "0", "inspect", "."]).status.code(),
        Some(2)
    );
    let output = rlpt(&[
        "ingest",
        "--input",
        "a",
        "--output",
        "b",
        "--unit-bytes",
        "lots",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a size"));
}
