//! Helpers shared by the integration tests: the repository root and fetched assets.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fetched asset. A test that needs one fails without it, naming the fetch command,
/// unless RLPT_SKIP_MISSING_ASSETS=1 skips it (with a message).
pub fn asset(relative: &str) -> Option<PathBuf> {
    let path = repo().join("data-samples/cache").join(relative);
    if path.exists() {
        return Some(path);
    }
    let message = format!(
        "{} is missing: run python3 data-samples/fetch.py (or set RLPT_SKIP_MISSING_ASSETS=1 \
         to skip the tests that need it)",
        path.display()
    );
    assert!(
        std::env::var("RLPT_SKIP_MISSING_ASSETS").as_deref() == Ok("1"),
        "{message}"
    );
    eprintln!("skipped: {message}");
    None
}
