//! End-to-end tests: each runs the `rlpt` binary on real data in temp directories, the
//! way a user would, and checks what it wrote byte for byte where it matters.

mod bad_input;
mod crash;
mod decontam;
mod dedup;
mod determinism;
mod entropy;
mod export;
mod filter;
mod flags;
mod harness;
mod ingest;
mod inspect;
mod locks;
mod pii;
mod python;
mod resume;
mod run;
mod segment;
mod slurm;
mod stdout;
mod train;
mod watch;
