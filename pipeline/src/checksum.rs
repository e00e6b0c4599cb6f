//! xxh3-64 checksums of shard files: computed from the bytes as a shard is written,
//! recorded in its unit's manifest, and checked when a finished unit is reused, so a
//! shard that rotted on disk is recomputed instead of passed downstream.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

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
pub fn file_checksum(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(hex(hasher.digest())),
            Ok(n) => hasher.update(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
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
}
