//! Inner loops of the attention op: f32 dot products and `y += a·x` for
//! one query (decode), and the same for blocks of [`QUERIES`] queries against
//! [`KEYS`] keys or value columns at a time (prefill), with AVX2+FMA versions
//! picked at run time on x86_64 and portable versions (auto-vectorized, e.g.
//! NEON on aarch64) elsewhere.

use std::sync::OnceLock;

/// The inner loops, as the fastest versions this CPU runs.
pub struct Kernels {
    /// `Σ a[i]·b[i]`.
    pub dot: fn(&[f32], &[f32]) -> f32,
    /// `y += a·x`.
    pub axpy: fn(f32, &[f32], &mut [f32]),
    /// [`block_scores`] for this CPU.
    pub block_scores: fn(&[f32], &[f32], usize, &mut [f32]),
    /// [`block_weighted_sum`] for this CPU.
    pub block_weighted_sum: fn(&[f32], usize, &[f32], &mut [f32]),
}

/// Queries per block in the prefill loops.
pub const QUERIES: usize = 4;

/// Keys (or value columns) per register block in the prefill loops.
pub const KEYS: usize = 16;

/// `a·b + c`, fused where `FUSED` (the CPU has FMA), else a product and a sum.
#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Scores of a block of queries against transposed keys:
/// `scores[i][j] = Σ_d queries[i][d] · keys_t[d][j]` for `i <` [`QUERIES`]
/// and `j < width`, where `queries` is `[QUERIES][head_dim]`, `keys_t` is
/// `[head_dim][stride]` (stride ≥ width) and `scores` is `[QUERIES][width]`
/// with `width` a multiple of [`KEYS`].
#[inline(always)]
fn block_scores<const FUSED: bool>(
    queries: &[f32],
    keys_t: &[f32],
    stride: usize,
    scores: &mut [f32],
) {
    let hd = queries.len() / QUERIES;
    let width = scores.len() / QUERIES;
    for j in (0..width).step_by(KEYS) {
        let mut acc = [[0.0f32; KEYS]; QUERIES];
        for d in 0..hd {
            let keys: &[f32; KEYS] = keys_t[d * stride + j..][..KEYS].try_into().unwrap();
            for (i, acc) in acc.iter_mut().enumerate() {
                let q = queries[i * hd + d];
                for (a, &k) in acc.iter_mut().zip(keys) {
                    *a = madd::<FUSED>(q, k, *a);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            scores[i * width + j..][..KEYS].copy_from_slice(acc);
        }
    }
}

/// Weighted sums of value rows for a block of queries:
/// `out[i] = Σ_{j < used} weights[i][j] · values[j]`, where `weights` is
/// `[QUERIES][stride]`, `values` is `[used][head_dim]` and `out` is
/// `[QUERIES][head_dim]`. Each output is summed in key order, as repeated
/// `axpy` would.
#[inline(always)]
fn block_weighted_sum<const FUSED: bool>(
    weights: &[f32],
    stride: usize,
    values: &[f32],
    out: &mut [f32],
) {
    let hd = out.len() / QUERIES;
    let used = values.len() / hd.max(1);
    let mut acc = [[0.0f32; KEYS]; QUERIES];
    for c in (0..hd).step_by(KEYS) {
        let lanes = KEYS.min(hd - c);
        acc.iter_mut().for_each(|a| a.fill(0.0));
        if lanes == KEYS {
            for j in 0..used {
                let v: &[f32; KEYS] = values[j * hd + c..][..KEYS].try_into().unwrap();
                for (i, acc) in acc.iter_mut().enumerate() {
                    let w = weights[i * stride + j];
                    for (a, &v) in acc.iter_mut().zip(v) {
                        *a = madd::<FUSED>(w, v, *a);
                    }
                }
            }
        } else {
            for j in 0..used {
                let v = &values[j * hd + c..][..lanes];
                for (i, acc) in acc.iter_mut().enumerate() {
                    let w = weights[i * stride + j];
                    for (a, &v) in acc.iter_mut().zip(v) {
                        *a = madd::<FUSED>(w, v, *a);
                    }
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            out[i * hd + c..][..lanes].copy_from_slice(&acc[..lanes]);
        }
    }
}

/// The kernels for this CPU, detected once.
pub fn kernels() -> &'static Kernels {
    static KERNELS: OnceLock<Kernels> = OnceLock::new();
    KERNELS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return avx2::KERNELS;
        }
        PORTABLE
    })
}

/// Lanes per accumulator array in the portable loops.
const LANES: usize = 16;

const PORTABLE: Kernels = Kernels {
    dot: |a, b| {
        let (a_chunks, a_tail) = a.as_chunks::<LANES>();
        let (b_chunks, b_tail) = b.as_chunks::<LANES>();
        let mut acc = [0.0f32; LANES];
        for (ac, bc) in a_chunks.iter().zip(b_chunks) {
            for i in 0..LANES {
                acc[i] += ac[i] * bc[i];
            }
        }
        let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
        acc.iter().sum::<f32>() + tail
    },
    axpy: |a, x, y| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += a * x;
        }
    },
    // aarch64 always has FMA.
    block_scores: block_scores::<{ cfg!(target_arch = "aarch64") }>,
    block_weighted_sum: block_weighted_sum::<{ cfg!(target_arch = "aarch64") }>,
};

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Kernels;
    use std::arch::x86_64::*;

    // SAFETY (all): only selected after detecting AVX2 and FMA.
    pub const KERNELS: Kernels = Kernels {
        dot: |a, b| unsafe { dot(a, b) },
        axpy: |a, x, y| unsafe { axpy(a, x, y) },
        block_scores: |q, k, stride, s| unsafe { block_scores(q, k, stride, s) },
        block_weighted_sum: |w, stride, v, o| unsafe { block_weighted_sum(w, stride, v, o) },
    };

    #[target_feature(enable = "avx2,fma")]
    fn block_scores(queries: &[f32], keys_t: &[f32], stride: usize, scores: &mut [f32]) {
        super::block_scores::<true>(queries, keys_t, stride, scores)
    }

    #[target_feature(enable = "avx2,fma")]
    fn block_weighted_sum(weights: &[f32], stride: usize, values: &[f32], out: &mut [f32]) {
        super::block_weighted_sum::<true>(weights, stride, values, out)
    }

    /// Sum of the 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    fn sum(v: __m256) -> f32 {
        let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_add_ss(v, _mm_shuffle_ps(v, v, 1)))
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i + 16 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: i + 16 <= n bounds the 8 floats read from each.
                let (a8, b8) = unsafe {
                    let a8 = _mm256_loadu_ps(a.as_ptr().add(i + 8 * j));
                    (a8, _mm256_loadu_ps(b.as_ptr().add(i + 8 * j)))
                };
                *acc = _mm256_fmadd_ps(a8, b8, *acc);
            }
            i += 16;
        }
        let tail: f32 = (i..n).map(|i| a[i] * b[i]).sum();
        sum(_mm256_add_ps(acc[0], acc[1])) + tail
    }

    #[target_feature(enable = "avx2,fma")]
    fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let av = _mm256_set1_ps(a);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n bounds the 8 floats read and written.
            unsafe {
                let x8 = _mm256_loadu_ps(x.as_ptr().add(i));
                let y8 = _mm256_loadu_ps(y.as_ptr().add(i));
                _mm256_storeu_ps(y.as_mut_ptr().add(i), _mm256_fmadd_ps(av, x8, y8));
            }
            i += 8;
        }
        for i in i..n {
            y[i] += a * x[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kernels() -> Vec<&'static Kernels> {
        vec![&PORTABLE, kernels()]
    }

    #[test]
    fn dot_matches_a_plain_sum_with_and_without_tails() {
        for k in all_kernels() {
            for len in [0, 5, 32, 64, 70, 192] {
                let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.3).cos()).collect();
                let plain: f64 = a.iter().map(|&v| v as f64 * v as f64).sum();
                assert!(((k.dot)(&a, &a) as f64 - plain).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn block_kernels_match_dots_and_axpys() {
        let (hd, width, stride) = (20, 2 * KEYS, 2 * KEYS + 3);
        let wave = |len: usize, f: f32| (0..len).map(|i| (i as f32 * f).sin()).collect::<Vec<_>>();
        let queries = wave(QUERIES * hd, 0.37);
        let keys = wave(width * hd, 0.11); // [key][dim]
        let mut keys_t = vec![0.0; hd * stride];
        for (j, key) in keys.chunks_exact(hd).enumerate() {
            for (d, &k) in key.iter().enumerate() {
                keys_t[d * stride + j] = k;
            }
        }
        let weights = wave(QUERIES * stride, 0.23);
        let used = width - 5;
        let values = wave(used * hd, 0.71);
        for k in all_kernels() {
            let mut scores = vec![f32::NAN; QUERIES * width];
            (k.block_scores)(&queries, &keys_t, stride, &mut scores);
            let mut out = vec![f32::NAN; QUERIES * hd];
            (k.block_weighted_sum)(&weights, stride, &values, &mut out);
            for (i, q) in queries.chunks_exact(hd).enumerate() {
                for (j, key) in keys.chunks_exact(hd).enumerate() {
                    let want = (k.dot)(q, key);
                    assert!((scores[i * width + j] - want).abs() < 1e-5);
                }
                let mut want = vec![0.0; hd];
                for (j, v) in values.chunks_exact(hd).enumerate() {
                    (k.axpy)(weights[i * stride + j], v, &mut want);
                }
                for (o, w) in out[i * hd..][..hd].iter().zip(&want) {
                    assert!((o - w).abs() < 1e-6, "{o} vs {w}");
                }
            }
        }
    }

    #[test]
    fn axpy_accumulates_with_a_tail() {
        for k in all_kernels() {
            let x: Vec<f32> = (0..11).map(|i| i as f32).collect();
            let mut y = vec![1.0; 11];
            (k.axpy)(2.0, &x, &mut y);
            let want: Vec<f32> = (0..11).map(|i| 1.0 + 2.0 * i as f32).collect();
            assert_eq!(y, want);
        }
    }
}
