//! # rlpt-schemas
//!
//! The tables rlpt reads and writes, as data types only — the stable interface between
//! stages, the pipeline and anyone inspecting the output with polars.
//!
//! - [`table`]: what all tables share — [`TableSpec`] (name, [`SchemaVersion`], required
//!   columns), the [`FileMetadata`] stored in every Parquet footer (schema name and
//!   version, producing stage, config hash, rlpt version) and the check a reader runs
//!   before trusting a file ([`TableSpec::check`]).
//! - [`documents`]: the `documents` table and its row type [`Document`].
//! - [`contamination`]: the report of benchmark text found by `decontam`.
//! - [`dropped`]: the documents `filter` dropped, with the rule and why.
//! - [`dedup`]: the tables of near-duplicate removal (`dedup_signatures`,
//!   `dedup_pairs`, `dedup_clusters`, `dedup_removed`).
//! - [`triples`]: (context, segment, next segment) rows with token counts.
//! - [`rejects`]: the `rejects` table of input a stage could not use, with file, line
//!   and reason ([`Reject`]).
//! - [`size`]: byte sizes as flags and config keys write them (`64MiB`), which stage
//!   settings and the engine's layout share.
//!
//! Invariants every table keeps: ids are stable (derived from the source or content,
//! never from a position); files may carry more columns than the spec (stages add
//! columns rather than change meaning); a reader refuses an unknown major version.
//!
//! ```
//! use rlpt_schemas::documents::{self, Document};
//!
//! let batch = documents::to_batch(&[Document {
//!     id: "wikipedia/en/Algebra".into(),
//!     text: "Algebra is a branch of mathematics.".into(),
//!     source: "wikipedia".into(),
//!     meta: None,
//! }]);
//! documents::spec().check(&batch.schema(), None).unwrap();
//! assert_eq!(documents::from_batch(&batch).unwrap()[0].source, "wikipedia");
//! ```

#![deny(missing_docs)]

pub mod contamination;
pub mod dedup;
pub mod documents;
pub mod dropped;
mod error;
pub mod rejects;
pub mod size;
pub mod table;
pub mod triples;

pub use documents::Document;
pub use error::SchemaError;
pub use rejects::Reject;
pub use table::{FileMetadata, SchemaVersion, TableSpec};

/// The spec of the table called `name`, if this rlpt knows it.
pub fn table_spec(name: &str) -> Option<&'static TableSpec> {
    [
        documents::spec(),
        rejects::spec(),
        contamination::spec(),
        dropped::spec(),
        triples::spec(),
        dedup::signatures(),
        dedup::pairs(),
        dedup::clusters(),
        dedup::removed(),
    ]
    .into_iter()
    .find(|spec| spec.name == name)
}
