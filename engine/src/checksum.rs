//! xxh3-64 checksums of files, in hex: a shard's, computed from its bytes as it is
//! written ([`HashingWriter`]), recorded in its unit's manifest and checked when the
//! unit is reused (a shard that rotted on disk is recomputed, not passed downstream);
//! a checkpoint file's; a model's identity (its files' bytes one after the other).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

use crate::{At, FileResult};

/// A writer that hashes every byte it passes on.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Xxh3,
}

impl<W: Write> HashingWriter<W> {
    /// Hashes what is written to `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Xxh3::new(),
        }
    }

    /// The inner writer and the checksum of everything written, in hex.
    pub fn finish(self) -> (W, String) {
        (self.inner, hex(self.hasher.digest()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The checksum of a file's bytes, in hex.
pub fn file_checksum(path: &Path) -> FileResult<String> {
    files_checksum(&[path])
}

/// The checksum of the files' bytes, one file after the other, in hex.
pub fn files_checksum(files: &[impl AsRef<Path>]) -> FileResult<String> {
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    for path in files.iter().map(AsRef::as_ref) {
        let mut file = File::open(path).at_file(path)?;
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err).at_file(path),
            }
        }
    }
    Ok(hex(hasher.digest()))
}

fn hex(digest: u64) -> String {
    format!("{digest:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_checksum_is_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard");
        let mut writer = HashingWriter::new(File::create(&path).unwrap());
        writer.write_all(b"part one, ").unwrap();
        writer.write_all(&vec![7u8; 3 << 20]).unwrap();
        let (file, written) = writer.finish();
        drop(file);
        assert_eq!(file_checksum(&path).unwrap(), written);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[2 << 20] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert_ne!(file_checksum(&path).unwrap(), written);
    }

    /// Several files hash as their bytes one after the other, however they are cut.
    #[test]
    fn files_hash_as_their_concatenation() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, whole) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("ab"),
        );
        std::fs::write(&a, b"model-00001 ").unwrap();
        std::fs::write(&b, b"model-00002").unwrap();
        std::fs::write(&whole, b"model-00001 model-00002").unwrap();
        assert_eq!(
            files_checksum(&[&a, &b]).unwrap(),
            file_checksum(&whole).unwrap()
        );
        let missing = file_checksum(&dir.path().join("gone")).unwrap_err();
        assert!(missing.path.ends_with("gone"));
    }
}
