//! tract ops that compute straight from int8 weights ([`QuantMatrix`]), so a
//! model keeps its weights in int8 (a quarter of f32) and decoding streams a
//! quarter of the bytes per token.
//!
//! tract-linalg 0.23 has no int8-weight × f32-activation kernels on x86_64
//! (its block-quant kernels there are Q4_0 only), so these ops carry their own:
//! - [`Int8Linear`], `x [T, K] · Wᵀ → [T, N]`: `x` is quantized to int8 in
//!   blocks of 32 and multiplied with the weight rows in integer arithmetic
//!   (VNNI or AVX2 on x86_64, see [`crate::q8`]), reading each weight once;
//! - [`Int8Embedding`], the token-embedding lookup `ids [T] → [T, K]`.
//!
//! Work runs on the plan's tract executor (its rayon pool); dot products are
//! split into fixed blocks of weight rows, so results do not depend on the
//! thread count.

use crate::parallel::for_each_chunk;
use crate::q8::{kernels, Q8Rows};
use crate::quant::QuantMatrix;
use tract_core::internal::*;

/// Weight rows per parallel task.
const BLOCK_ROWS: usize = 64;

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

/// `x [rows, K] · Wᵀ` as a row-major `[rows, N]` vector: `x` quantized to
/// int8 blocks ([`Q8Rows`]), then integer dot products with each weight row,
/// in tiles of 8 weight rows × 1 input row (decode) or 2 × 4 (prefill).
pub fn linear(w: &QuantMatrix, x: &[f32], rows: usize) -> Vec<f32> {
    let (n, k) = (w.rows(), w.cols());
    let xq = Q8Rows::quantize(x, k);
    let kernels = kernels();
    // Computed transposed, `[N, rows]`, so each block of weight rows owns a
    // contiguous slice of the output. Groups that run past the last row repeat
    // it and drop the extra results.
    let mut out_t = vec![0.0f32; n * rows];
    for_each_chunk(&mut out_t, BLOCK_ROWS * rows, |b, out| {
        let first = b * BLOCK_ROWS;
        let count = out.len() / rows;
        let weight_row = |j: usize| w.row(first + j.min(count - 1));
        let x_row = |t: usize| xq.row(t.min(rows - 1));
        let mut store = |j: usize, t: usize, v: f32| {
            if j < count && t < rows {
                out[j * rows + t] = v * w.scales()[first + j];
            }
        };
        if rows < 4 {
            for j in (0..count).step_by(8) {
                let ws = std::array::from_fn(|d| weight_row(j + d));
                for t in 0..rows {
                    let dots = (kernels.w8x1)(&ws, &[x_row(t)]);
                    for (d, dot) in dots.iter().enumerate() {
                        store(j + d, t, dot[0]);
                    }
                }
            }
        } else {
            for j in (0..count).step_by(2) {
                let ws = [weight_row(j), weight_row(j + 1)];
                for t in (0..rows).step_by(4) {
                    let xs = [0, 1, 2, 3].map(|d| x_row(t + d));
                    let dots = (kernels.w2x4)(&ws, &xs);
                    for (d, row) in dots.iter().enumerate() {
                        for (e, &dot) in row.iter().enumerate() {
                            store(j + d, t + e, dot);
                        }
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::q8::BLOCK;

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
            let got = linear(&w, &x, rows);
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
    fn decode_and_prefill_tiles_give_identical_rows() {
        let w = QuantMatrix::quantize(&values(67 * 96, 0.29), 96);
        let x = values(5 * 96, 0.13);
        let all = linear(&w, &x, 5);
        for t in 0..5 {
            let one = linear(&w, &x[t * 96..][..96], 1);
            assert_eq!(one, all[t * 67..][..67]);
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
