//! TensorBoard event files of a run's metrics (`tensorboard = true`): every number of
//! each `metrics.jsonl` line becomes a scalar of its step, tagged by its JSON path
//! (`reward_mean`, `timing/rollout_s`, `per_task/asr/reward_mean`).
//!
//! The file, `OUTPUT/tensorboard/events.out.tfevents.rlpt`, is TensorFlow's record
//! format (length, masked CRC-32C of the length, the bytes, their masked CRC-32C)
//! holding `Event` protocol buffers (`wall_time`, `step`, `file_version` first, then a
//! `Summary` of tagged `simple_value`s), encoded here field by field. A run that
//! resumes rewrites it from the metrics lines its checkpoint kept, so the two never
//! disagree about which steps happened.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Result, io};

/// The directory of event files in a run's output.
pub const DIR: &str = "tensorboard";
const FILE: &str = "events.out.tfevents.rlpt";

/// Appends one event per step to a run's event file.
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// A fresh event file in `output`, holding the steps of the `metrics` lines there
    /// already (none for a fresh run).
    pub fn open(output: &Path, metrics: &Path) -> Result<Self> {
        let dir = output.join(DIR);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(FILE);
        let file = File::create(&path).map_err(io(&path))?;
        let mut writer = Self { file, path };
        writer.append(&event(now(), 0, Body::Version))?;
        if metrics.exists() {
            let lines = BufReader::new(File::open(metrics).map_err(io(metrics))?);
            for (step, line) in (1..).zip(lines.lines()) {
                let line = line.map_err(io(metrics))?;
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    writer.write(step, &value)?;
                }
            }
        }
        Ok(writer)
    }

    /// Adds `metrics`' numbers as the scalars of `step`.
    pub fn write(&mut self, step: u64, metrics: &Value) -> Result<()> {
        let mut values = Vec::new();
        scalars("", metrics, &mut values);
        self.append(&event(now(), step, Body::Scalars(&values)))
    }

    fn append(&mut self, event: &[u8]) -> Result<()> {
        self.file
            .write_all(&record(event))
            .map_err(io(&self.path))?;
        self.file.flush().map_err(io(&self.path))
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Every number under `value`, tagged by its path below `prefix`; `step` is the x-axis,
/// not a scalar.
fn scalars(prefix: &str, value: &Value, out: &mut Vec<(String, f32)>) {
    match value {
        Value::Number(number) if prefix != "step" => {
            if let Some(n) = number.as_f64() {
                out.push((prefix.to_string(), n as f32));
            }
        }
        Value::Object(fields) => {
            for (key, field) in fields {
                let tag = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}/{key}")
                };
                scalars(&tag, field, out);
            }
        }
        _ => {}
    }
}

enum Body<'a> {
    Version,
    Scalars(&'a [(String, f32)]),
}

/// An `Event` message.
fn event(wall_time: f64, step: u64, body: Body<'_>) -> Vec<u8> {
    let mut bytes = vec![0x09]; // field 1, 64-bit: wall_time
    bytes.extend(wall_time.to_le_bytes());
    bytes.push(0x10); // field 2, varint: step
    varint(step, &mut bytes);
    match body {
        Body::Version => length_delimited(3, b"brain.Event:2", &mut bytes),
        Body::Scalars(values) => {
            let mut summary = Vec::new();
            for (tag, value) in values {
                let mut entry = Vec::new();
                length_delimited(1, tag.as_bytes(), &mut entry); // Value.tag
                entry.push(0x15); // field 2, 32-bit: simple_value
                entry.extend(value.to_le_bytes());
                length_delimited(1, &entry, &mut summary); // Summary.value
            }
            length_delimited(5, &summary, &mut bytes); // Event.summary
        }
    }
    bytes
}

fn length_delimited(field: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push((field << 3) | 2);
    varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// One TFRecord: the length and the data, each followed by its masked CRC-32C.
fn record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend(length);
    out.extend(masked_crc(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend(masked_crc(data).to_le_bytes());
    out
}

fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: event files
/// are small.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_its_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn numbers_are_tagged_by_their_path_and_the_step_is_not_a_scalar() {
        let metrics = serde_json::json!({
            "step": 3, "reward_mean": 0.5, "loss": null, "task": "asr",
            "timing": {"rollout_s": 2.0}, "per_task": {"asr": {"reward_mean": 0.25}}
        });
        let mut values = Vec::new();
        scalars("", &metrics, &mut values);
        values.sort_by(|a, b| a.0.cmp(&b.0));
        let tags: Vec<&str> = values.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            tags,
            [
                "per_task/asr/reward_mean",
                "reward_mean",
                "timing/rollout_s"
            ]
        );
    }
}
