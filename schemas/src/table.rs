//! What every rlpt table shares: a [`TableSpec`] (name, version, required columns),
//! the key-value [`FileMetadata`] written into each Parquet file, and the compatibility
//! check a reader runs before trusting a file.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::SchemaError;

/// Metadata key: the table name, e.g. `documents`.
pub const KEY_SCHEMA: &str = "rlpt.schema";
/// Metadata key: the table's schema version, `MAJOR.MINOR`.
pub const KEY_SCHEMA_VERSION: &str = "rlpt.schema_version";
/// Metadata key: the stage that produced the file, e.g. `ingest`.
pub const KEY_STAGE: &str = "rlpt.stage";
/// Metadata key: the hash of the producing stage's configuration.
pub const KEY_CONFIG_HASH: &str = "rlpt.config_hash";
/// Metadata key: the version of rlpt that wrote the file.
pub const KEY_RLPT_VERSION: &str = "rlpt.version";

/// A table's schema version. Readers accept any minor version of a major they know:
/// minor versions only add optional columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchemaVersion {
    /// Incompatible changes bump this.
    pub major: u32,
    /// Backwards-compatible additions bump this.
    pub minor: u32,
}

impl SchemaVersion {
    /// Parses `MAJOR.MINOR`.
    pub fn parse(text: &str) -> Option<Self> {
        let (major, minor) = text.split_once('.')?;
        Some(Self {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Which family of Arrow types a column accepts when read. Writers always produce the
/// exact type of the [`ColumnSpec`]; readers also accept the family's other members
/// (e.g. a `documents` file rewritten by polars stores `text` as `Utf8View`) and cast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeFamily {
    /// `Utf8`, `LargeUtf8` or `Utf8View`, or a dictionary of one of them.
    String,
    /// `Binary`, `LargeBinary` or `BinaryView`, or a dictionary of one of them.
    Binary,
    /// Unsigned or signed integers of any width (values must fit the target).
    Integer,
    /// Exactly the declared type.
    Exact,
}

impl TypeFamily {
    fn accepts(self, expected: &DataType, found: &DataType) -> bool {
        use DataType::*;
        match (self, found) {
            (TypeFamily::String | TypeFamily::Binary, Dictionary(_, values)) => {
                self.accepts(expected, values)
            }
            (TypeFamily::String, _) => matches!(found, Utf8 | LargeUtf8 | Utf8View),
            (TypeFamily::Binary, _) => matches!(found, Binary | LargeBinary | BinaryView),
            (TypeFamily::Integer, _) => found.is_integer(),
            (TypeFamily::Exact, _) => found == expected,
        }
    }
}

/// One required column of a table.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    /// Column name.
    pub name: &'static str,
    /// The type writers produce.
    pub data_type: DataType,
    /// Whether nulls are allowed.
    pub nullable: bool,
    /// Which other types readers accept and cast.
    pub family: TypeFamily,
}

impl ColumnSpec {
    fn field(&self) -> Field {
        Field::new(self.name, self.data_type.clone(), self.nullable)
    }
}

/// A table: its name, version and required columns. Files may carry extra columns
/// (stages add columns rather than rewrite meaning); readers keep them.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// Table name, written as [`KEY_SCHEMA`].
    pub name: &'static str,
    /// Version written as [`KEY_SCHEMA_VERSION`].
    pub version: SchemaVersion,
    /// Required columns, in the order writers produce them.
    pub columns: Vec<ColumnSpec>,
}

impl TableSpec {
    /// The Arrow schema writers produce (the required columns only).
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(ColumnSpec::field)
                .collect::<Vec<_>>(),
        ))
    }

    /// Names of the required columns.
    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.name).collect()
    }

    /// Checks a file's schema and metadata against this table: the right table name,
    /// a known major version, every required column present with an acceptable type.
    ///
    /// Files without rlpt metadata (written by another tool) are accepted when their
    /// columns fit; a file that says it is another table, or a newer major version,
    /// is refused.
    pub fn check(
        &self,
        schema: &Schema,
        metadata: Option<&FileMetadata>,
    ) -> Result<(), SchemaError> {
        if let Some(meta) = metadata {
            if meta.schema != self.name {
                return Err(SchemaError::WrongTable {
                    expected: self.name,
                    found: meta.schema.clone(),
                });
            }
            if meta.schema_version.major != self.version.major {
                return Err(SchemaError::UnsupportedVersion {
                    table: self.name,
                    found: meta.schema_version,
                    supported: self.version,
                });
            }
        }
        for column in &self.columns {
            let field =
                schema
                    .field_with_name(column.name)
                    .map_err(|_| SchemaError::MissingColumn {
                        table: self.name,
                        column: column.name,
                        expected: column.data_type.clone(),
                        found_columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
                    })?;
            if !column.family.accepts(&column.data_type, field.data_type()) {
                return Err(SchemaError::WrongType {
                    column: column.name,
                    expected: column.data_type.clone(),
                    found: field.data_type().clone(),
                });
            }
        }
        Ok(())
    }
}

impl TableSpec {
    /// The named column of `batch` downcast to `A`, the array type of its spec; an
    /// error names the column when it is absent or of another type.
    ///
    /// # Panics
    /// If the spec has no such column: a bug in the caller, not bad data.
    pub fn column<'a, A: arrow_array::Array + 'static>(
        &self,
        batch: &'a arrow_array::RecordBatch,
        name: &'static str,
    ) -> Result<&'a A, SchemaError> {
        let spec_column = self
            .columns
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no column `{name}` in the {} spec", self.name));
        let array = batch
            .column_by_name(name)
            .ok_or_else(|| SchemaError::MissingColumn {
                table: self.name,
                column: name,
                expected: spec_column.data_type.clone(),
                found_columns: batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect(),
            })?;
        array
            .as_any()
            .downcast_ref::<A>()
            .ok_or_else(|| SchemaError::WrongType {
                column: name,
                expected: spec_column.data_type.clone(),
                found: array.data_type().clone(),
            })
    }

    /// Checks that no required non-nullable column holds a null; the error names the
    /// first offending row of the batch.
    pub fn check_nulls(&self, batch: &arrow_array::RecordBatch) -> Result<(), SchemaError> {
        use arrow_array::Array;
        for column in self.columns.iter().filter(|c| !c.nullable) {
            let Some(array) = batch.column_by_name(column.name) else {
                continue;
            };
            if let Some(row) = (0..array.len()).find(|&row| array.is_null(row)) {
                return Err(SchemaError::BadRow {
                    row,
                    column: column.name,
                    problem: "null value in a column that does not allow nulls",
                });
            }
        }
        Ok(())
    }
}

/// The key-value metadata every rlpt Parquet file carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMetadata {
    /// Table name.
    pub schema: String,
    /// Table schema version.
    pub schema_version: SchemaVersion,
    /// Producing stage.
    pub stage: String,
    /// Hash of the producing stage's configuration.
    pub config_hash: String,
    /// rlpt version that wrote the file.
    pub rlpt_version: String,
    /// Further keys a stage records (e.g. the tokenizer of a `triples` file).
    pub extra: BTreeMap<String, String>,
}

impl FileMetadata {
    /// Metadata for a file of `table` written by `stage` with `config_hash`.
    pub fn new(table: &TableSpec, stage: &str, config_hash: &str, rlpt_version: &str) -> Self {
        Self {
            schema: table.name.to_string(),
            schema_version: table.version,
            stage: stage.to_string(),
            config_hash: config_hash.to_string(),
            rlpt_version: rlpt_version.to_string(),
            extra: BTreeMap::new(),
        }
    }

    /// The pairs to store in the Parquet footer, in a fixed order.
    pub fn to_key_values(&self) -> Vec<(String, String)> {
        let mut pairs = vec![
            (KEY_SCHEMA.to_string(), self.schema.clone()),
            (
                KEY_SCHEMA_VERSION.to_string(),
                self.schema_version.to_string(),
            ),
            (KEY_STAGE.to_string(), self.stage.clone()),
            (KEY_CONFIG_HASH.to_string(), self.config_hash.clone()),
            (KEY_RLPT_VERSION.to_string(), self.rlpt_version.clone()),
        ];
        pairs.extend(self.extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        pairs
    }

    /// Reads rlpt metadata from a file's key-value pairs. `Ok(None)` when the file has
    /// no rlpt keys at all (another tool wrote it); an error when they are present but
    /// incomplete or malformed.
    pub fn from_key_values(pairs: &HashMap<String, String>) -> Result<Option<Self>, SchemaError> {
        let Some(schema) = pairs.get(KEY_SCHEMA) else {
            return Ok(None);
        };
        let get = |key: &'static str| {
            pairs
                .get(key)
                .cloned()
                .ok_or(SchemaError::MissingMetadata { key })
        };
        let version_text = get(KEY_SCHEMA_VERSION)?;
        let schema_version =
            SchemaVersion::parse(&version_text).ok_or(SchemaError::BadMetadata {
                key: KEY_SCHEMA_VERSION,
                value: version_text,
                expected: "MAJOR.MINOR",
            })?;
        let extra = pairs
            .iter()
            .filter(|(k, _)| k.starts_with("rlpt.") && !CORE_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Some(Self {
            schema: schema.clone(),
            schema_version,
            stage: get(KEY_STAGE)?,
            config_hash: get(KEY_CONFIG_HASH)?,
            rlpt_version: get(KEY_RLPT_VERSION)?,
            extra,
        }))
    }
}

const CORE_KEYS: [&str; 5] = [
    KEY_SCHEMA,
    KEY_SCHEMA_VERSION,
    KEY_STAGE,
    KEY_CONFIG_HASH,
    KEY_RLPT_VERSION,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents;

    fn meta(version: &str) -> FileMetadata {
        let pairs: HashMap<String, String> = [
            (KEY_SCHEMA, "documents"),
            (KEY_SCHEMA_VERSION, version),
            (KEY_STAGE, "ingest"),
            (KEY_CONFIG_HASH, "abc"),
            (KEY_RLPT_VERSION, "0.1.0"),
            ("rlpt.tokenizer", "smollm2"),
            ("ARROW:schema", "..."),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        FileMetadata::from_key_values(&pairs).unwrap().unwrap()
    }

    #[test]
    fn metadata_round_trips_through_key_values() {
        let original = meta("1.0");
        assert_eq!(original.extra.len(), 1, "only rlpt.* extras are kept");
        let pairs: HashMap<_, _> = original.to_key_values().into_iter().collect();
        assert_eq!(
            FileMetadata::from_key_values(&pairs).unwrap().unwrap(),
            original
        );
    }

    #[test]
    fn files_without_rlpt_keys_have_no_metadata() {
        let pairs = HashMap::from([("ARROW:schema".to_string(), "x".to_string())]);
        assert_eq!(FileMetadata::from_key_values(&pairs).unwrap(), None);
    }

    #[test]
    fn incomplete_or_malformed_metadata_is_an_error() {
        let mut pairs: HashMap<_, _> = meta("1.0").to_key_values().into_iter().collect();
        pairs.insert(KEY_SCHEMA_VERSION.into(), "one".into());
        let err = FileMetadata::from_key_values(&pairs).unwrap_err();
        assert!(err.to_string().contains("rlpt.schema_version"), "{err}");
        pairs.remove(KEY_SCHEMA_VERSION);
        let err = FileMetadata::from_key_values(&pairs).unwrap_err();
        assert!(matches!(
            err,
            SchemaError::MissingMetadata {
                key: KEY_SCHEMA_VERSION
            }
        ));
    }

    #[test]
    fn a_newer_major_version_is_refused_and_a_newer_minor_accepted() {
        let spec = documents::spec();
        let schema = spec.arrow_schema();
        assert!(spec.check(&schema, Some(&meta("1.7"))).is_ok());
        let err = spec.check(&schema, Some(&meta("2.0"))).unwrap_err();
        assert!(
            err.to_string().contains("schema version 2.0")
                && err.to_string().contains("supports 1.x"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_column_is_named() {
        let spec = documents::spec();
        let schema = Schema::new(vec![Field::new("id", DataType::Utf8, false)]);
        let err = spec.check(&schema, None).unwrap_err();
        assert!(err.to_string().contains("column `text`"), "{err}");
    }

    #[test]
    fn string_columns_accept_any_string_type_but_not_numbers() {
        let spec = documents::spec();
        let mut fields: Vec<Field> = spec.columns.iter().map(ColumnSpec::field).collect();
        fields[1] = Field::new("text", DataType::Utf8View, false);
        assert!(spec.check(&Schema::new(fields.clone()), None).is_ok());
        // pyarrow's `dictionary_encode`.
        let dictionary =
            DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::LargeUtf8));
        fields[1] = Field::new("text", dictionary, false);
        assert!(spec.check(&Schema::new(fields.clone()), None).is_ok());
        let numbers = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Int64));
        fields[1] = Field::new("text", numbers, false);
        assert!(spec.check(&Schema::new(fields.clone()), None).is_err());
        fields[1] = Field::new("text", DataType::Int64, false);
        let err = spec.check(&Schema::new(fields), None).unwrap_err();
        assert!(
            err.to_string().contains("column `text` has type Int64"),
            "{err}"
        );
    }

    #[test]
    fn another_table_is_refused() {
        let mut other = meta("1.0");
        other.schema = "triples".into();
        let spec = documents::spec();
        let err = spec.check(&spec.arrow_schema(), Some(&other)).unwrap_err();
        assert!(err.to_string().contains("`triples`"), "{err}");
    }
}
