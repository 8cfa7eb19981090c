//! tract ops that compute straight from int8 weights ([`QuantMatrix`]), so a
//! model keeps its weights in int8 (a quarter of f32) and decoding streams a
//! quarter of the bytes per token.
//!
//! tract-linalg 0.23 has no int8-weight × f32-activation kernels on x86_64
//! (its block-quant kernels there are Q4_0 only), so these ops carry their own:
//! - [`Int8Linear`], `x [T, K] · Wᵀ → [T, N]`: for a few rows (decode), one
//!   dot product per weight row, int8 widened to f32 in registers (see
//!   [`crate::vector`]);
//!   for longer inputs (prefill), blocks of 512 weight rows are dequantized
//!   into a scratch f32 matrix and multiplied with the `gemm` crate's kernels.
//! - [`Int8Embedding`], the token-embedding lookup `ids [T] → [T, K]`.
//!
//! Work runs on the plan's tract executor (its rayon pool); dot products are
//! split into fixed blocks of weight rows, so results do not depend on the
//! thread count.

use crate::parallel::{for_each_chunk, with_pool};
use crate::quant::QuantMatrix;
use crate::vector::kernels;
use tract_core::internal::*;

/// Weight rows per parallel task.
const BLOCK_ROWS: usize = 64;
/// Weight rows dequantized at a time for `gemm` (bounds the scratch memory).
const GEMM_BLOCK_ROWS: usize = 512;
/// Inputs with fewer rows than this use dot products instead of `gemm`.
const GEMM_MIN_ROWS: usize = 32;

/// `x · Wᵀ` for an int8 weight `W [N, K]`; input `[T, K]` f32, output `[T, N]`.
#[derive(Clone, Debug)]
pub struct Int8Linear {
    /// The weight, shared with other ops and graphs.
    pub weight: Arc<QuantMatrix>,
}

/// Token-embedding lookup in an int8 table `[vocab, K]`; input ids `[T]` (i64),
/// output `[T, K]` f32. Out-of-range ids are an error.
#[derive(Clone, Debug)]
pub struct Int8Embedding {
    /// The table, shared with the tied output head.
    pub table: Arc<QuantMatrix>,
}

macro_rules! weight_op {
    ($op:ty, $field:ident, $name:literal) => {
        impl PartialEq for $op {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.$field, &other.$field)
            }
        }
        impl Eq for $op {}

        impl Op for $op {
            fn name(&self) -> StaticName {
                $name.into()
            }
            fn info(&self) -> TractResult<Vec<String>> {
                Ok(vec![format!("{:?}", self.$field)])
            }
            op_as_typed_op!();
        }
    };
}
weight_op!(Int8Linear, weight, "Int8Linear");
weight_op!(Int8Embedding, table, "Int8Embedding");

impl EvalOp for Int8Linear {
    not_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let x = x.try_as_plain_ram()?;
        let k = self.weight.cols();
        ensure!(
            x.rank() == 2 && x.shape()[1] == k,
            "Int8Linear input must be [T, {k}]"
        );
        let rows = x.shape()[0];
        let out = linear(&self.weight, x.as_slice::<f32>()?, rows);
        Ok(tvec!(Tensor::from_shape(
            &[rows, self.weight.rows()],
            &out
        )?
        .into_tvalue()))
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

impl EvalOp for Int8Embedding {
    not_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let ids = args_1!(inputs);
        let ids = ids.cast_to::<i64>()?;
        let ids = ids.try_as_plain_ram()?;
        let ids = ids.as_slice::<i64>()?;
        let k = self.table.cols();
        let mut out = vec![0.0f32; ids.len() * k];
        for (&id, row) in ids.iter().zip(out.chunks_exact_mut(k)) {
            let id = usize::try_from(id)
                .ok()
                .filter(|&id| id < self.table.rows())
                .with_context(|| format!("token id {id} is out of range"))?;
            self.table.dequantize_row(id, row);
        }
        Ok(tvec!(
            Tensor::from_shape(&[ids.len(), k], &out)?.into_tvalue()
        ))
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

/// `x [rows, K] · Wᵀ` as a row-major `[rows, N]` vector.
pub fn linear(w: &QuantMatrix, x: &[f32], rows: usize) -> Vec<f32> {
    if rows < GEMM_MIN_ROWS {
        linear_by_dots(w, x, rows)
    } else {
        linear_by_gemm(w, x, rows)
    }
}

/// [`linear`] by one dot product per weight row and input row: reads each
/// weight once, straight from int8.
fn linear_by_dots(w: &QuantMatrix, x: &[f32], rows: usize) -> Vec<f32> {
    let (n, k) = (w.rows(), w.cols());
    let kernels = kernels();
    let x_rows: Vec<&[f32]> = x.chunks_exact(k).collect();
    // Computed transposed, `[N, rows]`, so each block of weight rows owns a
    // contiguous slice of the output.
    let mut out_t = vec![0.0f32; n * rows];
    for_each_chunk(&mut out_t, BLOCK_ROWS * rows, |b, out| {
        for (j, column) in out.chunks_exact_mut(rows).enumerate() {
            let r = b * BLOCK_ROWS + j;
            let (q, scale) = (w.row(r), w.scales()[r]);
            let (fours, rest) = x_rows.as_chunks::<4>();
            let (out4, out_rest) = column.split_at_mut(fours.len() * 4);
            for (o, xs) in out4.chunks_exact_mut(4).zip(fours) {
                let dots = (kernels.dot_i8_x4)(q, *xs);
                for (o, d) in o.iter_mut().zip(dots) {
                    *o = d * scale;
                }
            }
            for (o, x) in out_rest.iter_mut().zip(rest) {
                *o = (kernels.dot_i8)(q, x) * scale;
            }
        }
    });
    if rows == 1 {
        return out_t;
    }
    let mut out = vec![0.0f32; n * rows];
    for (j, column) in out_t.chunks_exact(rows).enumerate() {
        for (t, &v) in column.iter().enumerate() {
            out[t * n + j] = v;
        }
    }
    out
}

/// [`linear`] through blocks of the weight dequantized to a scratch f32
/// matrix and the `gemm` crate's f32 kernels, for inputs long enough to
/// amortize the dequantization.
fn linear_by_gemm(w: &QuantMatrix, x: &[f32], rows: usize) -> Vec<f32> {
    let (n, k) = (w.rows(), w.cols());
    let mut out = vec![0.0f32; rows * n];
    let mut dense = vec![0.0f32; GEMM_BLOCK_ROWS.min(n) * k];
    for first in (0..n).step_by(GEMM_BLOCK_ROWS) {
        let block_rows = GEMM_BLOCK_ROWS.min(n - first);
        let dense = &mut dense[..block_rows * k];
        for_each_chunk(dense, BLOCK_ROWS * k, |b, chunk| {
            for (j, row) in chunk.chunks_exact_mut(k).enumerate() {
                w.dequantize_row(first + b * BLOCK_ROWS + j, row);
            }
        });
        with_pool(|threads| {
            // out[:, first..first + block_rows] = x [rows, k] · denseᵀ [k, block_rows],
            // strides in elements.
            // SAFETY: the pointers cover the rows·n, rows·k and block_rows·k
            // elements the strides address (`first + block_rows <= n`).
            unsafe {
                gemm::gemm(
                    rows,
                    block_rows,
                    k,
                    out.as_mut_ptr().add(first),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    dense.as_ptr(),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(threads),
                )
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x · Wᵀ` in f64 from the dequantized weight.
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

    fn values(len: usize, seed: f32) -> Vec<f32> {
        (0..len).map(|i| (i as f32 * seed).sin()).collect()
    }

    #[test]
    fn linear_matches_f64_for_dot_and_gemm_paths() {
        // 600 rows: full and partial blocks; 70 columns: a lane tail.
        let w = QuantMatrix::quantize(&values(600 * 70, 0.37), 70);
        for rows in [1, 3, 6, GEMM_MIN_ROWS, 40] {
            let x = values(rows * 70, 0.11);
            let got = linear(&w, &x, rows);
            let want = reference(&w, &x, rows);
            assert_eq!(got.len(), want.len());
            for (g, r) in got.iter().zip(&want) {
                assert!((*g as f64 - r).abs() < 1e-4, "rows {rows}: {g} vs {r}");
            }
        }
    }

    #[test]
    fn linear_is_the_same_on_any_thread_count() {
        let w = QuantMatrix::quantize(&values(300 * 64, 0.21), 64);
        let x = values(16 * 64, 0.05);
        let single = linear(&w, &x, 16);
        let multi = tract_linalg::multithread::multithread_tract_scope(
            tract_linalg::multithread::Executor::multithread(3),
            || linear(&w, &x, 16),
        );
        assert_eq!(single, multi);
    }
}
