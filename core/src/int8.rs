//! tract ops that compute straight from int8 weights ([`QuantMatrix`]), so a
//! model keeps its weights in int8 (a quarter of f32) and decoding streams a
//! quarter of the bytes per token.
//!
//! tract-linalg 0.23 has no int8-weight × f32-activation kernels on x86_64
//! (its block-quant kernels there are Q4_0 only), so these ops carry their own:
//! - [`Int8Linear`], `x [T, K] · Wᵀ → [T, N]`: `x` is quantized to int8 in
//!   blocks of 32 and multiplied with the weight rows in integer arithmetic
//!   (VNNI or AVX2 on x86_64, see [`crate::q8`]; prefill on AMX tiles where
//!   the CPU has them, see [`crate::amx`]), reading each weight once;
//! - [`Int8GatedLinear`], SwiGLU's gated product `silu(x · W1ᵀ) ⊙ (x · W2ᵀ)`,
//!   with `x` quantized once for both weights and the gate applied as the
//!   second product is stored;
//! - [`Int8Embedding`], the token-embedding lookup `ids [T] → [T, K]`.
//!
//! Work runs on the model's compute pool ([`crate::parallel`]); dot products
//! are split into fixed blocks of weight rows, so results do not depend on
//! the thread count.

use crate::amx::{Packed, TILE};
use crate::parallel::{for_each_index, map_index};
use crate::q8::{kernels, prefetch, Q8Rows, PANEL_ROWS, PANEL_TOKENS};
use crate::quant::QuantMatrix;
use crate::vector;
use tract_core::internal::*;

/// Weight rows per parallel task: two prefill panels, so the threads of a
/// parallel region finish within a short task of each other.
const BLOCK_ROWS: usize = 32;

/// How far ahead of a decode tile, in bytes of its task's weights, the tile
/// prefetches them ([`crate::q8::Tile`]). A task's weight rows are one range
/// of memory, and decode reads them once: asked for in address order, a page
/// ahead (and the task's first page when it starts), they arrive before the
/// tile that reads them, and the hardware's stream prefetcher follows. On a
/// 2-core AMD EPYC Zen 4 this took the products of 640- and 192-byte rows
/// from 16-23 GB/s to 23-30 GB/s; asking instead for each row's line in the
/// next tile as the tile read that line reached 16-23.
const PREFETCH_DISTANCE: usize = 4096;

/// Rows longer than this are not prefetched: each is a stream long enough
/// for the hardware prefetchers alone, and the address-order prefetch, which
/// runs behind a tile's last rows, made SwiGLU's `w3` (2560-byte rows) 5-10%
/// slower there.
const PREFETCH_MAX_COLS: usize = 1024;

/// How many output rows ahead of a panel's results their cache lines are
/// fetched for writing: each panel writes one line per row, far apart, and
/// without the hint every store waits for its line (measured: a 256-token
/// prompt's best time 2% lower with it).
const STORE_AHEAD: usize = 16;

/// `x · Wᵀ` for an int8 weight `W [N, K]`; input `[T, K]` f32, output `[T, N]`.
#[derive(Clone, Debug)]
pub struct Int8Linear {
    /// The weight, shared with other ops and graphs.
    pub weight: Arc<QuantMatrix>,
}

/// `silu(x · W1ᵀ) ⊙ (x · W2ᵀ)` for int8 `W1`, `W2 [N, K]`; input `[T, K]` f32,
/// output `[T, N]`: the same products as [`Int8Linear`] twice, gated as
/// they are stored ([`multiply_gated`]).
#[derive(Clone, Debug)]
pub struct Int8GatedLinear {
    /// `W1`, whose product goes through SiLU.
    pub gate: Arc<QuantMatrix>,
    /// `W2`, whose product the gate multiplies.
    pub up: Arc<QuantMatrix>,
}

/// Token-embedding lookup in an int8 table `[vocab, K]`; input ids `[T]` (i64),
/// output `[T, K]` f32. Out-of-range ids are an error.
#[derive(Clone, Debug)]
pub struct Int8Embedding {
    /// The table, shared with the tied output head.
    pub table: Arc<QuantMatrix>,
}

macro_rules! weight_op {
    ($op:ty, $name:literal, $($field:ident),+) => {
        impl PartialEq for $op {
            fn eq(&self, other: &Self) -> bool {
                $(Arc::ptr_eq(&self.$field, &other.$field))&&+
            }
        }
        impl Eq for $op {}

        impl Op for $op {
            fn name(&self) -> StaticName {
                $name.into()
            }
            fn info(&self) -> TractResult<Vec<String>> {
                Ok(vec![$(format!("{:?}", self.$field)),+])
            }
            op_as_typed_op!();
        }
    };
}
weight_op!(Int8Linear, "Int8Linear", weight);
weight_op!(Int8GatedLinear, "Int8GatedLinear", gate, up);
weight_op!(Int8Embedding, "Int8Embedding", table);

/// The `[T, K]` f32 input of an op, checked.
fn input_rows(x: &TValue, k: usize, op: &str) -> TractResult<usize> {
    ensure!(
        x.rank() == 2 && x.shape()[1] == k,
        "{op} input must be [T, {k}]"
    );
    Ok(x.shape()[0])
}

impl EvalOp for Int8Linear {
    not_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let rows = input_rows(&x, self.weight.cols(), "Int8Linear")?;
        let x = x.try_as_plain_ram()?;
        // Written in place: a tensor made from a Vec would be copied (tract
        // aligns its buffers), which cost a seventh of prefill; not zeroed first
        // (a serial pass).
        // SAFETY: `linear` writes every element before anything reads it.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&[rows, self.weight.rows()])? };
        let mut out_view = out.try_as_plain_ram_mut()?;
        linear(
            &self.weight,
            x.as_slice::<f32>()?,
            rows,
            out_view.as_slice_mut()?,
        );
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Int8Linear {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = inputs[0];
        ensure!(x.rank() == 2 && x.shape[1] == self.weight.cols().to_dim());
        Ok(tvec!(f32::fact(tvec![
            x.shape[0].clone(),
            self.weight.rows().to_dim()
        ])))
    }
    as_op!();
}

impl EvalOp for Int8GatedLinear {
    not_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let rows = input_rows(&x, self.gate.cols(), "Int8GatedLinear")?;
        let x = x.try_as_plain_ram()?;
        let input = QuantizedInput::new(x.as_slice::<f32>()?, self.gate.cols());
        // SAFETY: `multiply_gated` writes every element before anything reads it.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&[rows, self.gate.rows()])? };
        let mut out_view = out.try_as_plain_ram_mut()?;
        multiply_gated(&self.gate, &self.up, &input, out_view.as_slice_mut()?);
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Int8GatedLinear {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = inputs[0];
        ensure!(x.rank() == 2 && x.shape[1] == self.gate.cols().to_dim());
        ensure!(
            self.up.rows() == self.gate.rows() && self.up.cols() == self.gate.cols(),
            "Int8GatedLinear weights must have the same shape"
        );
        Ok(tvec!(f32::fact(tvec![
            x.shape[0].clone(),
            self.gate.rows().to_dim()
        ])))
    }
    as_op!();
}

impl EvalOp for Int8Embedding {
    not_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let ids = args_1!(inputs);
        let ids = ids.cast_to::<i64>()?;
        let ids = ids.try_as_plain_ram()?;
        let ids = ids.as_slice::<i64>()?;
        let k = self.table.cols();
        let mut out = Tensor::zero::<f32>(&[ids.len(), k])?;
        let mut out_view = out.try_as_plain_ram_mut()?;
        for (&id, row) in ids
            .iter()
            .zip(out_view.as_slice_mut::<f32>()?.chunks_exact_mut(k))
        {
            let id = usize::try_from(id)
                .ok()
                .filter(|&id| id < self.table.rows())
                .with_context(|| format!("token id {id} is out of range"))?;
            self.table.dequantize_row(id, row);
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Int8Embedding {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let ids = inputs[0];
        ensure!(ids.rank() == 1, "Int8Embedding takes ids [T]");
        Ok(tvec!(f32::fact(tvec![
            ids.shape[0].clone(),
            self.table.cols().to_dim()
        ])))
    }
    as_op!();
}

/// `out = x [rows, K] · Wᵀ`, row-major `[rows, N]`: `x` quantized to
/// int8 blocks ([`Q8Rows`]), then integer dot products with each weight row:
/// for prefill (4 rows or more) on AMX tiles of 16 × 16 where the CPU has
/// them, else in panels of 16 packed weight rows × 4 input rows (8 with
/// AVX-512); for decode in tiles of 8 weight rows × 1 input row. Every path
/// gives the same bits.
pub fn linear(w: &QuantMatrix, x: &[f32], rows: usize, out: &mut [f32]) {
    assert_eq!(x.len(), rows * w.cols(), "input must be [rows, K]");
    multiply(w, &QuantizedInput::new(x, w.cols()), out)
}

/// Activations as [`multiply`] reads them: int8 blocks, for prefill packed
/// for AMX tiles where the CPU has them.
pub struct QuantizedInput(Activations);

enum Activations {
    Rows(Q8Rows),
    Tiles(Packed),
}

impl QuantizedInput {
    /// Quantizes the row-major `[rows, cols]` matrix `x`.
    pub fn new(x: &[f32], cols: usize) -> QuantizedInput {
        let packed = if x.len() >= 4 * cols {
            Packed::quantize(x, cols)
        } else {
            None
        };
        QuantizedInput(match packed {
            Some(packed) => Activations::Tiles(packed),
            None => Activations::Rows(quantize_rows(x, cols)),
        })
    }

    /// Number of rows and of columns.
    fn shape(&self) -> (usize, usize) {
        match &self.0 {
            Activations::Rows(xq) => (xq.rows(), xq.cols()),
            Activations::Tiles(packed) => (packed.rows(), packed.cols()),
        }
    }
}

/// Rows per parallel task of [`quantize_rows`].
const QUANTIZE_ROWS: usize = 16;

/// [`Q8Rows::quantize`], a prompt's rows [`QUANTIZE_ROWS`] per parallel task.
fn quantize_rows(x: &[f32], cols: usize) -> Q8Rows {
    let rows = x.len() / cols.max(1);
    if rows <= QUANTIZE_ROWS {
        return Q8Rows::quantize(x, cols);
    }
    Q8Rows::concat(map_index(rows.div_ceil(QUANTIZE_ROWS), |part| {
        let first = part * QUANTIZE_ROWS;
        let count = QUANTIZE_ROWS.min(rows - first);
        Q8Rows::quantize(&x[first * cols..][..count * cols], cols)
    }))
}

/// [`linear`] of activations already quantized; writes every element of `out`.
pub fn multiply(w: &QuantMatrix, input: &QuantizedInput, out: &mut [f32]) {
    let columns = output_columns(w, input, out);
    for_each_index(w.rows().div_ceil(BLOCK_ROWS), |b| {
        let first = b * BLOCK_ROWS;
        task_products(w, input, first, &mut |row, j, dots, scales| {
            for (e, dots) in dots.iter().enumerate() {
                store(&columns, row + e, first + j, dots, scales);
            }
        });
    });
}

/// SwiGLU's `silu(x · W1ᵀ) ⊙ (x · W2ᵀ)` of activations already quantized;
/// writes every element of `out`.
///
/// For a prompt, each task computes its block of `gate`'s products into a
/// buffer and applies SiLU to all of it in one pass (one long vector loop
/// hides `exp`'s latency; 16 values per call did not), then `up`'s
/// products, gated as they are stored, so the two `[rows, N]` products are
/// never both written out. Decoding (fewer than [`PANEL_TOKENS`] rows, a
/// few KB of products) computes the two products whole, one after the
/// other, then gates: each streams through one weight matrix, and the
/// tasks that alternated between the two matrices' rows read them ~25%
/// slower (AMD EPYC Zen 4, 2 threads: 171-181 against 130-135 µs).
pub fn multiply_gated(
    gate: &QuantMatrix,
    up: &QuantMatrix,
    input: &QuantizedInput,
    out: &mut [f32],
) {
    assert_eq!(
        (gate.rows(), gate.cols()),
        (up.rows(), up.cols()),
        "gate and up weights differ in shape"
    );
    let (rows, silu) = (input.shape().0, vector::kernels().silu);
    if rows < PANEL_TOKENS {
        let mut gates = vec![0.0f32; out.len()];
        multiply(gate, input, &mut gates);
        multiply(up, input, out);
        silu(&mut gates);
        out.iter_mut().zip(&gates).for_each(|(y, g)| *y *= g);
        return;
    }
    let columns = output_columns(gate, input, out);
    for_each_index(gate.rows().div_ceil(BLOCK_ROWS), |b| {
        let first = b * BLOCK_ROWS;
        let mut gates = vec![0.0f32; rows * BLOCK_ROWS];
        task_products(gate, input, first, &mut |row, j, dots, scales| {
            for (e, dots) in dots.iter().enumerate() {
                let start = (row + e) * BLOCK_ROWS + j;
                scale_into(&mut gates[start..][..scales.len()], dots, scales);
            }
        });
        silu(&mut gates);
        task_products(up, input, first, &mut |row, j, dots, scales| {
            for (e, dots) in dots.iter().enumerate() {
                let out = store(&columns, row + e, first + j, dots, scales);
                let gates = &gates[(row + e) * BLOCK_ROWS + j..][..out.len()];
                out.iter_mut().zip(gates).for_each(|(y, g)| *y *= g);
            }
        });
    });
}

/// `out` as the `[rows, N]` product of `input` and `w`, shapes checked.
fn output_columns<'a>(w: &QuantMatrix, input: &QuantizedInput, out: &'a mut [f32]) -> Columns<'a> {
    let (n, (rows, cols)) = (w.rows(), input.shape());
    assert_eq!(cols, w.cols(), "input and weight widths differ");
    assert_eq!(out.len(), rows * n, "output must be [rows, N]");
    Columns::new(out, n)
}

/// Receives products as a task computes them, a group of input rows per call
/// (one dynamic call per group, not per row): `emit(row, j, dots, scales)`
/// for input rows `row..row + dots.len()` and the task's weight rows
/// `j..j + scales.len()`, where `dots[e][i] · scales[i]` is the output of
/// input row `row + e` for weight row `j + i` (the rest of `dots[e]` is to
/// be dropped).
type Emit<'a> = &'a mut dyn FnMut(usize, usize, &[[f32; PANEL_ROWS]], &[f32]);

/// The products of every input row with weight rows `first..first +
/// BLOCK_ROWS` (or to the last), handed to `emit` as computed: for prefill
/// (4 rows or more) on AMX tiles of 16 × 16 where the CPU has them, else on
/// the SIMD kernels ([`tile_rows`]).
fn task_products(w: &QuantMatrix, input: &QuantizedInput, first: usize, emit: Emit) {
    match &input.0 {
        Activations::Tiles(packed) => {
            let count = BLOCK_ROWS.min(w.rows() - first);
            let scales = &w.scales()[first..][..count];
            packed.multiply(w.row_range(first, count), |j, t, sums, valid| {
                let scales = &scales[j..][..(count - j).min(TILE)];
                let dots: [[f32; TILE]; TILE] =
                    std::array::from_fn(|e| std::array::from_fn(|d| sums[d][e]));
                emit(t, j, &dots[..valid], scales);
            });
        }
        Activations::Rows(xq) => tile_rows(w, xq, first, emit),
    }
}

/// [`task_products`] on the SIMD kernels: tiles of 8 weight rows × 1 input
/// row for fewer than 4 input rows, else panels of [`PANEL_ROWS`] packed
/// weight rows × all input rows. Tiles that run past the last weight row
/// repeat it.
fn tile_rows(w: &QuantMatrix, xq: &Q8Rows, first: usize, emit: Emit) {
    let kernels = kernels();
    let rows = xq.rows();
    let count = BLOCK_ROWS.min(w.rows() - first);
    let weight_row = |j: usize| w.row(first + j.min(count - 1));
    // The scales of weight rows j..j + width of this task (fewer at its end).
    let scales = |j: usize, width: usize| &w.scales()[first + j..first + count.min(j + width)];
    if rows < PANEL_TOKENS {
        let task = w.row_range(first, count);
        let prefetching = w.cols() <= PREFETCH_MAX_COLS;
        if prefetching {
            prefetch(&task[..task.len().min(PREFETCH_DISTANCE)]);
        }
        for j in (0..count).step_by(8) {
            let ws = std::array::from_fn(|d| weight_row(j + d));
            let ahead = match prefetching {
                true => ahead_of(task, j * w.cols(), 8 * w.cols()),
                false => &[],
            };
            for t in 0..rows {
                let mut dots = [[0.0; PANEL_ROWS]];
                let ahead = if t == 0 { ahead } else { &[] };
                dots[0][..8].copy_from_slice(&(kernels.w8x1)(&ws, xq.row(t), ahead));
                emit(t, j, &dots, scales(j, 8));
            }
        }
    } else {
        let mut packed = Vec::new();
        for j in (0..count).step_by(PANEL_ROWS) {
            let ws = std::array::from_fn(|d| weight_row(j + d));
            (kernels.pack)(&ws, &mut packed);
            // The next panel's rows stream from memory while this one computes.
            if j + PANEL_ROWS < count {
                prefetch(w.row_range(
                    first + j + PANEL_ROWS,
                    PANEL_ROWS.min(count - j - PANEL_ROWS),
                ));
            }
            let scales = scales(j, PANEL_ROWS);
            (kernels.panel)(&ws, &packed, xq, &mut |t, sums| emit(t, j, sums, scales));
        }
    }
}

/// `len` bytes of a task's weights from [`PREFETCH_DISTANCE`] past `start`
/// (fewer, or none, near the task's end).
fn ahead_of(task: &[i8], start: usize, len: usize) -> &[i8] {
    let ahead = task.get(start + PREFETCH_DISTANCE..).unwrap_or_default();
    &ahead[..ahead.len().min(len)]
}

/// Writes `dots[i] · scales[i]` (the dot products of weight rows times their
/// scales) into output row `row` from column `col`, one per scale, and
/// returns them; the extra dot products of a tile that ran past the last
/// weight row are dropped. Prefetches the line [`STORE_AHEAD`] rows below
/// for writing. The caller's task must be the only one writing these columns.
#[inline]
#[allow(clippy::mut_from_ref)]
fn store<'a>(
    columns: &'a Columns,
    row: usize,
    col: usize,
    dots: &[f32],
    scales: &[f32],
) -> &'a mut [f32] {
    // SAFETY: the caller's task is the only one writing these columns.
    let out = unsafe { columns.row_part(row, col, scales.len()) };
    scale_into(out, dots, scales);
    columns.prefetch_for_write(row + STORE_AHEAD, col);
    out
}

/// `out[i] = dots[i] · scales[i]`: weight rows' dot products times their scales.
#[inline]
fn scale_into(out: &mut [f32], dots: &[f32], scales: &[f32]) {
    for ((o, &dot), &scale) in out.iter_mut().zip(dots).zip(scales) {
        *o = dot * scale;
    }
}

/// A row-major matrix that parallel tasks fill by disjoint sets of columns.
struct Columns<'a> {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    _matrix: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: tasks write disjoint elements (the contract of `row_part`).
unsafe impl Sync for Columns<'_> {}

impl<'a> Columns<'a> {
    fn new(matrix: &'a mut [f32], cols: usize) -> Columns<'a> {
        Columns {
            ptr: matrix.as_mut_ptr(),
            rows: matrix.len() / cols,
            cols,
            _matrix: std::marker::PhantomData,
        }
    }

    /// Hints that the cache line holding element `col` of row `row` will be
    /// written soon (nothing for rows past the last).
    fn prefetch_for_write(&self, row: usize, col: usize) {
        if row >= self.rows || col >= self.cols {
            return;
        }
        let line = self.ptr.wrapping_add(row * self.cols + col);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch hint has no architectural effect.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
            _mm_prefetch::<_MM_HINT_ET0>(line.cast())
        };
        #[cfg(target_arch = "aarch64")]
        // SAFETY: as above; `prfm` only hints.
        unsafe {
            std::arch::asm!("prfm pstl1keep, [{0}]", in(reg) line, options(nostack, preserves_flags, readonly))
        };
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let _ = line;
    }

    /// Elements `col..col + len` of row `row`.
    ///
    /// # Safety
    /// No other thread reads or writes these columns while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row_part(&self, row: usize, col: usize, len: usize) -> &mut [f32] {
        assert!(row < self.rows && col + len <= self.cols);
        // SAFETY: in bounds (checked); exclusive per the contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(row * self.cols + col), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::q8::BLOCK;

    /// [`linear`] into a new vector.
    fn product(w: &QuantMatrix, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = vec![f32::NAN; rows * w.rows()];
        linear(w, x, rows, &mut out);
        out
    }

    /// `x · Wᵀ` in f64 from the dequantized weight and the unquantized `x`.
    fn reference(w: &QuantMatrix, x: &[f32], rows: usize) -> Vec<f64> {
        let (n, k) = (w.rows(), w.cols());
        let mut row = vec![0.0; k];
        let mut out = vec![0.0; rows * n];
        for j in 0..n {
            w.dequantize_row(j, &mut row);
            for t in 0..rows {
                out[t * n + j] = (0..k).map(|i| row[i] as f64 * x[t * k + i] as f64).sum();
            }
        }
        out
    }

    /// Σ over outputs of `Σ_i w_i² · step_i² / 12`, where `step_i` is the
    /// int8 step of the activation block holding column `i`.
    fn expected_squared_error(w: &QuantMatrix, x: &[f32], rows: usize) -> f64 {
        let k = w.cols();
        let mut row = vec![0.0; k];
        let mut total = 0.0;
        for j in 0..w.rows() {
            w.dequantize_row(j, &mut row);
            for t in 0..rows {
                for (block, ws) in x[t * k..][..k].chunks(BLOCK).zip(row.chunks(BLOCK)) {
                    let step = block.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64 / 127.0;
                    total +=
                        ws.iter().map(|&w| (w as f64).powi(2)).sum::<f64>() * step * step / 12.0;
                }
            }
        }
        total
    }

    fn values(len: usize, seed: f32) -> Vec<f32> {
        (0..len).map(|i| (i as f32 * seed).sin()).collect()
    }

    /// Pseudo-random values in [-1, 1) (a multiplicative hash of the index).
    fn noise(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 8) as f32 / (1 << 23) as f32
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn linear_is_close_to_the_f64_product_on_every_tile_path() {
        // 131 rows: full and partial row blocks and tiles; 70 columns: a
        // partial activation block.
        let w = QuantMatrix::quantize(&noise(131 * 70, 1), 70);
        for rows in [1, 3, 4, 6, 9] {
            let x = noise(rows * 70, 7);
            let got = product(&w, &x, rows);
            let want = reference(&w, &x, rows);
            assert_eq!(got.len(), want.len());
            // int8 activations: each term is off by at most half a step of
            // its block (|x| ≤ 1 → step 1/127), so |error| ≤ Σ|w|/254.
            for (g, r) in got.iter().zip(&want) {
                assert!(
                    (*g as f64 - r).abs() < 70.0 / 254.0,
                    "rows {rows}: {g} vs {r}"
                );
            }
            // On random inputs the rounding errors behave like independent uniform
            // noise of variance step²/12, so the summed squared error is
            // about Σ_outputs Σ_i w_i²·step_i²/12; allow twice that.
            let squared_error: f64 = got
                .iter()
                .zip(&want)
                .map(|(g, r)| (*g as f64 - r).powi(2))
                .sum();
            let expected = expected_squared_error(&w, &x, rows);
            assert!(
                squared_error < 2.0 * expected,
                "rows {rows}: {squared_error} vs {expected}"
            );
        }
    }

    #[test]
    fn tiles_prefetch_only_their_task_at_the_distance() {
        let task = vec![0i8; PREFETCH_DISTANCE + 3000];
        let offset = |ahead: &[i8]| ahead.as_ptr() as usize - task.as_ptr() as usize;
        let ahead = ahead_of(&task, 0, 1000);
        assert_eq!((offset(ahead), ahead.len()), (PREFETCH_DISTANCE, 1000));
        // Near the task's end: only what is left of it, then nothing.
        let ahead = ahead_of(&task, 2500, 1000);
        assert_eq!(
            (offset(ahead), ahead.len()),
            (PREFETCH_DISTANCE + 2500, 500)
        );
        assert!(ahead_of(&task, 3000, 1000).is_empty());
        assert!(ahead_of(&task, 9000, 1000).is_empty());
    }

    #[test]
    fn decode_and_prefill_tiles_give_identical_rows() {
        let w = QuantMatrix::quantize(&values(67 * 96, 0.29), 96);
        let x = values(5 * 96, 0.13);
        let all = product(&w, &x, 5);
        for t in 0..5 {
            let one = product(&w, &x[t * 96..][..96], 1);
            assert_eq!(one, all[t * 67..][..67]);
        }
    }

    #[test]
    fn gated_linear_is_silu_of_one_product_times_the_other() {
        let (n, k) = (40, 64);
        let op = Int8GatedLinear {
            gate: Arc::new(QuantMatrix::quantize(&values(n * k, 0.31), k)),
            up: Arc::new(QuantMatrix::quantize(&values(n * k, 0.17), k)),
        };
        for rows in [1, 3, 5, 19] {
            let x = values(rows * k, 0.07);
            let input = Tensor::from_shape(&[rows, k], &x).unwrap().into_tvalue();
            let out = op.eval(&EvalContext::out_of_plan(), tvec!(input)).unwrap();
            let out = out[0].try_as_plain_ram().unwrap();
            let (gate, up) = (product(&op.gate, &x, rows), product(&op.up, &x, rows));
            for ((&got, &g), &u) in out.as_slice::<f32>().unwrap().iter().zip(&gate).zip(&up) {
                let want = g / (1.0 + (-g).exp()) * u;
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{got} vs {want}"
                );
            }
        }
        let wrong = Tensor::zero::<f32>(&[2, k + 1]).unwrap().into_tvalue();
        assert!(op.eval(&EvalContext::out_of_plan(), tvec!(wrong)).is_err());
    }

    #[test]
    fn parallel_quantization_equals_one_thread() {
        // 37 rows: two whole tasks and a partial one.
        let (rows, cols) = (37, 70);
        let x = values(rows * cols, 0.3);
        let pool = crate::parallel::ComputePool::new(2).unwrap();
        let parallel = pool.run(|| quantize_rows(&x, cols));
        let serial = Q8Rows::quantize(&x, cols);
        assert_eq!(parallel.rows(), rows);
        for t in 0..rows {
            let (p, s) = (parallel.row(t), serial.row(t));
            assert_eq!(
                (p.values, p.scales, p.offsets),
                (s.values, s.scales, s.offsets)
            );
        }
    }

    #[test]
    fn linear_is_the_same_on_any_thread_count() {
        let w = QuantMatrix::quantize(&values(300 * 64, 0.21), 64);
        let x = values(16 * 64, 0.05);
        let single = product(&w, &x, 16);
        let pool = crate::parallel::ComputePool::new(3).unwrap();
        let multi = pool.run(|| product(&w, &x, 16));
        assert_eq!(single, multi);
    }
}
