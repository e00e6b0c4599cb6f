//! GGUF metadata: reading a file's key-value header, and typed access to its keys with
//! errors that name the file and the key.

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};

use crate::error::{Error, Result};

/// Reads a GGUF file's metadata (not its tensors).
pub fn gguf_metadata(path: &Path, bytes: &[u8]) -> Result<Content> {
    Content::read(&mut std::io::Cursor::new(bytes)).map_err(|source| Error::Gguf {
        path: path.to_path_buf(),
        source,
    })
}

/// Typed access to GGUF metadata with errors naming the file and key.
pub(crate) struct Metadata<'a> {
    pub(crate) path: &'a Path,
    pub(crate) content: &'a Content,
}

impl Metadata<'_> {
    pub(crate) fn value(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.problem(key, "is missing"))
    }

    pub(crate) fn problem(&self, key: &str, problem: &str) -> Error {
        Error::Metadata {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            problem: problem.to_string(),
        }
    }

    pub(crate) fn string(&self, key: &str) -> Result<String> {
        self.value(key)?
            .to_string()
            .cloned()
            .map_err(|_| self.problem(key, "is not a string"))
    }

    pub(crate) fn strings(&self, key: &str) -> Result<Vec<String>> {
        self.array(key, "holds a non-string", |v| v.to_string().cloned())
    }

    pub(crate) fn ints(&self, key: &str) -> Result<Vec<i32>> {
        self.array(key, "holds a non-integer", Value::to_i32)
    }

    /// An array key's elements through `convert`; `problem` when one does not convert.
    fn array<T>(
        &self,
        key: &str,
        problem: &str,
        convert: impl Fn(&Value) -> candle_core::Result<T>,
    ) -> Result<Vec<T>> {
        let values = self
            .value(key)?
            .to_vec()
            .map_err(|_| self.problem(key, "is not an array"))?;
        values
            .iter()
            .map(|v| convert(v).map_err(|_| self.problem(key, problem)))
            .collect()
    }

    pub(crate) fn optional_u32(&self, key: &str) -> Result<Option<u32>> {
        match self.content.metadata.get(key) {
            None => Ok(None),
            Some(value) => value
                .to_u32()
                .map(Some)
                .map_err(|_| self.problem(key, "is not a u32")),
        }
    }

    pub(crate) fn optional_bool(&self, key: &str) -> Result<bool> {
        match self.content.metadata.get(key) {
            None => Ok(false),
            Some(value) => value
                .to_bool()
                .map_err(|_| self.problem(key, "is not a bool")),
        }
    }
}

impl Metadata<'_> {
    /// An integer key of any integer type.
    pub(crate) fn usize(&self, key: &str) -> Result<usize> {
        let value = self.value(key)?;
        let number = match value {
            Value::U8(v) => Some(u64::from(*v)),
            Value::U16(v) => Some(u64::from(*v)),
            Value::U32(v) => Some(u64::from(*v)),
            Value::U64(v) => Some(*v),
            Value::I8(v) => u64::try_from(*v).ok(),
            Value::I16(v) => u64::try_from(*v).ok(),
            Value::I32(v) => u64::try_from(*v).ok(),
            Value::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        };
        number
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.problem(key, "is not a non-negative integer"))
    }

    /// A float key (f32 or f64), or `default` when absent.
    pub(crate) fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.content.metadata.get(key) {
            None => Ok(default),
            Some(Value::F32(v)) => Ok(f64::from(*v)),
            Some(Value::F64(v)) => Ok(*v),
            Some(_) => Err(self.problem(key, "is not a float")),
        }
    }
}
