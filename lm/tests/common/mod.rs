//! Helpers shared by the integration tests: the repository root and fetched assets.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fetched asset; tests that need one are skipped without it, unless
/// RLPT_REQUIRE_ASSETS=1 (as in CI) makes its absence a failure.
pub fn asset(relative: &str) -> Option<PathBuf> {
    let path = repo().join("data-samples/cache").join(relative);
    if path.exists() {
        return Some(path);
    }
    let message = format!(
        "{} is missing: run python3 data-samples/fetch.py",
        path.display()
    );
    assert!(
        std::env::var("RLPT_REQUIRE_ASSETS").as_deref() != Ok("1"),
        "{message}"
    );
    eprintln!("skipped: {message}");
    None
}
