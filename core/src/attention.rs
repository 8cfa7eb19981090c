//! `CachedAttention`: CHAYA's causal self-attention as a tract op that owns the KV cache.
//!
//! Inputs: `qkv` `[T, 3·d_model]` (the fused projection, q|k|v) and `pos` (i64
//! scalar, the absolute position of the first of the `T` tokens). The op rotates
//! q and k with [`ChayaRope`], writes the rotated keys and the values of positions
//! `pos..pos+T` into its cache, and attends every query over positions
//! `0..=its own`. Output: `[T, d_model]`, heads concatenated in order.
//!
//! The cache is a preallocated buffer indexed by absolute position, so keys stay
//! tied to their true positions (the spec forbids shifting) and a session rewinds
//! by simply passing a smaller `pos`: nothing is copied or re-rotated. It holds
//! f32 or f16 ([`KvPrecision`]); attention itself is computed in f32.

use crate::parallel::for_each_chunk;
use crate::rope::ChayaRope;
use crate::vector::{kernels, KEYS, QUERIES};
use half::{f16, slice::HalfFloatSliceExt};
use tract_core::internal::*;

/// How the KV cache stores rotated keys and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvPrecision {
    /// As computed: attention matches an f32 reference within float rounding.
    F32,
    /// Half the memory (10 MB instead of 21 MB for CHAYA's full context) and
    /// half the bytes to read per decoded token, at f16's relative rounding of
    /// 2⁻¹¹ on each cached value, as llama.cpp's default cache.
    F16,
}

/// An element type of the KV cache.
trait CacheValue: Copy + Default + std::fmt::Debug + Send + Sync + 'static {
    /// `dst[i] = src[i]`, rounded to this type.
    fn store(src: &[f32], dst: &mut [Self]);
    /// `src` as f32: itself, or widened into `scratch`.
    fn as_f32<'a>(src: &'a [Self], scratch: &'a mut Vec<f32>) -> &'a [f32];
    /// `Σ q[i]·row[i]`.
    fn dot(q: &[f32], row: &[Self]) -> f32;
    /// `out += w·row`.
    fn axpy(w: f32, row: &[Self], out: &mut [f32]);
}

impl CacheValue for f32 {
    fn store(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn as_f32<'a>(src: &'a [f32], _scratch: &'a mut Vec<f32>) -> &'a [f32] {
        src
    }
    fn dot(q: &[f32], row: &[f32]) -> f32 {
        (kernels().dot)(q, row)
    }
    fn axpy(w: f32, row: &[f32], out: &mut [f32]) {
        (kernels().axpy)(w, row, out)
    }
}

impl CacheValue for f16 {
    fn store(src: &[f32], dst: &mut [f16]) {
        dst.convert_from_f32_slice(src);
    }
    fn as_f32<'a>(src: &'a [f16], scratch: &'a mut Vec<f32>) -> &'a [f32] {
        scratch.resize(src.len(), 0.0);
        (kernels().widen)(src, scratch);
        scratch
    }
    fn dot(q: &[f32], row: &[f16]) -> f32 {
        (kernels().dot_f16)(q, row)
    }
    fn axpy(w: f32, row: &[f16], out: &mut [f32]) {
        (kernels().axpy_f16)(w, row, out)
    }
}

/// Causal multi-head attention with CHAYA's RoPE over an in-op KV cache.
#[derive(Clone, Debug)]
pub struct CachedAttention {
    /// Number of heads.
    pub n_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RoPE tables; their length is the cache capacity (context length).
    pub rope: Arc<ChayaRope>,
    /// How the cache stores keys and values.
    pub precision: KvPrecision,
}

impl PartialEq for CachedAttention {
    fn eq(&self, other: &Self) -> bool {
        self.n_heads == other.n_heads
            && self.head_dim == other.head_dim
            && Arc::ptr_eq(&self.rope, &other.rope)
            && self.precision == other.precision
    }
}
impl Eq for CachedAttention {}

impl Op for CachedAttention {
    fn name(&self) -> StaticName {
        "CachedAttention".into()
    }
    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "heads: {}, head_dim: {}, capacity: {}, cache: {:?}",
            self.n_heads,
            self.head_dim,
            self.rope.max_positions(),
            self.precision
        )])
    }
    op_as_typed_op!();
}

impl EvalOp for CachedAttention {
    not_out_of_plan!();

    fn state(&self, _ctx: &EvalContext) -> TractResult<Option<Box<dyn OpState>>> {
        Ok(Some(match self.precision {
            KvPrecision::F32 => Box::new(KvCache::<f32>::default()),
            KvPrecision::F16 => Box::new(KvCache::<f16>::default()),
        }))
    }
}

impl TypedOp for CachedAttention {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2, "CachedAttention takes qkv and pos");
        let qkv = inputs[0];
        let d_model = self.n_heads * self.head_dim;
        ensure!(qkv.rank() == 2 && qkv.shape[1] == (3 * d_model).to_dim());
        Ok(tvec!(f32::fact(tvec![
            qkv.shape[0].clone(),
            d_model.to_dim()
        ])))
    }
    as_op!();
}

/// Rotated keys and values of one layer, per head `[position][head_dim]`, so
/// a head's attention reads one contiguous stream. Each buffer reserves the
/// full capacity at first use but only grows (and touches memory) as
/// positions are written, so a new session costs nothing up front.
#[derive(Clone, Debug, Default)]
struct KvCache<T> {
    keys: Vec<Vec<T>>,
    values: Vec<Vec<T>>,
}

impl<T: CacheValue> OpState for KvCache<T> {
    fn eval(
        &mut self,
        _ctx: &EvalContext,
        op: &dyn Op,
        inputs: TVec<TValue>,
    ) -> TractResult<TVec<TValue>> {
        let op = op
            .downcast_ref::<CachedAttention>()
            .context("CachedAttention state")?;
        let (qkv, pos) = args_2!(inputs);
        let pos = usize::try_from(pos.cast_to_scalar::<i64>()?).context("negative position")?;
        let qkv = qkv.try_as_plain_ram()?;
        let qkv = qkv.as_slice::<f32>()?;
        let out = self.attend(op, qkv, pos)?;
        Ok(tvec!(out.into_tvalue()))
    }

    fn reset_lanes(&mut self, _lanes: &[LaneId]) -> TractResult<()> {
        Ok(())
    }
}

impl<T: CacheValue> KvCache<T> {
    fn attend(&mut self, op: &CachedAttention, qkv: &[f32], pos: usize) -> TractResult<Tensor> {
        let (heads, hd) = (op.n_heads, op.head_dim);
        let capacity = op.rope.max_positions();
        let d = heads * hd;
        let t_len = qkv.len() / (3 * d);
        ensure!(
            pos + t_len <= capacity,
            "positions {pos}..{} exceed the context length {capacity}",
            pos + t_len
        );
        let used = (pos + t_len) * hd;
        for cache in [&mut self.keys, &mut self.values] {
            cache.resize_with(heads, || Vec::with_capacity(capacity * hd));
            for head in cache.iter_mut().filter(|head| head.len() < used) {
                head.resize(used, T::default());
            }
        }
        // Rotate q (into `queries`) and k (into the cache); store v in the cache.
        let mut queries = vec![0.0f32; t_len * d];
        let mut key = vec![0.0f32; hd];
        for t in 0..t_len {
            let row = &qkv[t * 3 * d..][..3 * d];
            for h in 0..heads {
                let slot = (pos + t) * hd;
                op.rope.apply(
                    &row[h * hd..][..hd],
                    pos + t,
                    &mut queries[t * d + h * hd..][..hd],
                );
                op.rope.apply(&row[d + h * hd..][..hd], pos + t, &mut key);
                T::store(&key, &mut self.keys[h][slot..][..hd]);
                T::store(
                    &row[2 * d + h * hd..][..hd],
                    &mut self.values[h][slot..][..hd],
                );
            }
        }
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = Tensor::zero::<f32>(&[t_len, d])?;
        let mut out_view = out.try_as_plain_ram_mut()?;
        let out_data = out_view.as_slice_mut::<f32>()?;
        let (keys, values) = (&self.keys, &self.values);
        let head = |t: usize, h: usize, out: &mut [f32]| {
            let visible = (pos + t + 1) * hd;
            let q = &queries[t * d + h * hd..][..hd];
            attend_head(q, &keys[h][..visible], &values[h][..visible], scale, out);
        };
        // One task per head when decoding a single token, one per token for
        // a few, one per block of queries (all heads) for a prompt.
        if t_len == 1 {
            for_each_chunk(out_data, hd, |h, out| head(0, h, out));
        } else if t_len < QUERIES {
            for_each_chunk(out_data, d, |t, row| {
                for (h, out) in row.chunks_exact_mut(hd).enumerate() {
                    head(t, h, out)
                }
            });
        } else {
            self.attend_blocks(&queries, pos, hd, scale, out_data);
        }
        Ok(out)
    }

    /// Attention of a prompt's rotated queries (`[T, heads · hd]`, positions
    /// `pos..`, already in the cache) in blocks of [`QUERIES`] tokens, one
    /// task per block for all heads: scores against the transposed keys, then
    /// weighted sums of the values, [`KEYS`] at a time in registers.
    fn attend_blocks(&self, queries: &[f32], pos: usize, hd: usize, scale: f32, out: &mut [f32]) {
        let heads = self.keys.len();
        let d = heads * hd;
        let positions = pos + queries.len() / d;
        let keys_t = transposed_keys(&self.keys, positions, hd);
        let stride = keys_t.len() / (heads * hd);
        let mut scratch = vec![Vec::new(); heads];
        let values: Vec<&[f32]> = self
            .values
            .iter()
            .zip(&mut scratch)
            .map(|(head, scratch)| T::as_f32(&head[..positions * hd], scratch))
            .collect();
        for_each_chunk(out, QUERIES * d, |block, rows| {
            let count = rows.len() / d;
            let first = pos + block * QUERIES;
            // Positions the block's last query sees, in whole register blocks.
            let visible = first + count;
            let width = visible.next_multiple_of(KEYS);
            let mut block_queries = vec![0.0f32; QUERIES * hd];
            let mut scores = vec![0.0f32; QUERIES * width];
            let mut block_out = vec![0.0f32; QUERIES * hd];
            for h in 0..heads {
                for (i, q) in block_queries.chunks_exact_mut(hd).take(count).enumerate() {
                    q.copy_from_slice(&queries[(block * QUERIES + i) * d + h * hd..][..hd]);
                }
                let keys_t = &keys_t[h * hd * stride..][..hd * stride];
                (kernels().block_scores)(&block_queries, keys_t, stride, &mut scores);
                for (i, row) in scores.chunks_exact_mut(width).enumerate() {
                    // Query i sees positions 0..=first + i; padding queries nothing.
                    let seen = if i < count { first + i + 1 } else { 0 };
                    let (seen, unseen) = row.split_at_mut(seen);
                    seen.iter_mut().for_each(|s| *s *= scale);
                    (kernels().softmax)(seen);
                    unseen.fill(0.0);
                }
                let values = &values[h][..visible * hd];
                (kernels().block_weighted_sum)(&scores, width, values, &mut block_out);
                for (row, o) in rows.chunks_exact_mut(d).zip(block_out.chunks_exact(hd)) {
                    row[h * hd..][..hd].copy_from_slice(o);
                }
            }
        });
    }
}

/// The first `positions` keys of every head, transposed to `[head][dim][stride]`
/// with `stride` the positions rounded up to whole register blocks (zeros past
/// the last), as [`Kernels::block_scores`](crate::vector::Kernels) reads them.
fn transposed_keys<T: CacheValue>(keys: &[Vec<T>], positions: usize, hd: usize) -> Vec<f32> {
    let stride = positions.next_multiple_of(KEYS);
    let mut keys_t = vec![0.0f32; keys.len() * hd * stride];
    for_each_chunk(&mut keys_t, hd * stride, |h, head_t| {
        let mut scratch = Vec::new();
        // A register block of keys at a time, so each dimension's writes fill
        // one run of `KEYS` positions rather than touching a line per key.
        for (block, keys) in keys[h][..positions * hd].chunks(KEYS * hd).enumerate() {
            let keys = T::as_f32(keys, &mut scratch);
            for dim in 0..hd {
                let run = &mut head_t[dim * stride + block * KEYS..][..KEYS];
                for (slot, key) in run.iter_mut().zip(keys.chunks_exact(hd)) {
                    *slot = key[dim];
                }
            }
        }
    });
    keys_t
}

/// One head's attention: `out += softmax(q·kᵢ · scale) · vᵢ` over the cached
/// positions (`keys` and `values` hold one row per position).
fn attend_head<T: CacheValue>(q: &[f32], keys: &[T], values: &[T], scale: f32, out: &mut [f32]) {
    let hd = q.len();
    let mut scores: Vec<f32> = keys
        .chunks_exact(hd)
        .map(|key| T::dot(q, key) * scale)
        .collect();
    (kernels().softmax)(&mut scores);
    for (&w, v) in scores.iter().zip(values.chunks_exact(hd)) {
        T::axpy(w, v, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(heads: usize, hd: usize, cap: usize) -> CachedAttention {
        CachedAttention {
            n_heads: heads,
            head_dim: hd,
            rope: Arc::new(ChayaRope::new(hd, 10000.0, cap)),
            precision: KvPrecision::F32,
        }
    }

    fn qkv(t_len: usize, d: usize, seed: u32) -> Vec<f32> {
        (0..t_len * 3 * d)
            .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) % 1000)
            .map(|v| v as f32 / 500.0 - 1.0)
            .collect()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn incremental_decode_equals_whole_prefill() {
        incremental_decode_equals_whole_prefill_in::<f32>();
        incremental_decode_equals_whole_prefill_in::<f16>();
    }

    fn incremental_decode_equals_whole_prefill_in<T: CacheValue>() {
        let op = op(2, 8, 16);
        let input = qkv(5, 16, 7);
        let whole = KvCache::<T>::default().attend(&op, &input, 0).unwrap();
        let mut cache = KvCache::<T>::default();
        let mut rows = vec![];
        for t in 0..5 {
            let out = cache.attend(&op, &input[t * 48..][..48], t).unwrap();
            rows.extend(values(&out));
        }
        let whole = values(&whole);
        for (a, b) in whole.iter().zip(&rows) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn query_blocks_equal_one_token_at_a_time() {
        query_blocks_equal_one_token_at_a_time_in::<f32>();
        query_blocks_equal_one_token_at_a_time_in::<f16>();
    }

    fn query_blocks_equal_one_token_at_a_time_in<T: CacheValue>() {
        // Head width 20: one whole register block of value columns and a
        // partial one; prompts of 3 (per token), 9 (two blocks and a partial
        // one) and 6 tokens, the last two after earlier positions.
        let (heads, hd) = (2, 20);
        let op = op(heads, hd, 32);
        let row = 3 * heads * hd;
        let input = qkv(18, heads * hd, 11);
        let mut chunked = KvCache::<T>::default();
        let mut got = vec![];
        let mut pos = 0;
        for len in [3, 9, 6] {
            let out = chunked
                .attend(&op, &input[pos * row..][..len * row], pos)
                .unwrap();
            got.extend(values(&out));
            pos += len;
        }
        let mut single = KvCache::<T>::default();
        for t in 0..18 {
            let want = values(&single.attend(&op, &input[t * row..][..row], t).unwrap());
            for (a, b) in got[t * heads * hd..][..heads * hd].iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "token {t}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn first_token_attends_only_to_itself() {
        let op = op(1, 4, 4);
        let input = qkv(1, 4, 3);
        let out = KvCache::<f32>::default().attend(&op, &input, 0).unwrap();
        assert_eq!(values(&out), &input[8..12]);
    }

    #[test]
    fn f16_cache_stays_within_f16_rounding_of_f32() {
        // 40 tokens: query blocks (prefill) then single tokens (decode).
        let (heads, hd) = (2, 16);
        let op = op(heads, hd, 64);
        let row = 3 * heads * hd;
        let input = qkv(44, heads * hd, 5);
        let (mut exact, mut half) = (KvCache::<f32>::default(), KvCache::<f16>::default());
        for (pos, len) in [(0, 40), (40, 1), (41, 1), (42, 2)] {
            let rows = &input[pos * row..][..len * row];
            let want = values(&exact.attend(&op, rows, pos).unwrap());
            let got = values(&half.attend(&op, rows, pos).unwrap());
            let worst = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            // Inputs within ±1: each cached value is off by at most 2⁻¹², and
            // the outputs (averages of values) by about as much.
            assert!(worst < 2e-3, "positions {pos}..{}: {worst}", pos + len);
            assert!(worst > 0.0, "the f16 cache should round something");
        }
    }

    #[test]
    fn positions_past_capacity_are_an_error() {
        let op = op(1, 4, 4);
        let err = KvCache::<f32>::default()
            .attend(&op, &qkv(2, 4, 1), 3)
            .unwrap_err();
        assert!(
            err.to_string().contains("exceed the context length"),
            "{err}"
        );
    }
}
