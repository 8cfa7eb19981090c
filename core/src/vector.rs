//! Inner loops of the attention op: f32 dot products and `y += a·x`,
//! with AVX2+FMA versions picked at run time on x86_64 and portable versions
//! (auto-vectorized, e.g. NEON on aarch64) elsewhere.

use std::sync::OnceLock;

/// The inner loops, as the fastest versions this CPU runs.
pub struct Kernels {
    /// `Σ a[i]·b[i]`.
    pub dot: fn(&[f32], &[f32]) -> f32,
    /// `y += a·x`.
    pub axpy: fn(f32, &[f32], &mut [f32]),
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
};

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Kernels;
    use std::arch::x86_64::*;

    // SAFETY (both): only selected after detecting AVX2 and FMA.
    pub const KERNELS: Kernels = Kernels {
        dot: |a, b| unsafe { dot(a, b) },
        axpy: |a, x, y| unsafe { axpy(a, x, y) },
    };

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
