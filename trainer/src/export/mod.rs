//! Exports for the tools users already run: [`hf`] writes a checkpoint as a Hugging Face
//! model directory; [`rl`] writes the training tasks as verl's or TRL's dataset with a
//! reward module. Each output directory is assembled beside its final name and renamed
//! into place whole, so a reader never sees half of one.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub mod hf;
pub mod rl;

pub use hf::HfExport;
pub use rl::{DatasetExport, DatasetSummary, Engine};

/// A fresh, empty directory beside `output` to assemble it in; an `output` already
/// there is refused unless `force` (it is replaced when the new one is published).
fn staging_dir(output: &Path, force: bool) -> Result<PathBuf> {
    if output.exists() && !force {
        return Err(Error::Config(format!(
            "{} exists: choose another --output, or --force to replace it",
            output.display()
        )));
    }
    let name = output
        .file_name()
        .ok_or_else(|| Error::Config(format!("{}: not a directory name", output.display())))?;
    let staging = output.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    crate::checkpoint::fresh_dir(&staging)?;
    Ok(staging)
}
