//! f32 matrix products split across rayon's threads by the rows or the columns of
//! their output, each part one single-threaded GEMM.
//!
//! The gemm crate threads a product itself, but at a decoder's shapes its threads
//! gain little or lose (2 cores, `[480, 576]·[576, 576]`: 184 GFLOP/s with its two
//! threads, 196 with one; `[480, 576]·[576, 1536]`: 331 with two). Giving each thread
//! its own block of output columns (or rows) as a separate product — its own packing, no
//! synchronisation inside — ran the same products at 324 and 364 GFLOP/s. Each
//! element of the output is the same single-threaded sum whichever part computes it,
//! so the bits equal the gemm crate's threaded product, for any thread count.

use candle_core::{Result, Storage, Tensor, bail};
use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// A part's columns are a multiple of this (the GEMM's vector width), but the last's.
const COLUMN_ALIGN: usize = 16;

/// A part's rows, when the rows are split, likewise.
const ROW_ALIGN: usize = 16;

/// The gemm crate's products of at most this many rows and columns take blocks of
/// 512 along the inner dimension, larger ones blocks sized to its caches.
const GEMM_SMALL: usize = 64;

/// Products of at most this many elements (operands in some layouts) take the gemm
/// crate's horizontal kernels, in blocks of 1024 along the inner dimension.
const GEMM_HORIZONTAL: usize = 16 * 16;

/// The elements of f32 CPU tensors (made contiguous), read together by `f`.
pub(crate) fn with_f32<const N: usize, R>(
    tensors: [&Tensor; N],
    f: impl FnOnce([&[f32]; N]) -> Result<R>,
) -> Result<R> {
    let contiguous = tensors
        .into_iter()
        .map(Tensor::contiguous)
        .collect::<Result<Vec<_>>>()?;
    let held: Vec<_> = contiguous.iter().map(Tensor::storage_and_layout).collect();
    let mut slices: [&[f32]; N] = [&[]; N];
    for (slice, (storage, layout)) in slices.iter_mut().zip(&held) {
        let Storage::Cpu(storage) = &**storage else {
            bail!("a tensor off the CPU where one in host memory was needed");
        };
        let values = storage.as_slice::<f32>()?;
        *slice = match layout.contiguous_offsets() {
            Some((start, end)) => &values[start..end],
            None => bail!("a strided tensor where a contiguous one was needed"),
        };
    }
    f(slices)
}

/// A read-only f32 matrix over a slice: its shape and the strides, in elements,
/// between rows and between columns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// The row-major `[rows, cols]` matrix `data` holds.
    pub(crate) fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        if data.len() != rows * cols {
            bail!("a [{rows}, {cols}] matrix over {} elements", data.len());
        }
        Ok(Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        })
    }

    /// The transpose: the same elements, rows and columns swapped.
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Rows `first..first + count` (within the matrix).
    fn rows(self, first: usize, count: usize) -> Self {
        debug_assert!(first + count <= self.rows && count > 0);
        Self {
            data: &self.data[first * self.row_stride..],
            rows: count,
            ..self
        }
    }

    /// Columns `first..first + count` (within the matrix).
    fn columns(self, first: usize, count: usize) -> Self {
        debug_assert!(first + count <= self.cols && count > 0);
        Self {
            data: &self.data[first * self.col_stride..],
            cols: count,
            ..self
        }
    }

    /// Whether every element lies in `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `a · b`, row-major `[a.rows, b.cols]`. The output is not zeroed first: the GEMM
/// writes every element without reading it (zeroing it cost the update's main thread
/// ~5% of its time, one memset per product while the other thread waited).
pub(crate) fn product(a: Matrix<'_>, b: Matrix<'_>) -> Result<Vec<f32>> {
    let len = a.rows * b.cols;
    if !checked(a, b, len)? {
        return Ok(vec![0.0; len]);
    }
    let mut out = Vec::with_capacity(len);
    split_into(a, b, OutStart(out.as_mut_ptr()), WRITE);
    // SAFETY: the parts wrote all `len` elements (`WRITE` reads none).
    unsafe { out.set_len(len) };
    Ok(out)
}

/// `out += a · b`, `out` row-major `[a.rows, b.cols]`, split like [`product`]: a sum
/// of products (a gradient over chunks of rows) kept in one buffer.
pub(crate) fn product_added(a: Matrix<'_>, b: Matrix<'_>, out: &mut [f32]) -> Result<()> {
    let add = Sum {
        scale: 1.0,
        accumulate: true,
    };
    if checked(a, b, out.len())? {
        split_into(a, b, OutStart(out.as_mut_ptr()), add);
    }
    Ok(())
}

/// `a · b` into the row-major `[a.rows, b.cols]` at `out` as `sum` says, each rayon
/// thread one block of the output. Each part packs its share of one operand and all
/// of the other, so the larger operand is the one split: `a`'s rows (a weight's
/// gradient `gradᵀ·x`, the tall `gradᵀ` split) or `b`'s columns (`x·Wᵀ`, `grad·W`).
/// The operands passed [`checked`].
fn split_into(a: Matrix<'_>, b: Matrix<'_>, out: OutStart, sum: Sum) {
    let out_cols = b.cols;
    let by_rows = a.rows * a.cols > b.rows * b.cols;
    let (len, other, align) = if by_rows {
        (a.rows, out_cols, ROW_ALIGN)
    } else {
        (b.cols, a.rows, COLUMN_ALIGN)
    };
    let (parts, width) = parts_of(len, other, align, rayon::current_num_threads());
    (0..parts).into_par_iter().for_each(|part| {
        let first = part * width;
        let count = if part + 1 == parts {
            len - first
        } else {
            width
        };
        let (a, b, offset) = if by_rows {
            (a.rows(first, count), b, first * out_cols)
        } else {
            (a, b.columns(first, count), first)
        };
        // SAFETY: `a` and `b` lie in their slices (checked; `rows` and `columns` keep
        // it); the part writes its rows × columns of the row-major `[rows, out_cols]`
        // output from element `offset`, which outlives it, elements no other part writes.
        unsafe { multiply_into(a, b, out.at(offset), out_cols, sum, Parallelism::None) };
    });
}

/// How many parts of `width` (the last takes the rest) split `len` rows or columns
/// of an output `other` wide the other way, for `threads`. Widths are multiples of
/// `align`, but the last. The gemm crate sums a product at most [`GEMM_SMALL`] each
/// way, or of at most 256 elements, in other blocks of the inner dimension than a
/// larger one, so a part is kept out of those sizes unless the whole is in them:
/// the bits then match the whole product's, for any thread count.
fn parts_of(len: usize, other: usize, align: usize, threads: usize) -> (usize, usize) {
    let least = if other <= GEMM_SMALL {
        GEMM_SMALL + align
    } else {
        align
    };
    if other * least <= GEMM_HORIZONTAL {
        return (1, len);
    }
    let parts = threads.clamp(1, (len / least).max(1));
    // The last part takes what is left: at least `width`, so no part is a sliver.
    let width = (len / parts / align * align).max(len.min(least));
    ((len / width).min(parts), width)
}

/// `out = scale · a · b` (`accumulate`: `out += scale · a · b`) on the calling thread,
/// `out` row-major `[a.rows, b.cols]`: for callers that run many small products on
/// rayon's threads themselves.
pub(crate) fn product_into(
    a: Matrix<'_>,
    b: Matrix<'_>,
    out: &mut [f32],
    scale: f32,
    accumulate: bool,
) -> Result<()> {
    let sum = Sum { scale, accumulate };
    if !checked(a, b, out.len())? {
        if !accumulate {
            out.fill(0.0);
        }
        return Ok(());
    }
    // SAFETY: `a` and `b` lie in their slices (checked); `out` holds exactly
    // `[a.rows, b.cols]` row-major.
    unsafe { multiply_into(a, b, out.as_mut_ptr(), b.cols, sum, Parallelism::None) };
    Ok(())
}

/// Checks that an output of `len` elements holds `[a.rows, b.cols]` and that both
/// operands lie in their slices: whether there is a product to run (`false` when the
/// output is empty or the inner dimension is, where the product is all zeros).
fn checked(a: Matrix<'_>, b: Matrix<'_>, len: usize) -> Result<bool> {
    if a.cols != b.rows || len != a.rows * b.cols {
        bail!(
            "[{}, {}]·[{}, {}] into {len} elements",
            a.rows,
            a.cols,
            b.rows,
            b.cols
        );
    }
    if len == 0 || a.cols == 0 {
        return Ok(false);
    }
    assert!(a.in_bounds() && b.in_bounds(), "a matrix past its elements");
    Ok(true)
}

/// The start of the output, shared by the parts, which write disjoint elements.
#[derive(Clone, Copy)]
struct OutStart(*mut f32);

// SAFETY: parts write disjoint elements of an output that outlives them.
unsafe impl Send for OutStart {}
unsafe impl Sync for OutStart {}

impl OutStart {
    /// The address of element `offset` of the output.
    ///
    /// # Safety
    /// `offset` lies within the output.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        unsafe { self.0.add(offset) }
    }
}

/// How a product goes into its output: `out = scale · a · b`, or with `accumulate`,
/// `out += scale · a · b`.
#[derive(Clone, Copy)]
struct Sum {
    scale: f32,
    accumulate: bool,
}

/// The plain product: `out = a · b`.
const WRITE: Sum = Sum {
    scale: 1.0,
    accumulate: false,
};

/// `a · b` into `[a.rows, b.cols]` at `out` with `out_row_stride` between rows, as
/// `sum` says, by one gemm call (threaded as `parallelism` says).
///
/// # Safety
/// `a` and `b` lie in their slices; `out` is writable (and readable, to accumulate)
/// over that many rows and columns.
unsafe fn multiply_into(
    a: Matrix<'_>,
    b: Matrix<'_>,
    out: *mut f32,
    out_row_stride: usize,
    sum: Sum,
    parallelism: Parallelism,
) {
    let stride = |s: usize| s as isize;
    // SAFETY: as the caller guarantees; `out` is read only when accumulating.
    unsafe {
        gemm(
            a.rows,
            b.cols,
            a.cols,
            out,
            1,
            stride(out_row_stride),
            sum.accumulate,
            a.data.as_ptr(),
            stride(a.col_stride),
            stride(a.row_stride),
            b.data.as_ptr(),
            stride(b.col_stride),
            stride(b.row_stride),
            if sum.accumulate { 1.0 } else { 0.0 },
            sum.scale,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a · b` summed in plain Rust, row-major.
    fn naive(a: Matrix<'_>, b: Matrix<'_>) -> Vec<f64> {
        let at = |m: Matrix<'_>, i: usize, j: usize| m.data[i * m.row_stride + j * m.col_stride];
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols)
                    .map(|k| f64::from(at(a, i, k)) * f64::from(at(b, k, j)))
                    .sum();
            }
        }
        out
    }

    fn values(count: usize, seed: usize) -> Vec<f32> {
        (0..count)
            .map(|i| ((i * 2_654_435_761 + seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// `a · b` by the gemm crate threading the product itself.
    fn threaded(a: Matrix<'_>, b: Matrix<'_>) -> Vec<f32> {
        let mut out = vec![f32::NAN; a.rows * b.cols];
        if a.cols == 0 {
            out.fill(0.0);
            return out;
        }
        // SAFETY: both lie in their slices; `out` is [a.rows, b.cols].
        unsafe { multiply_into(a, b, out.as_mut_ptr(), b.cols, WRITE, Parallelism::Rayon(2)) };
        out
    }

    /// Every shape's product, operands row-major or transposed (a projection's
    /// `x·Wᵀ`, `grad·W` and `gradᵀ·x`), whatever the thread count: the bits of the
    /// gemm crate's threaded product and the exact sums to f32's precision.
    #[test]
    fn the_split_product_equals_the_threaded_one_for_every_thread_count() {
        for (rows, inner, cols) in [
            (1, 1, 1),
            (3, 5, 17),
            (70, 33, 100),
            (130, 64, 49),
            (300, 700, 40),
            (5, 0, 4),
        ] {
            let (x, w) = (values(rows * inner, 1), values(cols * inner, 2));
            let x = Matrix::row_major(&x, rows, inner).unwrap();
            let w = Matrix::row_major(&w, cols, inner).unwrap();
            for (a, b) in [(x, w.t()), (w, x.t()), (x.t().t(), w.t())] {
                let want = threaded(a, b);
                let exact = naive(a, b);
                for threads in [1, 2, 3, 8] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let got = pool.install(|| product(a, b)).unwrap();
                    let differs = got
                        .iter()
                        .zip(&want)
                        .position(|(g, w)| g.to_bits() != w.to_bits());
                    assert_eq!(differs, None, "{a:?}·{b:?}, {threads} threads");
                    for (got, exact) in got.iter().zip(&exact) {
                        assert!((f64::from(*got) - exact).abs() <= 1e-5 * (1.0 + exact.abs()));
                    }
                }
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_an_error() {
        let data = values(6, 0);
        let a = Matrix::row_major(&data, 2, 3).unwrap();
        assert!(product(a, a).is_err());
        assert!(Matrix::row_major(&data, 4, 2).is_err());
    }
}
