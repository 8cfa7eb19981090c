//! Inner loops of the attention op: one query's scores against the cached
//! keys, and the score-weighted sum of the cached values. AVX2+FMA versions
//! are picked at run time on x86_64 (for head widths of 8 to 64 in steps of 8:
//! the query and the output stay in registers); portable versions
//! (auto-vectorized, e.g. NEON on aarch64) run elsewhere.
//!
//! Keys and values are consecutive rows as wide as the query.

use std::sync::OnceLock;

/// The inner loops, as the fastest versions this CPU runs.
pub struct Kernels {
    /// `scores[i] = scale · Σ q·keys[i]` for every `i < scores.len()`.
    pub scores: fn(q: &[f32], keys: &[f32], scale: f32, scores: &mut [f32]),
    /// `out = Σᵢ weights[i] · values[i]` over `i < weights.len()`.
    pub weighted_sum: fn(weights: &[f32], values: &[f32], out: &mut [f32]),
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

/// Lanes per accumulator array in the portable dot product.
const LANES: usize = 16;

/// `Σ a[i]·b[i]`, in a form that auto-vectorizes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
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
}

const PORTABLE: Kernels = Kernels {
    scores: |q, keys, scale, scores| {
        for (s, key) in scores.iter_mut().zip(keys.chunks_exact(q.len())) {
            *s = dot(q, key) * scale;
        }
    },
    weighted_sum: |weights, values, out| {
        out.fill(0.0);
        for (&w, value) in weights.iter().zip(values.chunks_exact(out.len())) {
            for (o, &v) in out.iter_mut().zip(value) {
                *o += w * v;
            }
        }
    },
};

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Kernels, PORTABLE};
    use std::arch::x86_64::*;

    /// Dispatches to `$f::<width / 8>` for widths of 8 to 64 in steps of 8,
    /// else to the portable kernel.
    macro_rules! by_width {
        ($width:expr, $f:ident, $portable:expr, ($($arg:expr),*)) => {
            // SAFETY (all arms): only selected after detecting AVX2 and FMA;
            // each kernel checks its slices' lengths.
            match $width {
                8 => unsafe { $f::<1>($($arg),*) },
                16 => unsafe { $f::<2>($($arg),*) },
                24 => unsafe { $f::<3>($($arg),*) },
                32 => unsafe { $f::<4>($($arg),*) },
                40 => unsafe { $f::<5>($($arg),*) },
                48 => unsafe { $f::<6>($($arg),*) },
                56 => unsafe { $f::<7>($($arg),*) },
                64 => unsafe { $f::<8>($($arg),*) },
                _ => $portable($($arg),*),
            }
        };
    }

    pub const KERNELS: Kernels = Kernels {
        scores: |q, keys, scale, scores| {
            by_width!(q.len(), scores_n, PORTABLE.scores, (q, keys, scale, scores))
        },
        weighted_sum: |weights, values, out| {
            by_width!(
                out.len(),
                weighted_sum_n,
                PORTABLE.weighted_sum,
                (weights, values, out)
            )
        },
    };

    /// Lane `k` of the result is the sum of the eight lanes of `v[k]`.
    #[target_feature(enable = "avx2,fma")]
    fn reduce8(v: [__m256; 8]) -> __m256 {
        // Per 128-bit half: [Σ v0, Σ v1, Σ v2, Σ v3] over that half's lanes.
        let low = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
        let high = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
        _mm256_add_ps(
            _mm256_permute2f128_ps(low, high, 0x20),
            _mm256_permute2f128_ps(low, high, 0x31),
        )
    }

    /// The scores kernel for rows of `8·N` floats: the query stays in
    /// registers, keys are taken eight at a time and reduced together.
    #[target_feature(enable = "avx2,fma")]
    fn scores_n<const N: usize>(q: &[f32], keys: &[f32], scale: f32, scores: &mut [f32]) {
        let n = scores.len();
        assert!(q.len() == 8 * N && n * 8 * N <= keys.len());
        // SAFETY (loads): q has 8·N floats; key i < n lies inside `keys`, as asserted.
        let mut qv = [_mm256_setzero_ps(); N];
        for (c, qv) in qv.iter_mut().enumerate() {
            *qv = unsafe { _mm256_loadu_ps(q.as_ptr().add(8 * c)) };
        }
        let dot = |key: *const f32, mut acc: __m256| {
            for (c, &qc) in qv.iter().enumerate() {
                // SAFETY: the key's 8·N floats lie inside `keys`.
                acc = _mm256_fmadd_ps(qc, unsafe { _mm256_loadu_ps(key.add(8 * c)) }, acc);
            }
            acc
        };
        let key = |i: usize| unsafe { keys.as_ptr().add(i * 8 * N) };
        let scale8 = _mm256_set1_ps(scale);
        let mut i = 0;
        // Eight keys at once, each in its own accumulator, reduced together.
        while i + 8 <= n {
            let mut acc = [_mm256_setzero_ps(); 8];
            for (k, acc) in acc.iter_mut().enumerate() {
                *acc = dot(key(i + k), *acc);
            }
            // SAFETY: i + 8 <= n = scores.len().
            unsafe {
                _mm256_storeu_ps(
                    scores.as_mut_ptr().add(i),
                    _mm256_mul_ps(reduce8(acc), scale8),
                )
            };
            i += 8;
        }
        for (j, s) in scores.iter_mut().enumerate().skip(i) {
            let lanes = reduce8([dot(key(j), _mm256_setzero_ps()); 8]);
            *s = _mm256_cvtss_f32(lanes) * scale;
        }
    }

    /// The weighted-sum kernel for rows of `8·N` floats: the output stays in
    /// registers across all values.
    #[target_feature(enable = "avx2,fma")]
    fn weighted_sum_n<const N: usize>(weights: &[f32], values: &[f32], out: &mut [f32]) {
        let n = weights.len();
        assert!(out.len() == 8 * N && n * 8 * N <= values.len());
        let mut acc = [_mm256_setzero_ps(); N];
        for (i, &w) in weights.iter().enumerate() {
            let w = _mm256_set1_ps(w);
            // SAFETY: value i < n lies inside `values`, as asserted.
            let value = unsafe { values.as_ptr().add(i * 8 * N) };
            for (c, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(w, unsafe { _mm256_loadu_ps(value.add(8 * c)) }, *acc);
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            // SAFETY: out has 8·N floats.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * c), *acc) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kernels() -> Vec<&'static Kernels> {
        vec![&PORTABLE, kernels()]
    }

    fn values(len: usize, seed: f32) -> Vec<f32> {
        (0..len).map(|i| (i as f32 * 0.37 + seed).cos()).collect()
    }

    /// Widths the AVX2 kernels take and ones they leave to the portable code;
    /// key counts with and without a tail of the groups of eight.
    #[test]
    fn scores_match_plain_sums() {
        for k in all_kernels() {
            for width in [4, 8, 16, 40, 64, 70] {
                for n in [0, 1, 7, 8, 19] {
                    let (q, keys) = (values(width, 0.5), values(n * width, 1.5));
                    let mut scores = vec![f32::NAN; n];
                    (k.scores)(&q, &keys, 0.5, &mut scores);
                    for (i, &s) in scores.iter().enumerate() {
                        let key = &keys[i * width..][..width];
                        let plain: f64 =
                            q.iter().zip(key).map(|(&a, &b)| a as f64 * b as f64).sum();
                        assert!(
                            (s as f64 - 0.5 * plain).abs() < 1e-4,
                            "width {width}, n {n}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn weighted_sums_match_plain_sums() {
        for k in all_kernels() {
            for width in [4, 8, 16, 40, 64, 70] {
                for n in [0, 1, 9] {
                    let (weights, vals) = (values(n, 0.2), values(n * width, 2.5));
                    let mut out = vec![f32::NAN; width];
                    (k.weighted_sum)(&weights, &vals, &mut out);
                    for (c, &o) in out.iter().enumerate() {
                        let plain: f64 = (0..n)
                            .map(|i| weights[i] as f64 * vals[i * width + c] as f64)
                            .sum();
                        assert!((o as f64 - plain).abs() < 1e-4, "width {width}, n {n}");
                    }
                }
            }
        }
    }
}
