//! Writing named tensors as one safetensors file, CPU tensors' bytes straight from
//! their storage.
//!
//! candle's `safetensors::save` hands the writer a copy of every tensor's bytes (its
//! `View` converts each one to a new buffer first): writing a checkpoint allocated
//! each weight and moment again on top of everything a training run holds, one at a
//! time — SmolLM2's tied embedding is 113 MB, a 150k-token vocabulary at width 2,560
//! 1.5 GB. Here a contiguous CPU tensor lends its storage; others (another device, a strided
//! view, a dtype without a byte view here) go through candle's copy. The same
//! serializer writes the same names, dtypes, shapes and bytes, so the files are
//! byte-identical to candle's.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use candle_core::{CpuStorage, Storage, StorageRef, Tensor};
use safetensors::tensor::View;

/// Writes `tensors` to `path` as safetensors (what `candle_core::safetensors::save`
/// writes, without copying CPU tensors).
pub fn save_safetensors<K: AsRef<str>>(
    tensors: &HashMap<K, Tensor>,
    path: &Path,
) -> candle_core::Result<()> {
    let views = tensors
        .iter()
        .map(|(name, tensor)| (name.as_ref(), Lent::of(tensor)));
    safetensors::tensor::serialize_to_file(views, None, path)
        .map_err(|e| candle_core::Error::Msg(format!("writing {}: {e}", path.display())))?;
    with_usual_mode(path).map_err(|e| {
        candle_core::Error::Msg(format!("setting the mode of {}: {e}", path.display()))
    })
}

/// Gives `path` the mode every other file rlpt writes gets (0666 less the umask): the
/// safetensors writer goes through a temporary file, created 0600, so a checkpoint's
/// weights were readable by their owner alone while the rest of it was not.
#[cfg(unix)]
fn with_usual_mode(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666 & !umask()))
}

#[cfg(not(unix))]
fn with_usual_mode(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The process's umask, as Linux reports it (reading it through `umask(2)` would set
/// it for a moment under every other thread); 022 where it cannot be read.
#[cfg(unix)]
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Umask:"))
                .and_then(|mask| u32::from_str_radix(mask.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// A tensor for the safetensors writer, holding its storage's read lock so its bytes
/// can be lent.
struct Lent<'a> {
    tensor: &'a Tensor,
    storage: StorageRef<'a>,
}

impl<'a> Lent<'a> {
    fn of(tensor: &'a Tensor) -> Self {
        Self {
            tensor,
            storage: tensor.storage_and_layout().0,
        }
    }

    /// The tensor's bytes in its storage, when they can be lent as they lie.
    fn host_bytes(&self) -> Option<&[u8]> {
        let (start, end) = self.tensor.layout().contiguous_offsets()?;
        let Storage::Cpu(storage) = &*self.storage else {
            return None;
        };
        Some(match storage {
            CpuStorage::U8(v) => bytes_of(&v[start..end]),
            CpuStorage::U32(v) => bytes_of(&v[start..end]),
            CpuStorage::I64(v) => bytes_of(&v[start..end]),
            CpuStorage::BF16(v) => bytes_of(&v[start..end]),
            CpuStorage::F16(v) => bytes_of(&v[start..end]),
            CpuStorage::F32(v) => bytes_of(&v[start..end]),
            CpuStorage::F64(v) => bytes_of(&v[start..end]),
            _ => return None,
        })
    }
}

/// The in-memory bytes of plain numbers (little-endian on every target rlpt builds
/// for, as safetensors stores them and candle's copy takes them).
fn bytes_of<T: Copy>(values: &[T]) -> &[u8] {
    // SAFETY: the element types above are plain numbers with no padding or invalid
    // bit patterns; the byte slice covers exactly the values' memory and borrows them.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

impl View for Lent<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        View::dtype(self.tensor)
    }

    fn shape(&self) -> &[usize] {
        self.tensor.dims()
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match self.host_bytes() {
            Some(bytes) => Cow::Borrowed(bytes),
            None => View::data(self.tensor),
        }
    }

    fn data_len(&self) -> usize {
        View::data_len(self.tensor)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;

    /// Contiguous tensors of each dtype, a strided view and a narrowed one: the same
    /// file bytes as candle's writer.
    #[test]
    fn the_file_equals_candles() {
        let device = Device::Cpu;
        let base = Tensor::arange(0f32, 24.0, &device)
            .unwrap()
            .reshape((4, 6))
            .unwrap();
        let tensors: HashMap<String, Tensor> = [
            ("f32", base.clone()),
            ("bf16", base.to_dtype(DType::BF16).unwrap()),
            ("u32", Tensor::new(&[7u32, 9], &device).unwrap()),
            ("transposed", base.t().unwrap()),
            ("rows", base.narrow(0, 1, 2).unwrap()),
            ("columns", base.narrow(1, 2, 3).unwrap()),
        ]
        .into_iter()
        .map(|(name, t)| (name.to_string(), t))
        .collect();
        let dir = tempfile::tempdir().unwrap();
        let (ours, candles) = (dir.path().join("ours"), dir.path().join("candle"));
        save_safetensors(&tensors, &ours).unwrap();
        candle_core::safetensors::save(&tensors, &candles).unwrap();
        assert_eq!(
            std::fs::read(&ours).unwrap(),
            std::fs::read(&candles).unwrap()
        );
        let back = candle_core::safetensors::load(&ours, &device).unwrap();
        let columns = back["columns"].to_vec2::<f32>().unwrap();
        assert_eq!(
            columns,
            base.narrow(1, 2, 3).unwrap().to_vec2::<f32>().unwrap()
        );
    }

    /// The weights file gets the mode a file written with `std::fs::write` beside it
    /// gets (the writer's temporary file was 0600), whatever the umask.
    #[cfg(unix)]
    #[test]
    fn the_file_has_the_mode_of_any_other_file_written() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tensors = HashMap::from([("w", Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap())]);
        let (weights, other) = (
            dir.path().join("model.safetensors"),
            dir.path().join("config.json"),
        );
        save_safetensors(&tensors, &weights).unwrap();
        std::fs::write(&other, "{}").unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            format!("{:o}", mode(&weights)),
            format!("{:o}", mode(&other))
        );
    }
}
