//! Errors about tables: a file that is not the table it should be, or a row that breaks
//! the table's invariants. Messages name the column and row; the caller adds the file.

use arrow_schema::DataType;

use crate::table::SchemaVersion;

/// A schema, metadata or row-level problem in a table.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A required column is absent.
    #[error(
        "column `{column}` is missing (the {table} table needs it, as {expected}); the file has columns: {}",
        found_columns.join(", ")
    )]
    MissingColumn {
        /// The table being read.
        table: &'static str,
        /// The missing column.
        column: &'static str,
        /// Its type in the table spec.
        expected: DataType,
        /// The columns the file does have.
        found_columns: Vec<String>,
    },
    /// A required column has a type that cannot be read as the spec's type.
    #[error("column `{column}` has type {found}, expected {expected}")]
    WrongType {
        /// The column.
        column: &'static str,
        /// The spec's type.
        expected: DataType,
        /// The file's type.
        found: DataType,
    },
    /// The file says it holds another table.
    #[error("this is a `{found}` table, expected `{expected}`")]
    WrongTable {
        /// The table being read.
        expected: &'static str,
        /// What the file's metadata says.
        found: String,
    },
    /// The file was written with a major schema version this rlpt does not know.
    #[error(
        "the {table} table has schema version {found}, but this rlpt supports {}.x; \
         use the rlpt version that wrote it, or rewrite the table with this one",
        supported.major
    )]
    UnsupportedVersion {
        /// The table.
        table: &'static str,
        /// The file's version.
        found: SchemaVersion,
        /// The version this build writes.
        supported: SchemaVersion,
    },
    /// An rlpt metadata key is absent while others are present.
    #[error("metadata key `{key}` is missing")]
    MissingMetadata {
        /// The absent key.
        key: &'static str,
    },
    /// An rlpt metadata value cannot be parsed.
    #[error("metadata key `{key}` is {value:?}, expected {expected}")]
    BadMetadata {
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A row breaks an invariant of the table.
    #[error("row {row}, column `{column}`: {problem}")]
    BadRow {
        /// Row index within the batch (0-based).
        row: usize,
        /// The column.
        column: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
}
