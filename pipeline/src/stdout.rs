//! Everything rlpt prints on stdout goes through [`write()`]: when the reader closes the
//! pipe (`rlpt tokenizer encode … | head -1`) the command ends quietly with exit 0, as
//! Unix tools do, instead of panicking in `println!`.

use std::io::Write;

use rlpt_engine::IoContext;

use crate::error::{Error, Result};

/// Writes `text` to stdout and flushes it.
pub fn write(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Err(Error::StdoutClosed),
        result => Ok(result.at("stdout")?),
    }
}
