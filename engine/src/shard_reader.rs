//! Reading shards back: [`table_files`] lists a table's shard files in a stable order
//! (the manifest's unit order for a directory rlpt wrote, refusing one left
//! incomplete), [`ParquetBatches`] streams any Parquet file in bounded record batches,
//! and [`TableReader`] does that for a table, after checking the file's schema and
//! metadata against the table spec and casting columns to the spec's types.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatchReader;
use arrow_array::{LargeStringArray, RecordBatch, StringArray};
use arrow_schema::{Field, Schema, SchemaRef};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use rlpt_schemas::{FileMetadata, SchemaError, TableSpec, documents};

use crate::error::{Error, IoContext, Result};
use crate::inputs::{self, InputFile, RowRange};
use crate::manifest::Manifest;

/// Rows per record batch when reading tables.
pub const READ_BATCH_ROWS: usize = 4096;

/// The Parquet files of a table named by `input`: a file, a glob, or a directory. A
/// directory rlpt wrote is listed from its manifest, in unit order, and refused when
/// incomplete; any other directory contributes its top-level `*.parquet` files.
pub fn table_files(input: &str) -> Result<Vec<PathBuf>> {
    let dir = Path::new(input);
    if dir.is_dir() {
        if let Some((stage, units)) = Manifest::of(dir).read_complete(dir)? {
            return Ok(units
                .iter()
                .flat_map(|unit| {
                    unit.shards_of(&stage.table)
                        .map(|shard| dir.join(&shard.file))
                })
                .collect());
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .at(dir)?
            .map(|entry| entry.map(|e| e.path()).at(dir))
            .collect::<Result<_>>()?;
        files.retain(|path| path.is_file() && is_parquet(path));
        files.sort();
        return Ok(files);
    }
    Ok(inputs::expand(input, is_parquet)?
        .into_iter()
        .map(|file| file.path)
        .collect())
}

fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "parquet")
}

/// What a file that fails to open as Parquet looks like, when it does not even start
/// with Parquet's magic bytes (`PAR1`): JSONL, gzip, zstd or text.
fn not_parquet(path: &Path) -> Option<&'static str> {
    let mut head = [0u8; 512];
    let read = std::io::Read::read(&mut File::open(path).ok()?, &mut head).ok()?;
    let head = &head[..read];
    if head.starts_with(b"PAR1") {
        return None;
    }
    let text = String::from_utf8_lossy(head);
    Some(if head.starts_with(&[0x1f, 0x8b]) {
        "a gzip file"
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "a zstd file"
    } else if text.trim_start().starts_with('{') {
        "JSONL"
    } else if head.is_empty() {
        "an empty file"
    } else if std::str::from_utf8(head).is_ok() {
        "text"
    } else {
        "binary data of another format"
    })
}

/// Streams one Parquet file in record batches of bounded size.
pub struct ParquetBatches {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    schema: SchemaRef,
    key_values: HashMap<String, String>,
    total_rows: u64,
}

impl ParquetBatches {
    /// Opens `path`, reading `batch_rows` rows at a time.
    pub fn open(path: &Path, batch_rows: usize) -> Result<Self> {
        Self::open_columns(path, batch_rows, None)
    }

    /// Opens `path` reading only the named top-level columns (all when `None`); a
    /// missing column is an error naming it.
    pub fn open_columns(path: &Path, batch_rows: usize, columns: Option<&[&str]>) -> Result<Self> {
        Self::open_part(path, batch_rows, columns, None)
    }

    /// Opens `path` like [`Self::open_columns`], reading only the rows in `rows` (all
    /// when `None`); [`Self::total_rows`] is then the rows of that range.
    pub fn open_part(
        path: &Path,
        batch_rows: usize,
        columns: Option<&[&str]>,
        rows: Option<RowRange>,
    ) -> Result<Self> {
        let parquet_error = |source| Error::Parquet {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).at(path)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| {
            match not_parquet(path) {
                Some(looks_like) => Error::NotParquet {
                    path: path.to_path_buf(),
                    looks_like,
                },
                None => parquet_error(source),
            }
        })?;
        let file_metadata = builder.metadata().file_metadata();
        let key_values = file_metadata
            .key_value_metadata()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
            .collect();
        let mut total_rows = file_metadata.num_rows().max(0) as u64;
        let mut builder = builder.with_batch_size(batch_rows);
        if let Some(rows) = rows {
            let end = rows.end.min(total_rows);
            let start = rows.start.min(end);
            builder = builder
                .with_offset(start as usize)
                .with_limit((end - start) as usize);
            total_rows = end - start;
        }
        if let Some(columns) = columns {
            let file_schema = builder.schema().clone();
            let indices = columns
                .iter()
                .map(|name| {
                    file_schema
                        .index_of(name)
                        .map_err(|_| Error::MissingColumn {
                            path: path.to_path_buf(),
                            column: name.to_string(),
                            found: file_schema
                                .fields()
                                .iter()
                                .map(|f| f.name().clone())
                                .collect(),
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
            builder = builder.with_projection(mask);
        }
        let reader = builder.build().map_err(parquet_error)?;
        let schema = reader.schema();
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            schema,
            key_values,
            total_rows,
        })
    }

    /// The file's Arrow schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows in the file.
    pub fn total_rows(&self) -> u64 {
        self.total_rows
    }

    /// The file's rlpt metadata, `None` when another tool wrote it.
    pub fn rlpt_metadata(&self) -> Result<Option<FileMetadata>> {
        FileMetadata::from_key_values(&self.key_values).map_err(|source| Error::Schema {
            path: self.path.clone(),
            source,
        })
    }
}

impl Iterator for ParquetBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.reader.next().map(|batch| {
            batch.map_err(|source| Error::Arrow {
                path: self.path.clone(),
                source,
            })
        })
    }
}

/// The rows of `batch` (read from `file`) where `keep` is true.
pub fn filter_rows(
    batch: &RecordBatch,
    keep: &arrow_array::BooleanArray,
    file: &InputFile,
) -> Result<RecordBatch> {
    arrow_select::filter::filter_record_batch(batch, keep).map_err(|source| Error::Arrow {
        path: file.path.clone(),
        source,
    })
}

/// The id and text columns of a `documents` batch read from `file`.
pub fn ids_and_texts<'a>(
    batch: &'a RecordBatch,
    file: &InputFile,
) -> Result<(&'a StringArray, Vec<&'a str>)> {
    let schema_error = |source| Error::Schema {
        path: file.path.clone(),
        source,
    };
    let ids = documents::column::<StringArray>(batch, "id").map_err(schema_error)?;
    let texts = documents::column::<LargeStringArray>(batch, "text").map_err(schema_error)?;
    Ok((ids, texts.iter().map(Option::unwrap_or_default).collect()))
}

/// Streams a table's file after checking it against the table spec; batches come out
/// with the spec's column types (other columns kept as they are), and a null where the
/// spec forbids one is an error naming the file, row and column.
pub struct TableReader {
    batches: ParquetBatches,
    table: &'static TableSpec,
    schema: SchemaRef,
    metadata: Option<FileMetadata>,
    rows_read: usize,
}

impl TableReader {
    /// Opens `path` as a file of `table`; a wrong table, an unknown major version or a
    /// missing column is an error naming the file and the column.
    pub fn open(path: &Path, table: &'static TableSpec) -> Result<Self> {
        Self::open_rows(path, table, None, READ_BATCH_ROWS)
    }

    /// Opens an input file of a work unit (its row range only) as a file of `table`.
    pub fn open_input(file: &InputFile, table: &'static TableSpec) -> Result<Self> {
        Self::open_rows(&file.path, table, file.rows, READ_BATCH_ROWS)
    }

    /// Opens `path` as a file of `table`, reading only the rows in `rows` (all when
    /// `None`; a range past the end reads to the end) `batch_rows` at a time.
    pub fn open_rows(
        path: &Path,
        table: &'static TableSpec,
        rows: Option<RowRange>,
        batch_rows: usize,
    ) -> Result<Self> {
        let batches = ParquetBatches::open_part(path, batch_rows, None, rows)?;
        let metadata = batches.rlpt_metadata()?;
        table
            .check(batches.schema(), metadata.as_ref())
            .map_err(|source| Error::Schema {
                path: path.to_path_buf(),
                source,
            })?;
        let schema = Arc::new(Schema::new(
            batches
                .schema()
                .fields()
                .iter()
                .map(
                    |field| match table.columns.iter().find(|c| c.name == field.name()) {
                        Some(column) => {
                            Field::new(field.name(), column.data_type.clone(), field.is_nullable())
                        }
                        None => field.as_ref().clone(),
                    },
                )
                .collect::<Vec<_>>(),
        ));
        Ok(Self {
            batches,
            table,
            schema,
            metadata,
            rows_read: rows.map_or(0, |rows| rows.start as usize),
        })
    }

    /// Rows in the file (in its row range, when opened with one).
    pub fn total_rows(&self) -> u64 {
        self.batches.total_rows()
    }

    /// The rlpt metadata of the file, if it has any.
    pub fn metadata(&self) -> Option<&FileMetadata> {
        self.metadata.as_ref()
    }

    /// The schema of the batches this reader yields.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn check(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let batch = self.cast(batch)?;
        let offset = self.rows_read;
        self.rows_read += batch.num_rows();
        self.table
            .check_nulls(&batch)
            .map_err(|source| Error::Schema {
                path: self.batches.path.clone(),
                source: match source {
                    SchemaError::BadRow {
                        row,
                        column,
                        problem,
                    } => SchemaError::BadRow {
                        row: row + offset,
                        column,
                        problem,
                    },
                    other => other,
                },
            })?;
        Ok(batch)
    }

    fn cast(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if batch.schema() == self.schema {
            return Ok(batch);
        }
        let arrow_error = |source| Error::Arrow {
            path: self.batches.path.clone(),
            source,
        };
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(column, field)| arrow_cast::cast(column, field.data_type()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(arrow_error)?;
        RecordBatch::try_new(self.schema.clone(), columns).map_err(arrow_error)
    }
}

impl Iterator for TableReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.batches.next()?;
        Some(batch.and_then(|batch| self.check(batch)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array, StringArray, StringViewArray};
    use parquet::arrow::ArrowWriter;
    use rlpt_schemas::documents;

    fn write_plain(path: &Path, columns: Vec<(&str, ArrayRef)>) {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mut writer =
            ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    fn strings(values: &[&str]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    #[test]
    fn a_foreign_file_with_the_columns_is_read_and_cast_to_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("polars.parquet");
        let text: ArrayRef = Arc::new(StringViewArray::from(vec!["hello", "world"]));
        write_plain(
            &path,
            vec![
                ("id", strings(&["a", "b"])),
                ("text", text),
                ("source", strings(&["s", "s"])),
                ("meta", strings(&["{}", "{}"])),
                ("extra", Arc::new(Int64Array::from(vec![1, 2]))),
            ],
        );
        let reader = TableReader::open(&path, documents::spec()).unwrap();
        assert!(reader.metadata().is_none());
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        let docs = documents::from_batch(&batches[0]).unwrap();
        assert_eq!(docs[1].text, "world");
        assert_eq!(batches[0].num_columns(), 5, "extra columns are kept");
    }

    #[test]
    fn a_file_missing_a_column_is_refused_with_file_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.parquet");
        write_plain(
            &path,
            vec![("id", strings(&["a"])), ("text", strings(&["t"]))],
        );
        let err = TableReader::open(&path, documents::spec())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("bad.parquet") && err.contains("column `source` is missing"),
            "{err}"
        );
    }

    #[test]
    fn a_plain_directory_lists_its_parquet_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.parquet", "a.parquet", "notes.txt", "c.parquet.tmp"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let files = table_files(dir.path().to_str().unwrap()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.parquet", "b.parquet"]);
    }
}
