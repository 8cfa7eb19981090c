//! Integer dot products for the int8 matmul: activations quantized to int8 in
//! blocks of [`BLOCK`] values with one f32 scale per block (llama.cpp's Q8_0
//! layout), multiplied with int8 weight rows in integer arithmetic.
//!
//! A tile kernel computes, for `W` weight rows `w` and `X` activation rows `x`,
//! `Σ_b scale_x[b] · Σ_{i∈b} w[i]·x[i]` (the weight's own scale is applied by
//! the caller). Versions, picked at run time:
//! - AVX-VNNI (VEX) or AVX512-VNNI (EVEX, 256-bit): `vpdpbusd` multiplies
//!   unsigned by signed bytes, so weights are offset to `w + 128` and the
//!   activation row's `128 · Σ_b scale_b · Σ x` ([`Q8Row::offset`]) is
//!   subtracted at the end;
//! - AVX2: `vpmaddubsw` on `|w|` and `x` carrying `w`'s sign (exact: both
//!   are within ±127, so the 16-bit pair sums cannot saturate);
//! - portable code elsewhere (auto-vectorized, e.g. NEON on aarch64).
//!
//! Every (weight row, activation row) pair is accumulated in the same order in
//! every tile shape, so results do not depend on how rows are grouped.

use std::sync::OnceLock;

/// Activation values per quantization block.
pub const BLOCK: usize = 32;

/// Rows of activations quantized to int8, one scale per block of [`BLOCK`].
pub struct Q8Rows {
    cols: usize,
    values: Vec<i8>,
    scales: Vec<f32>,
    offsets: Vec<f32>,
}

/// One quantized activation row, as the kernels read it.
#[derive(Clone, Copy)]
pub struct Q8Row<'a> {
    /// `cols` int8 values.
    pub values: &'a [i8],
    /// One scale per block (the last block may be partial).
    pub scales: &'a [f32],
    /// `128 · Σ_b scale_b · Σ_{i∈b} values[i]` over the full blocks.
    pub offset: f32,
}

impl Q8Rows {
    /// Quantizes a row-major `[rows, cols]` matrix: per block, `scale = max|x| / 127`
    /// and `q = round(x / scale)`.
    pub fn quantize(x: &[f32], cols: usize) -> Q8Rows {
        let blocks = cols.div_ceil(BLOCK);
        let rows = x.len() / cols.max(1);
        let mut values = vec![0i8; rows * cols];
        let mut scales = vec![0.0f32; rows * blocks];
        let mut offsets = vec![0.0f32; rows];
        for (t, row) in x.chunks_exact(cols.max(1)).enumerate() {
            let q_row = &mut values[t * cols..][..cols];
            let mut offset = 0.0f32;
            for (b, (xs, qs)) in row.chunks(BLOCK).zip(q_row.chunks_mut(BLOCK)).enumerate() {
                let max = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let scale = max / 127.0;
                let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
                for (q, &v) in qs.iter_mut().zip(xs) {
                    *q = (v * inverse).round().clamp(-127.0, 127.0) as i8;
                }
                scales[t * blocks + b] = scale;
                if qs.len() == BLOCK {
                    let sum: i32 = qs.iter().map(|&q| q as i32).sum();
                    offset += scale * sum as f32;
                }
            }
            offsets[t] = 128.0 * offset;
        }
        Q8Rows {
            cols,
            values,
            scales,
            offsets,
        }
    }

    /// Row `t`.
    pub fn row(&self, t: usize) -> Q8Row<'_> {
        let blocks = self.cols.div_ceil(BLOCK);
        Q8Row {
            values: &self.values[t * self.cols..][..self.cols],
            scales: &self.scales[t * blocks..][..blocks],
            offset: self.offsets[t],
        }
    }
}

/// `out[j][i]` = the block-scaled dot product of weight row `j` and activation row `i`.
pub type Tile<const W: usize, const X: usize> = fn(&[&[i8]; W], &[Q8Row; X]) -> [[f32; X]; W];

/// The tile kernels, as the fastest versions this CPU runs.
pub struct Kernels {
    /// Eight weight rows by one activation row (decode).
    pub w8x1: Tile<8, 1>,
    /// Two weight rows by four activation rows (prefill).
    pub w2x4: Tile<2, 4>,
}

/// The kernels for this CPU, detected once.
pub fn kernels() -> &'static Kernels {
    static KERNELS: OnceLock<Kernels> = OnceLock::new();
    KERNELS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("fma") {
                return x86::AVX_VNNI;
            }
            if is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("fma")
            {
                return x86::AVX512_VNNI;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return x86::AVX2;
            }
        }
        PORTABLE
    })
}

const PORTABLE: Kernels = Kernels {
    w8x1: portable_tile::<8, 1>,
    w2x4: portable_tile::<2, 4>,
};

/// `Σ w[i]·x[i]` in exact integer arithmetic.
fn int_dot(w: &[i8], x: &[i8]) -> i32 {
    w.iter().zip(x).map(|(&a, &b)| a as i32 * b as i32).sum()
}

/// The tile in plain Rust: per pair, block dot products in i32, scaled and summed in f32.
fn portable_tile<const W: usize, const X: usize>(w: &[&[i8]; W], x: &[Q8Row; X]) -> [[f32; X]; W] {
    let mut out = [[0.0f32; X]; W];
    for (out, w) in out.iter_mut().zip(w) {
        for (o, x) in out.iter_mut().zip(x) {
            *o = w
                .chunks(BLOCK)
                .zip(x.values.chunks(BLOCK))
                .zip(x.scales)
                .map(|((w, q), &scale)| int_dot(w, q) as f32 * scale)
                .sum();
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{int_dot, Kernels, Q8Row, BLOCK};
    use std::arch::x86_64::*;

    /// Defines a tile kernel for one instruction set: `$prepare` turns 32
    /// weight bytes into the form `$dot` takes; `$dot(w, x)` gives eight i32
    /// partial sums of `Σ w·x` (plus `128·Σx` when `$offset`).
    macro_rules! tile {
        ($name:ident, $features:literal, $prepare:ident, $dot:ident, $offset:literal) => {
            #[target_feature(enable = $features)]
            fn $name<const W: usize, const X: usize>(
                w: &[&[i8]; W],
                x: &[Q8Row; X],
            ) -> [[f32; X]; W] {
                let cols = x[0].values.len();
                let full = cols / BLOCK;
                assert!(w.iter().all(|w| w.len() == cols));
                assert!(x
                    .iter()
                    .all(|x| x.values.len() == cols && x.scales.len() * BLOCK >= cols));
                let mut acc = [[_mm256_setzero_ps(); X]; W];
                for b in 0..full {
                    let mut wv = [_mm256_setzero_si256(); W];
                    for j in 0..W {
                        // SAFETY: (b + 1)·BLOCK <= cols = w[j].len().
                        let raw =
                            unsafe { _mm256_loadu_si256(w[j].as_ptr().add(b * BLOCK).cast()) };
                        wv[j] = $prepare(raw);
                    }
                    for i in 0..X {
                        // SAFETY: as above, for x[i].values; b < full <= scales.len().
                        let (xv, scale) = unsafe {
                            (
                                _mm256_loadu_si256(x[i].values.as_ptr().add(b * BLOCK).cast()),
                                *x[i].scales.get_unchecked(b),
                            )
                        };
                        let scale = _mm256_set1_ps(scale);
                        for j in 0..W {
                            let dot = _mm256_cvtepi32_ps($dot(wv[j], xv));
                            acc[j][i] = _mm256_fmadd_ps(dot, scale, acc[j][i]);
                        }
                    }
                }
                // Horizontal sums, four accumulators at a time where the tile allows.
                let mut out = [[0.0f32; X]; W];
                if X % 4 == 0 {
                    for j in 0..W {
                        for i in (0..X).step_by(4) {
                            let sums =
                                sum4([acc[j][i], acc[j][i + 1], acc[j][i + 2], acc[j][i + 3]]);
                            out[j][i..i + 4].copy_from_slice(&sums);
                        }
                    }
                } else if W % 4 == 0 {
                    for i in 0..X {
                        for j in (0..W).step_by(4) {
                            let sums =
                                sum4([acc[j][i], acc[j + 1][i], acc[j + 2][i], acc[j + 3][i]]);
                            for (d, v) in sums.into_iter().enumerate() {
                                out[j + d][i] = v;
                            }
                        }
                    }
                } else {
                    for j in 0..W {
                        for i in 0..X {
                            out[j][i] = sum(acc[j][i]);
                        }
                    }
                }
                let tail = full * BLOCK;
                for j in 0..W {
                    for i in 0..X {
                        if tail < cols {
                            out[j][i] += int_dot(&w[j][tail..], &x[i].values[tail..]) as f32
                                * x[i].scales[full];
                        }
                        if $offset {
                            out[j][i] -= x[i].offset;
                        }
                    }
                }
                out
            }
        };
    }

    /// Sum of the 8 lanes.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn sum(v: __m256) -> f32 {
        let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_add_ss(v, _mm_shuffle_ps(v, v, 1)))
    }

    /// The lane sums of four vectors (a transpose by horizontal adds).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn sum4(v: [__m256; 4]) -> [f32; 4] {
        let pairs = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
        let sums = _mm_add_ps(
            _mm256_castps256_ps128(pairs),
            _mm256_extractf128_ps(pairs, 1),
        );
        let mut out = [0.0f32; 4];
        // SAFETY: `out` holds four f32.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), sums) };
        out
    }

    /// `w + 128` as unsigned bytes.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn offset_weights(w: __m256i) -> __m256i {
        _mm256_xor_si256(w, _mm256_set1_epi8(-128))
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn keep(w: __m256i) -> __m256i {
        w
    }

    #[target_feature(enable = "avx2,avxvnni")]
    #[inline]
    fn dot_avx_vnni(w: __m256i, x: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), w, x)
    }

    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    #[inline]
    fn dot_avx512_vnni(w: __m256i, x: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, x)
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn dot_avx2(w: __m256i, x: __m256i) -> __m256i {
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
        _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
    }

    tile!(
        avx_vnni_tile,
        "avx2,fma,avxvnni",
        offset_weights,
        dot_avx_vnni,
        true
    );
    tile!(
        avx512_vnni_tile,
        "avx2,fma,avx512vnni,avx512vl",
        offset_weights,
        dot_avx512_vnni,
        true
    );
    tile!(avx2_tile, "avx2,fma", keep, dot_avx2, false);

    // SAFETY (all): each is only selected after detecting its features.
    pub const AVX_VNNI: Kernels = Kernels {
        w8x1: |w, x| unsafe { avx_vnni_tile::<8, 1>(w, x) },
        w2x4: |w, x| unsafe { avx_vnni_tile::<2, 4>(w, x) },
    };
    pub const AVX512_VNNI: Kernels = Kernels {
        w8x1: |w, x| unsafe { avx512_vnni_tile::<8, 1>(w, x) },
        w2x4: |w, x| unsafe { avx512_vnni_tile::<2, 4>(w, x) },
    };
    pub const AVX2: Kernels = Kernels {
        w8x1: |w, x| unsafe { avx2_tile::<8, 1>(w, x) },
        w2x4: |w, x| unsafe { avx2_tile::<2, 4>(w, x) },
    };

    /// The x86 kernel sets this CPU can run.
    #[cfg(test)]
    pub fn available() -> Vec<&'static Kernels> {
        let mut all = Vec::new();
        if is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("fma") {
            all.push(&AVX_VNNI);
        }
        if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
            all.push(&AVX512_VNNI);
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            all.push(&AVX2);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kernels() -> Vec<&'static Kernels> {
        #[allow(unused_mut)]
        let mut all = vec![&PORTABLE];
        #[cfg(target_arch = "x86_64")]
        all.extend(x86::available());
        all
    }

    fn values(len: usize, seed: f32) -> Vec<f32> {
        (0..len).map(|i| (i as f32 * seed).sin() * 3.0).collect()
    }

    fn weights(len: usize, seed: usize) -> Vec<i8> {
        (0..len)
            .map(|i| ((i * seed + 11) % 255) as i32 - 127)
            .map(|v| v as i8)
            .collect()
    }

    /// The exact value every kernel approximates: f64 sum of scaled integer block dots.
    fn exact(w: &[i8], x: Q8Row) -> f64 {
        w.chunks(BLOCK)
            .zip(x.values.chunks(BLOCK))
            .zip(x.scales)
            .map(|((w, q), &s)| int_dot(w, q) as f64 * s as f64)
            .sum()
    }

    #[test]
    fn quantized_rows_are_within_half_a_step() {
        let x = values(3 * 70, 0.7);
        let q = Q8Rows::quantize(&x, 70);
        for t in 0..3 {
            let row = q.row(t);
            for (i, &v) in x[t * 70..][..70].iter().enumerate() {
                let scale = row.scales[i / BLOCK];
                assert!((row.values[i] as f32 * scale - v).abs() <= scale / 2.0 + 1e-6);
            }
            assert_eq!(row.scales.len(), 3);
        }
    }

    #[test]
    fn zero_blocks_quantize_to_zero() {
        let q = Q8Rows::quantize(&[0.0; 40], 40);
        assert!(q.row(0).values.iter().all(|&v| v == 0));
        assert_eq!(q.row(0).offset, 0.0);
    }

    #[test]
    fn every_kernel_matches_the_exact_block_sum() {
        // 8: only a tail; 64: full blocks; 70 and 200: full blocks and a tail.
        for cols in [8, 64, 70, 200] {
            let xq = Q8Rows::quantize(&values(4 * cols, 0.37), cols);
            let x = [xq.row(0), xq.row(1), xq.row(2), xq.row(3)];
            let w: Vec<Vec<i8>> = (0..8).map(|j| weights(cols, 7 + 2 * j)).collect();
            let w8: [&[i8]; 8] = std::array::from_fn(|j| &w[j][..]);
            for k in all_kernels() {
                let got = (k.w8x1)(&w8, &[x[1]]);
                for j in 0..8 {
                    let want = exact(w8[j], x[1]);
                    assert!((got[j][0] as f64 - want).abs() < 1e-4 * want.abs().max(1.0));
                }
                let got = (k.w2x4)(&[w8[2], w8[3]], &x);
                for j in 0..2 {
                    for i in 0..4 {
                        let want = exact(w8[2 + j], x[i]);
                        assert!((got[j][i] as f64 - want).abs() < 1e-4 * want.abs().max(1.0));
                    }
                }
            }
        }
    }

    #[test]
    fn extreme_values_do_not_saturate() {
        let cols = 64;
        let xq = Q8Rows::quantize(&[-5.0; 64], cols);
        let w = vec![-127i8; cols];
        for k in all_kernels() {
            let got = (k.w8x1)(&[&w[..]; 8], &[xq.row(0)]);
            let want = exact(&w, xq.row(0));
            assert!((got[0][0] as f64 - want).abs() < 1e-4 * want.abs());
        }
    }
}
