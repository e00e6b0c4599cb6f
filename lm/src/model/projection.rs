//! `x·Wᵀ` on the CPU, a candle op with its own backward pass.
//!
//! The backward pass gives the weight's gradient as `gradᵀ·x`, already in the weight's
//! `[out, in]` layout: candle's `x.matmul(&w.t())` gives it as the transpose of
//! `xᵀ·grad`, a strided view its backward then copies into place, one element at a
//! time, for every weight of every layer (SmolLM2's GRPO update at the TRL bench's
//! settings: 4.5–4.8 s a step with that copy, 4.0–4.3 s without).
//!
//! Many rows go to a GEMM: for f32, [`split_gemm`]'s, each thread one block of output
//! columns (its products in the backward pass too); for bf16, candle's. The few rows
//! of a decoding step (at most
//! [`MAX_ROWS`]) take the thin product: a GEMM library packs the weight matrix into its
//! own layout on every call, and with a handful of rows that packing costs more than
//! the product; a decoding step of a small batch is bound by reading the weights from
//! memory. The thin product reads each block of three weight rows from memory once
//! (prefetching the next block while it computes) and multiplies it with every row of
//! `x` while it sits in L1 (register tiles of 8 × 3 dot products, 16 lanes wide), the
//! weight rows split across rayon's threads. f32,
//! and bf16 (bf16 weights widened to f32 in registers, half the bytes read; sums in
//! f32). [`thin_products`] runs several weights of one input (a block's queries, keys
//! and values; its gate and up projections) as one set of tasks, so a decoding step
//! hands its threads work four times per block instead of seven.

use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp2, DType, Layout, Result, Shape, Storage, StorageRef, Tensor, bail,
};
use half::bf16;
use rayon::prelude::*;

use super::split_gemm::{self, Matrix};

/// The most rows of `x` the thin product takes; a larger batch goes to the GEMM.
/// Measured on SmolLM2 (2 cores): decoding 32 and 64 sequences ran 1.75× and 1.3×
/// faster through the thin product than through the GEMM, 8 sequences 3×.
pub(crate) const MAX_ROWS: usize = 64;

/// Weight rows one register tile covers.
const WEIGHT_TILE: usize = 3;

/// Rows of `x` one register tile covers (8 × 3 sums and 3 weight vectors fill most of
/// AVX-512's 32 registers).
const X_BLOCK: usize = 8;

/// Whether `x·Wᵀ` (`x: [.., in]`, `weight: [out, in]`) takes this op.
pub(crate) fn applies(x: &Tensor, weight: &Tensor) -> bool {
    x.device().is_cpu()
        && x.rank() >= 1
        && weight.rank() == 2
        && x.dtype() == weight.dtype()
        && matches!(x.dtype(), DType::F32 | DType::BF16)
}

/// `x·Wᵀ` for `x: [.., in]` and `weight: [out, in]`: `[.., out]`, every leading
/// position one row of one product. One recorded op whatever `x`'s rank: reshaping
/// around a two-dimensional product records two more, each of which candle's backward
/// gives a zeroed gradient of `x`'s or the output's size to add into.
pub(crate) fn forward(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&weight.contiguous()?, Projection)
}

/// `(rows, features)` of `[.., features]` dims.
fn rows_and_features(dims: &[usize]) -> Result<(usize, usize)> {
    match dims.split_last() {
        Some((&features, leading)) => Ok((leading.iter().product(), features)),
        None => bail!("projection: a scalar has no features"),
    }
}

/// Rows and features of `x: [.., in]`, and the dims of its product with `outer`
/// weight rows, `[.., outer]`.
pub(super) fn product_dims(x: &[usize], outer: usize) -> Result<(usize, usize, Vec<usize>)> {
    let (rows, features) = rows_and_features(x)?;
    let mut dims = x.to_vec();
    if let Some(last) = dims.last_mut() {
        *last = outer;
    }
    Ok((rows, features, dims))
}

struct Projection;

impl CustomOp2 for Projection {
    fn name(&self) -> &'static str {
        "projection"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (outer, weight_inner) = weight_layout.shape().dims2()?;
        let (rows, inner, dims) = product_dims(x_layout.dims(), outer)?;
        if inner != weight_inner {
            bail!("projection: x has {inner} features, the weight {weight_inner}");
        }
        let shape = Shape::from(dims);
        if rows > MAX_ROWS {
            if let (CpuStorage::F32(x), CpuStorage::F32(weight)) = (x, weight) {
                let x = Matrix::row_major(contiguous("projection", x, x_layout)?, rows, inner)?;
                let weight = contiguous("projection", weight, weight_layout)?;
                let weight = Matrix::row_major(weight, outer, inner)?;
                let product = split_gemm::product(x, weight.t())?;
                return Ok((CpuStorage::F32(product), shape));
            }
            if !x_layout.is_contiguous() {
                bail!("projection: operands must be contiguous");
            }
            let flat = Layout::contiguous_with_offset((rows, inner), x_layout.start_offset());
            let transposed = weight_layout.transpose(0, 1)?;
            let product = x.matmul(weight, (1, rows, outer, inner), &flat, &transposed)?;
            return Ok((product, shape));
        }
        let dims = [rows, inner, outer];
        let product = match (x, weight) {
            (CpuStorage::F32(x), CpuStorage::F32(weight)) => CpuStorage::F32(product(
                contiguous("projection", x, x_layout)?,
                contiguous("projection", weight, weight_layout)?,
                dims,
            )),
            (CpuStorage::BF16(x), CpuStorage::BF16(weight)) => {
                let x: Vec<f32> = contiguous("projection", x, x_layout)?
                    .iter()
                    .map(|v| v.to_f32())
                    .collect();
                let product = product(&x, contiguous("projection", weight, weight_layout)?, dims);
                CpuStorage::BF16(product.into_iter().map(bf16::from_f32).collect())
            }
            _ => bail!("projection: f32 or bf16 operands of one dtype"),
        };
        Ok((product, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _product: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // From detached operands, as candle's own backward ops are: a gradient built
        // on the tracked `x` would keep `x`'s whole graph alive for as long as the
        // weight's gradient lives (candle never detaches a variable's), which held a
        // block's recomputed activations per layer until the optimizer step.
        let (grad_x, grad_weight) = backward(x, weight, grad)?;
        Ok((Some(grad_x), Some(grad_weight)))
    }
}

/// The gradients of `x` and the weight of [`forward`] for the gradient `grad` of its
/// output, with no graph: `grad·W` and `gradᵀ·x`.
pub(crate) fn backward(x: &Tensor, weight: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor)> {
    let (rows, inner) = rows_and_features(x.dims())?;
    if let Some(grads) = f32_gradients(x, weight, grad, rows)? {
        return Ok(grads);
    }
    let x_rows = x.detach().reshape((rows, inner))?;
    let grad = grad.reshape((rows, weight.dim(0)?))?;
    let weight = weight.detach();
    let grad_x = grad.matmul(&weight)?.reshape(x.shape())?;
    Ok((grad_x, grad.t()?.matmul(&x_rows)?))
}

/// The gradients of `x` and the weight for f32 operands on the CPU, from
/// [`split_gemm`]'s products (`None` for other operands): `grad·W` and `gradᵀ·x`.
fn f32_gradients(
    x: &Tensor,
    weight: &Tensor,
    grad: &Tensor,
    rows: usize,
) -> Result<Option<(Tensor, Tensor)>> {
    let (outer, inner) = weight.dims2()?;
    let grad = grad.contiguous()?;
    let (x_storage, x_layout) = x.storage_and_layout();
    let (weight_storage, weight_layout) = weight.storage_and_layout();
    let (grad_storage, grad_layout) = grad.storage_and_layout();
    let (
        Storage::Cpu(CpuStorage::F32(xs)),
        Storage::Cpu(CpuStorage::F32(ws)),
        Storage::Cpu(CpuStorage::F32(gs)),
    ) = (&*x_storage, &*weight_storage, &*grad_storage)
    else {
        return Ok(None);
    };
    let x_rows = Matrix::row_major(contiguous("projection", xs, x_layout)?, rows, inner)?;
    let weight_rows =
        Matrix::row_major(contiguous("projection", ws, weight_layout)?, outer, inner)?;
    let grad_rows = Matrix::row_major(contiguous("projection", gs, grad_layout)?, rows, outer)?;
    let grad_x = split_gemm::product(grad_rows, weight_rows)?;
    let grad_weight = split_gemm::product(grad_rows.t(), x_rows)?;
    let device = x.device();
    Ok(Some((
        Tensor::from_vec(grad_x, x.shape(), device)?,
        Tensor::from_vec(grad_weight, (outer, inner), device)?,
    )))
}

/// The elements of a contiguous layout (an error naming `op` for a strided one).
pub(super) fn contiguous<'a, T>(op: &str, storage: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&storage[start..end]),
        None => bail!("{op}: operands must be contiguous"),
    }
}

/// A weight element: f32 or bf16, read as f32.
trait Weight: Copy + Send + Sync {
    fn to_f32(self) -> f32;

    /// 16 consecutive weights widened to f32 (the first `count` of them; the rest 0).
    ///
    /// # Safety
    /// `count` elements from `from` are readable; AVX-512 F/BW/VL are available.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(from: *const Self, count: usize) -> std::arch::x86_64::__m512;
}

impl Weight for f32 {
    fn to_f32(self) -> f32 {
        self
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(from: *const Self, count: usize) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        unsafe {
            if count == 16 {
                _mm512_loadu_ps(from)
            } else {
                _mm512_maskz_loadu_ps(lanes(count), from)
            }
        }
    }
}

impl Weight for bf16 {
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(from: *const Self, count: usize) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        unsafe {
            let halves = if count == 16 {
                _mm256_loadu_si256(from.cast())
            } else {
                _mm256_maskz_loadu_epi16(lanes(count), from.cast())
            };
            // A bf16 is the top half of the f32 with the same bits.
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(halves)))
        }
    }
}

/// The mask of the first `count` of 16 lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lanes(count: usize) -> u16 {
    ((1u32 << count) - 1) as u16
}

/// `x·Wᵀ` of `x: [rows, inner]` (row-major) and `weight: [outer, inner]`: `[rows, outer]`.
fn product<W: Weight>(x: &[f32], weight: &[W], [rows, inner, outer]: [usize; 3]) -> Vec<f32> {
    let mut products = products(x, &[(weight, outer)], rows, inner);
    products.pop().unwrap_or_default()
}

/// `x·Wᵀ` of `x: [rows, inner]` (row-major) and each `(weight, outer)` of `weights`
/// (`[outer, inner]`): their `[rows, outer]` products, every weight's rows split into
/// tasks as if it were alone, all the tasks handed to rayon at once.
fn products<W: Weight>(
    x: &[f32],
    weights: &[(&[W], usize)],
    rows: usize,
    inner: usize,
) -> Vec<Vec<f32>> {
    let mut products: Vec<Vec<f32>> = weights
        .iter()
        .map(|&(_, outer)| vec![0.0f32; rows * outer])
        .collect();
    if rows == 0 || inner == 0 {
        return products;
    }
    let tasks: Vec<(&[W], Columns)> = weights
        .iter()
        .zip(products.iter_mut())
        .flat_map(|(&(weight, outer), product)| {
            let per_task = rows_per_task(outer);
            let into = Product::of(product, outer);
            weight
                .chunks(per_task * inner)
                .enumerate()
                .map(move |(task, rows)| (rows, into.columns(task * per_task, rows.len() / inner)))
        })
        .collect();
    tasks
        .into_par_iter()
        .for_each(|(weight, columns)| dots(x, weight, inner, columns));
    products
}

/// Weight rows of one task of a weight with `outer` rows: a multiple of the tile, about
/// four tasks per thread.
fn rows_per_task(outer: usize) -> usize {
    let tasks = 4 * rayon::current_num_threads();
    outer
        .div_ceil(tasks)
        .next_multiple_of(WEIGHT_TILE)
        .max(4 * WEIGHT_TILE)
}

/// `x·Wᵀ` for each of `weights` (all `[outer, in]` of `x`'s dtype), for inference:
/// [`forward`]'s thin products to the bit, handed to the threads as one set of tasks
/// (a block's queries, keys and values; its gate and up projections), so a decoding
/// step wakes them once for the lot. Nothing is recorded for a backward pass. `None`
/// where [`forward`] would not take the thin product for every one of them.
pub(crate) fn thin_products(x: &Tensor, weights: &[&Tensor]) -> Result<Option<Vec<Tensor>>> {
    if !weights.iter().all(|weight| applies(x, weight)) {
        return Ok(None);
    }
    let (rows, inner) = rows_and_features(x.dims())?;
    if rows > MAX_ROWS
        || weights
            .iter()
            .any(|weight| weight.dim(1).ok() != Some(inner))
    {
        return Ok(None);
    }
    let x = x.contiguous()?;
    let (x_storage, x_layout) = x.storage_and_layout();
    let guards: Vec<_> = weights
        .iter()
        .map(|weight| weight.storage_and_layout())
        .collect();
    let outers: Vec<usize> = weights
        .iter()
        .map(|weight| weight.dim(0))
        .collect::<Result<_>>()?;
    let products = match &*x_storage {
        Storage::Cpu(CpuStorage::F32(xs)) => {
            let xs = contiguous("projection", xs, x_layout)?;
            let operands = weight_slices(&guards, &outers, |s| match s {
                CpuStorage::F32(w) => Some(w.as_slice()),
                _ => None,
            })?;
            let products = products(xs, &operands, rows, inner);
            tensors(products, &outers, x.dims(), |p, dims| {
                Tensor::from_vec(p, dims, x.device())
            })?
        }
        Storage::Cpu(CpuStorage::BF16(xs)) => {
            let xs: Vec<f32> = contiguous("projection", xs, x_layout)?
                .iter()
                .map(|v| v.to_f32())
                .collect();
            let operands = weight_slices(&guards, &outers, |s| match s {
                CpuStorage::BF16(w) => Some(w.as_slice()),
                _ => None,
            })?;
            let products = products(&xs, &operands, rows, inner);
            tensors(products, &outers, x.dims(), |p, dims| {
                let p: Vec<bf16> = p.into_iter().map(bf16::from_f32).collect();
                Tensor::from_vec(p, dims, x.device())
            })?
        }
        _ => return Ok(None),
    };
    Ok(Some(products))
}

/// Each weight's elements, with its row count, as `slice` reads its storage (an error
/// where one is strided or of another dtype than `x`).
fn weight_slices<'a, W>(
    guards: &'a [(StorageRef<'a>, &'a Layout)],
    outers: &[usize],
    slice: impl Fn(&'a CpuStorage) -> Option<&'a [W]>,
) -> Result<Vec<(&'a [W], usize)>> {
    guards
        .iter()
        .zip(outers)
        .map(|((storage, layout), &outer)| match &**storage {
            Storage::Cpu(cpu) => match slice(cpu) {
                Some(values) => Ok((contiguous("projection", values, layout)?, outer)),
                None => bail!("projection: every weight of x's dtype"),
            },
            _ => bail!("projection: every weight on the CPU"),
        })
        .collect()
}

/// The products as tensors `[.., outer]` of `x`'s leading dims, each made by `make`
/// from its values and dims.
fn tensors(
    products: Vec<Vec<f32>>,
    outers: &[usize],
    x_dims: &[usize],
    make: impl Fn(Vec<f32>, Vec<usize>) -> Result<Tensor>,
) -> Result<Vec<Tensor>> {
    products
        .into_iter()
        .zip(outers)
        .map(|(product, &outer)| make(product, product_dims(x_dims, outer)?.2))
        .collect()
}

/// A `[rows, outer]` product whose columns rayon's tasks write.
#[derive(Clone, Copy)]
struct Product {
    start: *mut f32,
    rows: usize,
    outer: usize,
}

impl Product {
    fn of(product: &mut [f32], outer: usize) -> Self {
        Self {
            start: product.as_mut_ptr(),
            rows: product.len() / outer.max(1),
            outer,
        }
    }

    /// Columns `first..first + count` of every row (checked to lie in the product).
    fn columns(self, first: usize, count: usize) -> Columns {
        assert!(
            first + count <= self.outer,
            "columns past the product's width"
        );
        Columns {
            product: self,
            first,
            count,
        }
    }
}

// SAFETY: tasks write disjoint columns (`Columns`) of a product that outlives them.
unsafe impl Send for Product {}
unsafe impl Sync for Product {}

/// The columns `first..first + count` of every row of a product: one task's output,
/// written in place, so the product needs no transposition after the tasks.
#[derive(Clone, Copy)]
struct Columns {
    product: Product,
    first: usize,
    count: usize,
}

impl Columns {
    /// The product's rows.
    fn rows(&self) -> usize {
        self.product.rows
    }

    /// Sets row `i`'s column `first + j`.
    ///
    /// # Safety
    /// `i < rows` and `j < count`, and no other task holds these columns.
    #[inline(always)]
    unsafe fn set(&self, i: usize, j: usize, value: f32) {
        debug_assert!(i < self.rows() && j < self.count);
        unsafe {
            *self
                .product
                .start
                .add(i * self.product.outer + self.first + j) = value;
        }
    }
}

/// `x[i] · weight[j]` into row `i`, column `j` of `out`, for every row `i` of `out`
/// and weight row `j` of this slice (`out`'s columns are this task's alone).
fn dots<W: Weight>(x: &[f32], weight: &[W], inner: usize, out: Columns) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the features are present; the slices' lengths are checked below.
        unsafe { avx512::dots(x, weight, inner, out) };
        return;
    }
    portable_dots(x, weight, inner, out);
}

#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

/// The dot products in plain Rust (16 lanes of partial sums per product, as the
/// vector kernel keeps them).
fn portable_dots<W: Weight>(x: &[f32], weight: &[W], inner: usize, out: Columns) {
    assert!(x.len() >= out.rows() * inner && weight.len() >= out.count * inner);
    for (j, weight_row) in weight.chunks_exact(inner).enumerate() {
        for (i, x_row) in x.chunks_exact(inner).take(out.rows()).enumerate() {
            let mut lanes = [0.0f32; 16];
            for (k, (&a, &b)) in x_row.iter().zip(weight_row).enumerate() {
                lanes[k % 16] = a.mul_add(b.to_f32(), lanes[k % 16]);
            }
            // SAFETY: i < rows, j < count (the asserted lengths); the task's columns.
            unsafe { out.set(i, j, lanes.iter().sum()) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Columns, WEIGHT_TILE, Weight, X_BLOCK};

    /// [`super::dots`] in register tiles: up to [`X_BLOCK`] rows of `x` against
    /// [`WEIGHT_TILE`] weight rows. The first block of `x` rows also prefetches the next
    /// tile's weight rows, so they arrive from memory while this tile is computed: a
    /// decoding step is bound by reading the weights, and one core keeps too few
    /// reads in flight without being asked for the next rows early (SmolLM2's decoding
    /// step with 8 sequences read its weights at 9–13 GB/s without, 18–19 with).
    ///
    /// # Safety
    /// AVX-512 F/BW/VL are available; no other task holds `out`'s columns.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn dots<W: Weight>(x: &[f32], weight: &[W], inner: usize, out: Columns) {
        let (rows, weight_rows) = (out.rows(), out.count);
        assert!(x.len() >= rows * inner && weight.len() >= weight_rows * inner);
        let operands = Operands { x, weight, inner };
        let mut j = 0;
        while j < weight_rows {
            let n = (weight_rows - j).min(WEIGHT_TILE);
            let ahead = (weight_rows - j - n).min(WEIGHT_TILE);
            let mut i = 0;
            while i < rows {
                let m = (rows - i).min(X_BLOCK);
                let prefetch = if i == 0 { ahead } else { 0 };
                // SAFETY: rows i..i+m of x and j..j+n+prefetch of weight are in bounds.
                unsafe {
                    if n == WEIGHT_TILE {
                        operands.block::<WEIGHT_TILE>(m, i, j, prefetch, out);
                    } else {
                        for r in j..j + n {
                            operands.block::<1>(m, i, r, 0, out);
                        }
                    }
                }
                i += m;
            }
            j += n;
        }
    }

    /// The two matrices: rows of `inner` of `x` and of the weight.
    struct Operands<'a, W> {
        x: &'a [f32],
        weight: &'a [W],
        inner: usize,
    }

    impl<W: Weight> Operands<'_, W> {
        /// [`Self::tile`] for `m` (1 to [`X_BLOCK`]) rows of `x`.
        ///
        /// # Safety
        /// As [`Self::tile`].
        #[inline(always)]
        unsafe fn block<const N: usize>(
            &self,
            m: usize,
            i: usize,
            j: usize,
            prefetch: usize,
            out: Columns,
        ) {
            unsafe {
                match m {
                    1 => self.tile::<1, N>(i, j, prefetch, out),
                    2 => self.tile::<2, N>(i, j, prefetch, out),
                    3 => self.tile::<3, N>(i, j, prefetch, out),
                    4 => self.tile::<4, N>(i, j, prefetch, out),
                    5 => self.tile::<5, N>(i, j, prefetch, out),
                    6 => self.tile::<6, N>(i, j, prefetch, out),
                    7 => self.tile::<7, N>(i, j, prefetch, out),
                    _ => self.tile::<X_BLOCK, N>(i, j, prefetch, out),
                }
            }
        }

        /// `M × N` dot products: rows `i..i + M` of `x` with weight rows `j..j + N`,
        /// into row `i + a`, column `j + r` of `out`, prefetching the `prefetch` weight rows
        /// after them.
        ///
        /// # Safety
        /// AVX-512 F/BW/VL are available; the rows (prefetched ones too) are in bounds.
        #[inline(always)]
        unsafe fn tile<const M: usize, const N: usize>(
            &self,
            i: usize,
            j: usize,
            prefetch: usize,
            out: Columns,
        ) {
            let (x, weight, inner) = (self.x, self.weight, self.inner);
            unsafe {
                let mut sums = [[_mm512_setzero_ps(); N]; M];
                let mut k = 0;
                while k < inner {
                    let count = (inner - k).min(16);
                    let mut w = [_mm512_setzero_ps(); N];
                    for (r, w) in w.iter_mut().enumerate() {
                        *w = W::load16(weight.as_ptr().add((j + r) * inner + k), count);
                    }
                    for r in 0..prefetch {
                        let next = weight.as_ptr().add((j + N + r) * inner + k);
                        _mm_prefetch::<_MM_HINT_T0>(next.cast());
                    }
                    for (a, sums) in sums.iter_mut().enumerate() {
                        let xv = f32::load16(x.as_ptr().add((i + a) * inner + k), count);
                        for (sum, &w) in sums.iter_mut().zip(&w) {
                            *sum = _mm512_fmadd_ps(xv, w, *sum);
                        }
                    }
                    k += 16;
                }
                for (a, sums) in sums.iter().enumerate() {
                    for (r, &sum) in sums.iter().enumerate() {
                        out.set(i + a, j + r, _mm512_reduce_add_ps(sum));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::model::max_difference;

    fn values(count: usize, seed: f32) -> Vec<f32> {
        (0..count)
            .map(|i| ((i as f32 + 1.0) * (seed * 0.618 + 1.37)).sin())
            .collect()
    }

    fn matrix(rows: usize, cols: usize, seed: f32) -> Tensor {
        Tensor::from_vec(values(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap()
    }

    /// Every tile shape (rows and weight rows off the tile, features off 16), rows past
    /// the thin product's limit, and both dtypes give the GEMM's product.
    #[test]
    fn equals_the_gemm() {
        for rows in [1, 3, 4, 7, 8, 16, 33, MAX_ROWS, MAX_ROWS + 1, 150] {
            for (outer, inner) in [(1, 1), (5, 17), (64, 576), (70, 33), (130, 160)] {
                let x = matrix(rows, inner, rows as f32);
                let weight = matrix(outer, inner, outer as f32 + 0.5);
                let expected = x.matmul(&weight.t().unwrap()).unwrap();
                assert!(applies(&x, &weight));
                let thin = forward(&x, &weight).unwrap();
                assert_eq!(thin.dims(), &[rows, outer]);
                assert!(
                    max_difference(&thin, &expected) < 1e-4,
                    "{rows}x{inner}·{outer}"
                );
                let (x16, weight16) = (
                    x.to_dtype(DType::BF16).unwrap(),
                    weight.to_dtype(DType::BF16).unwrap(),
                );
                let expected = x16
                    .to_dtype(DType::F32)
                    .unwrap()
                    .matmul(&weight16.to_dtype(DType::F32).unwrap().t().unwrap())
                    .unwrap();
                let thin = forward(&x16, &weight16).unwrap();
                assert_eq!(thin.dtype(), DType::BF16);
                // One bf16 rounding of the f32 sum.
                let tolerance = 1e-2 * (inner as f32).sqrt();
                assert!(max_difference(&thin, &expected) < tolerance);
            }
        }
    }

    /// Several weights of one `x` in one set of tasks: each product to the bit of its
    /// own thin product, both dtypes, leading axes kept; past the thin product's rows,
    /// or with a weight of another width, `None`.
    #[test]
    fn thin_products_are_each_weights_own_to_the_bit() {
        for rows in [1, 5, 8, 13, MAX_ROWS] {
            let x = matrix(rows, 70, 0.3).reshape((1, rows, 70)).unwrap();
            let weights = [
                matrix(96, 70, 1.0),
                matrix(7, 70, 2.0),
                matrix(130, 70, 3.0),
            ];
            for dtype in [DType::F32, DType::BF16] {
                let x = x.to_dtype(dtype).unwrap();
                let weights: Vec<Tensor> =
                    weights.iter().map(|w| w.to_dtype(dtype).unwrap()).collect();
                let refs: Vec<&Tensor> = weights.iter().collect();
                let products = thin_products(&x, &refs).unwrap().expect("thin");
                for (product, weight) in products.iter().zip(&weights) {
                    let alone = forward(&x, weight).unwrap();
                    assert_eq!(product.dims(), alone.dims());
                    assert_eq!(product.dtype(), dtype);
                    let bits = |t: &Tensor| {
                        let t = t.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
                        let values = t.to_vec1::<f32>().unwrap();
                        values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                    };
                    assert_eq!(bits(product), bits(&alone), "{rows} rows, {dtype:?}");
                }
            }
        }
        let many = matrix(MAX_ROWS + 1, 70, 0.3);
        let weight = matrix(9, 70, 1.0);
        assert!(thin_products(&many, &[&weight]).unwrap().is_none());
        let narrow = matrix(9, 69, 1.0);
        let x = matrix(4, 70, 0.3);
        assert!(thin_products(&x, &[&weight, &narrow]).unwrap().is_none());
    }

    #[test]
    fn portable_form_equals_the_vector_form() {
        let (rows, outer, inner) = (6, 9, 37);
        let x = values(rows * inner, 1.0);
        let weight = values(outer * inner, 2.0);
        let whole = |product: &mut Vec<f32>| Product::of(product, outer).columns(0, outer);
        let mut portable = vec![f32::NAN; rows * outer];
        portable_dots(&x, &weight, inner, whole(&mut portable));
        let mut dispatched = vec![f32::NAN; rows * outer];
        dots(&x, &weight, inner, whole(&mut dispatched));
        for (a, b) in portable.iter().zip(&dispatched) {
            assert!((a - b).abs() < 1e-5, "{a} {b}");
        }
    }

    /// The gradients equal autograd's through candle's matmul, for a thin product and a
    /// GEMM, and the weight's comes contiguous in the weight's layout (candle's is a
    /// transposed view).
    #[test]
    fn gradients_are_the_products() {
        for rows in [3, MAX_ROWS + 6] {
            let x = Var::from_tensor(&matrix(rows, 20, 1.0)).unwrap();
            let weight = Var::from_tensor(&matrix(7, 20, 2.0)).unwrap();
            let target = matrix(rows, 7, 3.0);
            let loss_of = |product: Tensor| (product * &target).unwrap().sum_all().unwrap();
            let ours = loss_of(forward(&x, &weight).unwrap()).backward().unwrap();
            let gemm = loss_of(x.matmul(&weight.t().unwrap()).unwrap())
                .backward()
                .unwrap();
            for var in [&x, &weight] {
                let ours = ours.get(var).unwrap();
                assert!(max_difference(ours, gemm.get(var).unwrap()) < 1e-5);
                assert!(ours.is_contiguous(), "{rows} rows");
            }
        }
    }

    /// An `x` of rank 3 (and 1) is its rows: the output and both gradients equal the
    /// two-dimensional product's, for a thin product and a GEMM.
    #[test]
    fn leading_axes_are_rows() {
        for (batch, seq) in [(2, 3), (3, MAX_ROWS)] {
            let flat = matrix(batch * seq, 20, 1.0);
            let weight = Var::from_tensor(&matrix(7, 20, 2.0)).unwrap();
            let target = matrix(batch * seq, 7, 3.0);
            let x = Var::from_tensor(&flat.reshape((batch, seq, 20)).unwrap()).unwrap();
            let product = forward(&x, &weight).unwrap();
            assert_eq!(product.dims(), &[batch, seq, 7]);
            let expected = forward(&flat, &weight).unwrap();
            let reshaped = product.reshape((batch * seq, 7)).unwrap();
            assert_eq!(max_difference(&reshaped, &expected), 0.0);
            let grads = (product * target.reshape((batch, seq, 7)).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let x_flat = Var::from_tensor(&flat).unwrap();
            let flat_grads = (forward(&x_flat, &weight).unwrap() * &target)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let grad_x = grads.get(&x).unwrap();
            assert_eq!(grad_x.dims(), &[batch, seq, 20]);
            let grad_x = grad_x.reshape((batch * seq, 20)).unwrap();
            assert_eq!(
                max_difference(&grad_x, flat_grads.get(&x_flat).unwrap()),
                0.0
            );
            let (ours, flat) = (
                grads.get(&weight).unwrap(),
                flat_grads.get(&weight).unwrap(),
            );
            assert_eq!(max_difference(ours, flat), 0.0);
        }
        let row = matrix(1, 20, 1.0).squeeze(0).unwrap();
        let weight = matrix(7, 20, 2.0);
        let product = forward(&row, &weight).unwrap();
        assert_eq!(product.dims(), &[7]);
        let expected = forward(&row.unsqueeze(0).unwrap(), &weight).unwrap();
        assert_eq!(
            max_difference(&product.unsqueeze(0).unwrap(), &expected),
            0.0
        );
    }

    /// A weight's gradient carries no graph: built on the tracked input it kept that
    /// input's whole graph (a checkpointed block's activations) alive until the
    /// optimizer step, +31 MB a layer in SmolLM2's GRPO update.
    #[test]
    fn gradients_hold_no_graph() {
        let weight = Var::from_tensor(&matrix(7, 20, 2.0)).unwrap();
        let x = (weight
            .sum_keepdim(0)
            .unwrap()
            .broadcast_as((3, 20))
            .unwrap()
            * 0.5)
            .unwrap();
        let grads = forward(&x, &weight)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(!grads.get(&weight).unwrap().track_op());
    }

    /// Inputs without features give zeros, and gradients of their shapes.
    #[test]
    fn no_features_give_zeros() {
        for rows in [3, MAX_ROWS + 1] {
            let x = Var::from_tensor(&Tensor::zeros((rows, 0), DType::F32, &Device::Cpu).unwrap())
                .unwrap();
            let weight =
                Var::from_tensor(&Tensor::zeros((2, 0), DType::F32, &Device::Cpu).unwrap())
                    .unwrap();
            let product = forward(&x, &weight).unwrap();
            assert_eq!(product.dims(), &[rows, 2]);
            assert_eq!(
                product
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap(),
                0.0
            );
            let grads = product.sum_all().unwrap().backward().unwrap();
            assert_eq!(grads.get(&x).unwrap().dims(), &[rows, 0]);
            assert_eq!(grads.get(&weight).unwrap().dims(), &[2, 0]);
        }
    }

    #[test]
    fn mismatched_features_are_an_error() {
        let x = matrix(2, 8, 1.0);
        let weight = matrix(3, 9, 2.0);
        assert!(forward(&x, &weight).is_err());
    }
}
