//! Writing a work unit's output: Parquet shards named `part-UUUUU-SSSS.parquet` (unit,
//! sequence), zstd-compressed, rotated by rows and data bytes, each written as
//! `….parquet.tmp`, fsynced and renamed into place, so a half-written shard is never
//! visible. Shard boundaries depend only on the data, never on timing or threads.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use rlpt_schemas::FileMetadata;
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::checksum::HashingWriter;
use crate::error::{Error, IoContext, Result};

/// zstd level of every shard.
const ZSTD_LEVEL: i32 = 3;
/// Row groups hold at most this many rows…
const ROW_GROUP_ROWS: usize = 65_536;
/// …and about this many encoded bytes, so readers need bounded memory.
const ROW_GROUP_BYTES: usize = 64 << 20;

/// The file name of shard `seq` of unit `unit`.
pub fn shard_name(unit: usize, seq: usize) -> String {
    format!("part-{unit:05}-{seq:04}.parquet")
}

/// The unit a shard file (or its `.tmp`) belongs to, if the name is a shard's.
pub fn unit_of(file_name: &str) -> Option<usize> {
    let rest = file_name.strip_prefix("part-")?;
    let (unit, rest) = rest.split_once('-')?;
    let (seq, ext) = rest.split_once('.')?;
    let is_shard = matches!(ext, "parquet" | "parquet.tmp")
        && seq.len() >= 4
        && seq.bytes().all(|b| b.is_ascii_digit());
    if is_shard && unit.len() >= 5 {
        unit.parse().ok()
    } else {
        None
    }
}

/// A finished shard, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    /// The table it belongs to.
    pub table: String,
    /// Path relative to the output directory.
    pub file: String,
    /// Rows in the shard.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// xxh3-64 of the file's bytes, in hex (absent in records written before rlpt kept
    /// checksums: such a unit is recomputed rather than trusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xxh3: Option<String>,
}

/// Limits on one shard.
#[derive(Debug, Clone, Copy)]
pub struct ShardLimits {
    /// Rows.
    pub max_rows: u64,
    /// Data bytes before compression.
    pub max_bytes: u64,
}

/// Writes one unit's rows of one table into rotating shards.
pub struct ShardWriter {
    /// The output directory the manifest's file names are relative to.
    output: PathBuf,
    /// The table's subdirectory of `output` (`""` for the main table).
    subdir: String,
    unit: usize,
    metadata: FileMetadata,
    limits: ShardLimits,
    open: Option<OpenShard>,
    finished: Vec<ShardRecord>,
}

struct OpenShard {
    writer: ArrowWriter<HashingWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
    bytes: u64,
}

impl ShardWriter {
    /// A writer for `unit` into `output/subdir`.
    pub fn new(
        output: &Path,
        subdir: &str,
        unit: usize,
        metadata: FileMetadata,
        limits: ShardLimits,
    ) -> Self {
        Self {
            output: output.to_path_buf(),
            subdir: subdir.to_string(),
            unit,
            metadata,
            limits,
            open: None,
            finished: Vec::new(),
        }
    }

    /// Appends a batch, starting new shards as limits are reached; an empty batch
    /// opens no shard.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let limits = self.limits;
            let shard = self.open_shard(batch.schema())?;
            let room = (limits.max_rows - shard.rows) as usize;
            let part = batch.slice(offset, room.min(batch.num_rows() - offset));
            shard.writer.write(&part).map_err(|source| Error::Parquet {
                path: shard.tmp.clone(),
                source,
            })?;
            shard.rows += part.num_rows() as u64;
            shard.bytes += data_bytes(&part);
            offset += part.num_rows();
            if shard.rows >= limits.max_rows || shard.bytes >= limits.max_bytes {
                self.close_shard()?;
            }
        }
        Ok(())
    }

    /// Opens an empty shard of `schema` if nothing was written, so the unit's table
    /// has a file even with no rows (a report a user globs, such as `contamination/`).
    pub fn ensure_shard(&mut self, schema: SchemaRef) -> Result<()> {
        if self.finished.is_empty() {
            self.open_shard(schema)?;
        }
        Ok(())
    }

    /// Closes the last shard and returns every shard written, in order.
    pub fn finish(mut self) -> Result<Vec<ShardRecord>> {
        self.close_shard()?;
        Ok(std::mem::take(&mut self.finished))
    }

    fn open_shard(&mut self, schema: SchemaRef) -> Result<&mut OpenShard> {
        if self.open.is_none() {
            let dir = self.output.join(&self.subdir);
            let path = dir.join(shard_name(self.unit, self.finished.len()));
            let tmp = atomic::tmp_path(&path);
            std::fs::create_dir_all(&dir).at(&dir)?;
            let file = HashingWriter::new(File::create(&tmp).at(&tmp)?);
            let props = writer_properties(&schema, &self.metadata);
            let writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|source| {
                Error::Parquet {
                    path: tmp.clone(),
                    source,
                }
            })?;
            self.open = Some(OpenShard {
                writer,
                tmp,
                path,
                rows: 0,
                bytes: 0,
            });
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    fn close_shard(&mut self) -> Result<()> {
        let Some(shard) = self.open.take() else {
            return Ok(());
        };
        let hashing = shard.writer.into_inner().map_err(|source| Error::Parquet {
            path: shard.tmp.clone(),
            source,
        })?;
        let (file, checksum) = hashing.finish();
        atomic::commit(file, &shard.tmp, &shard.path)?;
        let bytes = std::fs::metadata(&shard.path).at(&shard.path)?.len();
        let file = shard
            .path
            .strip_prefix(&self.output)
            .expect("shards are under the output directory");
        self.finished.push(ShardRecord {
            table: self.metadata.schema.clone(),
            file: file.to_string_lossy().into_owned(),
            rows: shard.rows,
            bytes,
            xxh3: Some(checksum),
        });
        Ok(())
    }
}

/// A writer dropped before [`ShardWriter::finish`] returned — the unit failed (bad
/// input under `--strict`, a full disk, a stage error) — deletes what it wrote: the open
/// `.tmp` and the shards it had finished, which no manifest records. A kill leaves
/// them to the rerun, which deletes an unfinished unit's files first.
impl Drop for ShardWriter {
    fn drop(&mut self) {
        if let Some(shard) = self.open.take() {
            drop(shard.writer);
            std::fs::remove_file(&shard.tmp).ok();
        }
        for shard in self.finished.drain(..) {
            std::fs::remove_file(self.output.join(&shard.file)).ok();
        }
    }
}

/// Bytes of column data in a batch (slice-aware, so deterministic for equal data).
pub fn data_bytes(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64)
        .sum()
}

/// zstd, rlpt's key-value metadata, bounded row groups; long-text columns (large
/// strings and binaries) get neither dictionaries nor min/max statistics, which only
/// cost time and footer space for them.
fn writer_properties(schema: &SchemaRef, metadata: &FileMetadata) -> WriterProperties {
    let key_values = metadata
        .to_key_values()
        .into_iter()
        .map(|(k, v)| KeyValue::new(k, v))
        .collect();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .set_key_value_metadata(Some(key_values));
    for field in schema.fields() {
        if matches!(
            field.data_type(),
            DataType::LargeUtf8 | DataType::LargeBinary
        ) {
            let column = ColumnPath::from(field.name().as_str());
            builder = builder
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_statistics_enabled(column, EnabledStatistics::None);
        }
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard_reader::ParquetBatches;
    use rlpt_schemas::documents::{self, Document};

    fn docs(n: usize) -> Vec<Document> {
        (0..n)
            .map(|i| Document {
                id: format!("d{i:03}"),
                text: "x".repeat(100),
                source: "test".into(),
                meta: None,
            })
            .collect()
    }

    fn writer(dir: &Path, limits: ShardLimits) -> ShardWriter {
        let metadata = FileMetadata::new(documents::spec(), "ingest", "abc", "0.1.0");
        ShardWriter::new(dir, "", 3, metadata, limits)
    }

    #[test]
    fn shard_names_parse_back_to_their_unit() {
        assert_eq!(shard_name(7, 1), "part-00007-0001.parquet");
        assert_eq!(unit_of("part-00007-0001.parquet"), Some(7));
        assert_eq!(unit_of("part-123456-0001.parquet.tmp"), Some(123456));
        assert_eq!(unit_of("part-7-1.parquet"), None);
        assert_eq!(unit_of("notes.txt"), None);
    }

    #[test]
    fn a_writer_dropped_unfinished_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ShardLimits {
            max_rows: 40,
            max_bytes: u64::MAX,
        };
        let mut writer = writer(dir.path(), limits);
        writer.write(&documents::to_batch(&docs(100))).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            3,
            "2 shards and a .tmp"
        );
        drop(writer);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn rows_rotate_at_the_row_limit_and_metadata_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ShardLimits {
            max_rows: 40,
            max_bytes: u64::MAX,
        };
        let mut writer = writer(dir.path(), limits);
        for chunk in docs(100).chunks(30) {
            writer.write(&documents::to_batch(chunk)).unwrap();
        }
        let shards = writer.finish().unwrap();
        let rows: Vec<u64> = shards.iter().map(|s| s.rows).collect();
        assert_eq!(rows, [40, 40, 20]);
        assert_eq!(shards[2].file, "part-00003-0002.parquet");
        let reader = ParquetBatches::open(&dir.path().join(&shards[1].file), 1024).unwrap();
        assert_eq!(reader.total_rows(), 40);
        let meta = reader.rlpt_metadata().unwrap().unwrap();
        assert_eq!(
            (meta.schema.as_str(), meta.stage.as_str()),
            ("documents", "ingest")
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().unwrap() != "parquet")
            .collect();
        assert!(leftovers.is_empty(), "no .tmp files remain");
    }

    #[test]
    fn an_empty_batch_opens_no_shard() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ShardLimits {
            max_rows: 10,
            max_bytes: u64::MAX,
        };
        let mut writer = writer(dir.path(), limits);
        writer.write(&documents::to_batch(&[])).unwrap();
        assert!(writer.finish().unwrap().is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn data_bytes_rotate_shards_too() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ShardLimits {
            max_rows: u64::MAX,
            max_bytes: 2_000,
        };
        let mut writer = writer(dir.path(), limits);
        for chunk in docs(60).chunks(10) {
            writer.write(&documents::to_batch(chunk)).unwrap();
        }
        let shards = writer.finish().unwrap();
        assert!(shards.len() > 1, "{shards:?}");
        assert_eq!(shards.iter().map(|s| s.rows).sum::<u64>(), 60);
    }

    #[test]
    fn an_empty_unit_writes_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ShardLimits {
            max_rows: 10,
            max_bytes: 10,
        };
        assert!(writer(dir.path(), limits).finish().unwrap().is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
