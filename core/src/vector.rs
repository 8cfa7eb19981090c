//! Inner loops of the attention op: f32 dot products and `y += a·x` for
//! one query (decode), and the same for blocks of [`QUERIES`] queries against
//! [`KEYS`] keys or value columns at a time (prefill), softmax, SwiGLU's gate,
//! and widening of f16 cache rows to f32, with AVX2+FMA(+F16C) versions
//! (and AVX-512 ones of the block loops) picked at run time on x86_64, NEON
//! versions of the decode loops and widening on aarch64, and portable
//! versions (auto-vectorized) of the rest and elsewhere.

use half::f16;
use std::sync::OnceLock;

/// The inner loops, as the fastest versions this CPU runs.
pub struct Kernels {
    /// `Σ a[i]·b[i]`.
    pub dot: fn(&[f32], &[f32]) -> f32,
    /// `y += a·x`.
    pub axpy: fn(f32, &[f32], &mut [f32]),
    /// [`Kernels::dot`] with `b` in f16.
    pub dot_f16: fn(&[f32], &[f16]) -> f32,
    /// [`Kernels::axpy`] with `x` in f16.
    pub axpy_f16: fn(f32, &[f16], &mut [f32]),
    /// Scores of a block of [`QUERIES`] queries against transposed keys
    /// (`block_scores`) for this CPU.
    pub block_scores: fn(&[f32], &[f32], usize, &mut [f32]),
    /// Weighted sums of value rows for a block of [`QUERIES`] queries
    /// (`block_weighted_sum`) for this CPU.
    pub block_weighted_sum: fn(&[f32], usize, &[f32], &mut [f32]),
    /// Numerically stable softmax in place.
    pub softmax: fn(&mut [f32]),
    /// SiLU, `x·σ(x)`, in place.
    pub silu: fn(&mut [f32]),
    /// `dst[i] = src[i]` from f16 to f32 (exact; `dst` as long as `src`).
    pub widen: fn(&[f16], &mut [f32]),
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

/// Whether `rows` rows of `width` values, `stride` apart, lie within `len`
/// values, computed without overflow: the intrinsic kernels read unchecked
/// once this holds (a wrapped product would let a huge `stride` pass).
#[cfg(any(target_arch = "x86_64", test))]
fn rows_fit(len: usize, rows: usize, stride: usize, width: usize) -> bool {
    rows.saturating_sub(1)
        .checked_mul(stride)
        .and_then(|start| start.checked_add(width))
        .is_some_and(|end| end <= len)
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

/// `eᕽ` within 2 ulp for `x` in [-87, 88] (clamped to it outside; NaN stays
/// NaN): Cephes' `expf`, `2ⁿ · p(r)` with `n = round(x · log₂e)` and a
/// degree-7 polynomial in `r = x - n·ln 2`, in branch-free arithmetic that
/// the compiler vectorizes (libm's `expf` is a call per element).
#[inline(always)]
fn exp<const FUSED: bool>(x: f32) -> f32 {
    /// Adding and subtracting 1.5 · 2²³ rounds to an integer (ties to even).
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let rounded = x * std::f32::consts::LOG2_E + ROUND;
    let n = rounded - ROUND;
    // ln 2 in two parts, so n · ln 2 is exact to 32 bits.
    let r = madd::<FUSED>(n, -0.693_359_4, x);
    let r = madd::<FUSED>(n, 2.121_944_4e-4, r);
    let mut p = 1.987_569_1e-4;
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
        p = madd::<FUSED>(p, r, c);
    }
    let p = madd::<FUSED>(p, r * r, r) + 1.0;
    // 2ⁿ from the low bits of `rounded`, 1.5 · 2²³ + n (no float-to-int
    // conversion, which does not vectorize): the shift drops the rest.
    p * f32::from_bits(rounded.to_bits().wrapping_add(127) << 23)
}

/// Numerically stable softmax in place: `x[i] = e^(x[i] - max) / Σ`, the sum
/// taken in [`LANES`] partial sums (a fixed order on every CPU).
#[inline(always)]
fn softmax<const FUSED: bool>(x: &mut [f32]) {
    let (chunks, tail) = x.as_chunks::<LANES>();
    let mut maxes = [f32::NEG_INFINITY; LANES];
    for chunk in chunks {
        for (m, &v) in maxes.iter_mut().zip(chunk) {
            *m = if v > *m { v } else { *m };
        }
    }
    let max = tail
        .iter()
        .chain(&maxes)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let (chunks, tail) = x.as_chunks_mut::<LANES>();
    let mut sums = [0.0f32; LANES];
    for chunk in chunks {
        for (s, v) in sums.iter_mut().zip(chunk) {
            *v = exp::<FUSED>(*v - max);
            *s += *v;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for v in tail {
        *v = exp::<FUSED>(*v - max);
        sum += *v;
    }
    for v in x {
        *v /= sum;
    }
}

/// `x[i] = silu(x[i])`, `silu(g) = g / (1 + e^-g)`: SwiGLU's gate.
#[inline(always)]
fn silu<const FUSED: bool>(x: &mut [f32]) {
    for g in x {
        *g /= 1.0 + exp::<FUSED>(-*g);
    }
}

/// One f16 as f32, exactly, in integer and float arithmetic the compiler
/// vectorizes: the magnitude's bits moved to f32's place and scaled by 2¹¹²
/// (rebiasing the exponent, subnormals included); infinities and NaNs keep an
/// all-ones exponent.
#[inline(always)]
fn widen_one(h: f16) -> f32 {
    let h = u32::from(h.to_bits());
    let magnitude = (h & 0x7fff) << 13;
    let scaled = f32::from_bits(magnitude) * f32::from_bits(0x7780_0000);
    let bits = if magnitude >= 0x0f80_0000 {
        magnitude | 0x7f80_0000
    } else {
        scaled.to_bits()
    };
    f32::from_bits(bits | (h & 0x8000) << 16)
}

/// [`Kernels::widen`] in portable code.
#[inline(always)]
fn widen(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len());
    for (d, &h) in dst.iter_mut().zip(src) {
        *d = widen_one(h);
    }
}

/// The kernels for this CPU, detected once.
pub fn kernels() -> &'static Kernels {
    static KERNELS: OnceLock<Kernels> = OnceLock::new();
    KERNELS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            if is_x86_feature_detected!("avx512f") {
                return avx512::KERNELS;
            }
            return avx2::KERNELS;
        }
        #[cfg(target_arch = "aarch64")]
        return neon::KERNELS;
        #[cfg(not(target_arch = "aarch64"))]
        PORTABLE
    })
}

/// Lanes per accumulator array in the portable loops.
const LANES: usize = 16;

/// A value the portable loops read as f32.
trait Widen: Copy {
    fn widen(self) -> f32;
}

impl Widen for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Widen for f16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        widen_one(self)
    }
}

/// [`Kernels::dot`] in portable code, for f32 or f16 `b`.
fn portable_dot<T: Widen>(a: &[f32], b: &[T]) -> f32 {
    let (a_chunks, a_tail) = a.as_chunks::<LANES>();
    let (b_chunks, b_tail) = b.as_chunks::<LANES>();
    let mut acc = [0.0f32; LANES];
    for (ac, bc) in a_chunks.iter().zip(b_chunks) {
        for i in 0..LANES {
            acc[i] += ac[i] * bc[i].widen();
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y.widen()).sum();
    acc.iter().sum::<f32>() + tail
}

/// [`Kernels::axpy`] in portable code, for f32 or f16 `x`.
fn portable_axpy<T: Widen>(a: f32, x: &[T], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x.widen();
    }
}

const PORTABLE: Kernels = Kernels {
    dot: portable_dot,
    axpy: portable_axpy,
    dot_f16: portable_dot,
    axpy_f16: portable_axpy,
    // aarch64 always has FMA.
    block_scores: block_scores::<{ cfg!(target_arch = "aarch64") }>,
    block_weighted_sum: block_weighted_sum::<{ cfg!(target_arch = "aarch64") }>,
    softmax: softmax::<{ cfg!(target_arch = "aarch64") }>,
    silu: silu::<{ cfg!(target_arch = "aarch64") }>,
    widen,
};

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Kernels, KEYS, QUERIES};
    use half::f16;
    use std::arch::x86_64::*;

    // SAFETY (all): only selected after detecting AVX2, FMA and F16C.
    pub const KERNELS: Kernels = Kernels {
        dot: |a, b| unsafe { dot(a, b) },
        axpy: |a, x, y| unsafe { axpy(a, x, y) },
        dot_f16: |a, b| unsafe { dot(a, b) },
        axpy_f16: |a, x, y| unsafe { axpy(a, x, y) },
        block_scores: |q, k, stride, s| unsafe { block_scores(q, k, stride, s) },
        block_weighted_sum: |w, stride, v, o| unsafe { block_weighted_sum(w, stride, v, o) },
        softmax: |x| unsafe { softmax(x) },
        silu: |x| unsafe { silu(x) },
        widen: |src, dst| unsafe { widen(src, dst) },
    };

    /// [`super::widen`], 8 values per `vcvtph2ps`.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn widen(src: &[f16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len());
        let (chunks, tail) = src.as_chunks::<8>();
        let (out, out_tail) = dst.as_chunks_mut::<8>();
        for (h, f) in chunks.iter().zip(out) {
            // SAFETY: `h` holds 8 f16 (16 bytes) and `f` 8 f32.
            unsafe {
                let h = _mm_loadu_si128(h.as_ptr().cast());
                _mm256_storeu_ps(f.as_mut_ptr(), _mm256_cvtph_ps(h));
            }
        }
        super::widen(tail, out_tail);
    }

    #[target_feature(enable = "avx2,fma")]
    fn softmax(x: &mut [f32]) {
        super::softmax::<true>(x)
    }

    #[target_feature(enable = "avx2,fma")]
    fn silu(x: &mut [f32]) {
        super::silu::<true>(x)
    }

    /// Sums of a register block: `QUERIES` rows of `KEYS` lanes.
    type RegisterBlock = [[__m256; 2]; QUERIES];

    /// `acc[i] += s[i] · v` for every row `i` of a register block.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn add_products(acc: &mut RegisterBlock, s: [f32; QUERIES], v: [__m256; 2]) {
        for (acc, s) in acc.iter_mut().zip(s) {
            let s = _mm256_set1_ps(s);
            for (a, v) in acc.iter_mut().zip(v) {
                *a = _mm256_fmadd_ps(s, v, *a);
            }
        }
    }

    /// Row `i` of `acc` into `out[i · row_len + at..][..KEYS]`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn store_block(acc: &RegisterBlock, out: &mut [f32], row_len: usize, at: usize) {
        for (i, acc) in acc.iter().enumerate() {
            let row = &mut out[i * row_len + at..][..KEYS];
            for (n, &a) in acc.iter().enumerate() {
                // SAFETY: `row` holds 16 floats.
                unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(8 * n), a) };
            }
        }
    }

    /// [`super::block_scores`] (the same sums in the same order) with its
    /// [`QUERIES`] × [`KEYS`] sums held in 8 registers, written out with
    /// intrinsics: the compiler's version of the generic loop kept bounds
    /// checks and a pointer per query row in the loop.
    #[target_feature(enable = "avx2,fma")]
    fn block_scores(queries: &[f32], keys_t: &[f32], stride: usize, scores: &mut [f32]) {
        let hd = queries.len() / QUERIES;
        let width = scores.len() / QUERIES;
        assert!(super::rows_fit(keys_t.len(), hd, stride, width) && width.is_multiple_of(KEYS));
        let (q, k) = (queries.as_ptr(), keys_t.as_ptr());
        for j in (0..width).step_by(KEYS) {
            let mut acc = [[_mm256_setzero_ps(); 2]; QUERIES];
            for d in 0..hd {
                // SAFETY: d · stride + j + KEYS <= keys_t.len() (asserted).
                let keys = std::array::from_fn(|n| unsafe {
                    _mm256_loadu_ps(k.add(d * stride + j + 8 * n))
                });
                // SAFETY: i · hd + d < QUERIES · hd <= queries.len().
                let q = std::array::from_fn(|i| unsafe { *q.add(i * hd + d) });
                add_products(&mut acc, q, keys);
            }
            store_block(&acc, scores, width, j);
        }
    }

    /// [`super::block_weighted_sum`] (the same sums in the same order) with
    /// [`QUERIES`] × [`KEYS`] columns' sums in 8 registers, as
    /// [`block_scores`]; head widths that are not whole register blocks take
    /// the generic loop. The compiler's version spilled a sum to the stack
    /// every key (a store-to-load chain in the loop): its share of a
    /// 256-token prefill's profile was 4.2%, this one's 2.1%.
    #[target_feature(enable = "avx2,fma")]
    fn block_weighted_sum(weights: &[f32], stride: usize, values: &[f32], out: &mut [f32]) {
        let hd = out.len() / QUERIES;
        if !hd.is_multiple_of(KEYS) {
            return super::block_weighted_sum::<true>(weights, stride, values, out);
        }
        let used = values.len() / hd.max(1);
        assert!(super::rows_fit(weights.len(), QUERIES, stride, used));
        let (w, v) = (weights.as_ptr(), values.as_ptr());
        for c in (0..hd).step_by(KEYS) {
            let mut acc = [[_mm256_setzero_ps(); 2]; QUERIES];
            for j in 0..used {
                // SAFETY: j · hd + c + KEYS <= used · hd <= values.len().
                let v =
                    std::array::from_fn(|n| unsafe { _mm256_loadu_ps(v.add(j * hd + c + 8 * n)) });
                // SAFETY: i · stride + j < weights.len() (asserted).
                let w = std::array::from_fn(|i| unsafe { *w.add(i * stride + j) });
                add_products(&mut acc, w, v);
            }
            store_block(&acc, out, hd, c);
        }
    }

    /// Sum of the 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    fn sum(v: __m256) -> f32 {
        let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_add_ss(v, _mm_shuffle_ps(v, v, 1)))
    }

    /// Values [`dot`] and [`axpy`] read as 8 f32 lanes at a time.
    pub(super) trait Load: super::Widen {
        /// The 8 values from `p` as f32.
        ///
        /// # Safety
        /// `p` must point to 8 readable values, on a CPU with AVX and F16C.
        unsafe fn load8(p: *const Self) -> __m256;
    }

    impl Load for f32 {
        #[inline(always)]
        unsafe fn load8(p: *const f32) -> __m256 {
            // SAFETY: the caller's contract.
            unsafe { _mm256_loadu_ps(p) }
        }
    }

    impl Load for f16 {
        #[inline(always)]
        unsafe fn load8(p: *const f16) -> __m256 {
            // SAFETY: the caller's contract.
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot<T: Load>(a: &[f32], b: &[T]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i + 16 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: i + 16 <= n bounds the 8 values read from each.
                let (a8, b8) = unsafe {
                    let a8 = _mm256_loadu_ps(a.as_ptr().add(i + 8 * j));
                    (a8, T::load8(b.as_ptr().add(i + 8 * j)))
                };
                *acc = _mm256_fmadd_ps(a8, b8, *acc);
            }
            i += 16;
        }
        let tail: f32 = (i..n).map(|i| a[i] * b[i].widen()).sum();
        sum(_mm256_add_ps(acc[0], acc[1])) + tail
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn axpy<T: Load>(a: f32, x: &[T], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let av = _mm256_set1_ps(a);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: i + 8 <= n bounds the 8 values read and written.
            unsafe {
                let x8 = T::load8(x.as_ptr().add(i));
                let y8 = _mm256_loadu_ps(y.as_ptr().add(i));
                _mm256_storeu_ps(y.as_mut_ptr().add(i), _mm256_fmadd_ps(av, x8, y8));
            }
            i += 8;
        }
        for i in i..n {
            y[i] += a * x[i].widen();
        }
    }
}

/// The block loops on 512-bit registers: up to 64 keys (scores) or 80 value
/// columns (weighted sums) of all [`QUERIES`] queries per pass. Every output
/// is the same chain of fused multiply-adds in the same order as in the AVX2
/// loops, so both give the same bits.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{avx2, Kernels, KEYS, QUERIES};
    use std::arch::x86_64::*;

    // SAFETY (all): only selected after detecting AVX2, FMA, F16C and AVX-512F.
    pub const KERNELS: Kernels = Kernels {
        dot: |a, b| unsafe { avx2::dot(a, b) },
        axpy: |a, x, y| unsafe { avx2::axpy(a, x, y) },
        dot_f16: |a, b| unsafe { avx2::dot(a, b) },
        axpy_f16: |a, x, y| unsafe { avx2::axpy(a, x, y) },
        block_scores: |q, k, stride, s| unsafe { block_scores(q, k, stride, s) },
        block_weighted_sum: |w, stride, v, o| unsafe { block_weighted_sum(w, stride, v, o) },
        softmax: |x| unsafe { softmax(x) },
        silu: |x| unsafe { silu(x) },
        widen: |src, dst| unsafe { avx2::widen(src, dst) },
    };

    #[target_feature(enable = "avx512f,avx2,fma")]
    fn softmax(x: &mut [f32]) {
        super::softmax::<true>(x)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    fn silu(x: &mut [f32]) {
        super::silu::<true>(x)
    }

    /// Lanes of one register.
    const LANES: usize = 16;

    /// [`super::block_scores`], 64 keys per pass while they last, then 16.
    #[target_feature(enable = "avx512f")]
    fn block_scores(queries: &[f32], keys_t: &[f32], stride: usize, scores: &mut [f32]) {
        let hd = queries.len() / QUERIES;
        let width = scores.len() / QUERIES;
        assert!(super::rows_fit(keys_t.len(), hd, stride, width) && width.is_multiple_of(KEYS));
        let mut j = 0;
        while j + 4 * LANES <= width {
            score_pass::<4>(queries, keys_t, stride, j, scores);
            j += 4 * LANES;
        }
        while j < width {
            score_pass::<1>(queries, keys_t, stride, j, scores);
            j += LANES;
        }
    }

    /// Scores of every query against keys `j..j + N · 16`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn score_pass<const N: usize>(
        queries: &[f32],
        keys_t: &[f32],
        stride: usize,
        j: usize,
        scores: &mut [f32],
    ) {
        let hd = queries.len() / QUERIES;
        let width = scores.len() / QUERIES;
        let mut acc = [[_mm512_setzero_ps(); N]; QUERIES];
        for d in 0..hd {
            // SAFETY: the caller checked that keys_t holds d · stride + j + N · 16 floats.
            let keys: [__m512; N] = std::array::from_fn(|n| unsafe {
                _mm512_loadu_ps(keys_t.as_ptr().add(d * stride + j + n * LANES))
            });
            for (i, acc) in acc.iter_mut().enumerate() {
                let q = _mm512_set1_ps(queries[i * hd + d]);
                for (a, &k) in acc.iter_mut().zip(&keys) {
                    *a = _mm512_fmadd_ps(q, k, *a);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            let row = &mut scores[i * width + j..][..N * LANES];
            for (n, &a) in acc.iter().enumerate() {
                // SAFETY: `row` holds N · 16 floats.
                unsafe { _mm512_storeu_ps(row.as_mut_ptr().add(n * LANES), a) };
            }
        }
    }

    /// [`super::block_weighted_sum`], up to 80 columns per pass.
    #[target_feature(enable = "avx512f")]
    fn block_weighted_sum(weights: &[f32], stride: usize, values: &[f32], out: &mut [f32]) {
        let hd = out.len() / QUERIES;
        let used = values.len() / hd.max(1);
        assert!(super::rows_fit(weights.len(), QUERIES, stride, used));
        for c in (0..hd).step_by(5 * LANES) {
            let columns = (hd - c).min(5 * LANES);
            let pass = match columns.div_ceil(LANES) {
                1 => sum_pass::<1>,
                2 => sum_pass::<2>,
                3 => sum_pass::<3>,
                4 => sum_pass::<4>,
                _ => sum_pass::<5>,
            };
            pass(weights, stride, values, c, columns, out);
        }
    }

    /// Weighted sums of value columns `c..c + columns` (`N` registers, the
    /// last one masked to what is left) for every query.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn sum_pass<const N: usize>(
        weights: &[f32],
        stride: usize,
        values: &[f32],
        c: usize,
        columns: usize,
        out: &mut [f32],
    ) {
        let hd = out.len() / QUERIES;
        let used = values.len() / hd;
        let mask = |n: usize| -> __mmask16 {
            let lanes = columns.saturating_sub(n * LANES).min(LANES);
            ((1u32 << lanes) - 1) as __mmask16
        };
        let mut acc = [[_mm512_setzero_ps(); N]; QUERIES];
        for j in 0..used {
            // SAFETY: the masks keep each load within row j's columns c..c + columns.
            let v: [__m512; N] = std::array::from_fn(|n| unsafe {
                _mm512_maskz_loadu_ps(mask(n), values.as_ptr().add(j * hd + c + n * LANES))
            });
            for (i, acc) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(weights[i * stride + j]);
                for (a, &v) in acc.iter_mut().zip(&v) {
                    *a = _mm512_fmadd_ps(w, v, *a);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            let row = &mut out[i * hd + c..][..columns];
            for (n, &a) in acc.iter().enumerate() {
                // SAFETY: the mask keeps the store within `row`.
                unsafe { _mm512_mask_storeu_ps(row.as_mut_ptr().add(n * LANES), mask(n), a) };
            }
        }
    }
}

/// The decode loops and widening on NEON (every aarch64 CPU has it), with
/// f16 cache rows widened by `fcvtl`, 4 values per instruction. The
/// portable loops compile to scalar bit arithmetic for f16 there (the
/// widening alone ~3 instructions per value, and the f16 dot product to
/// per-lane gathers), and attention reads the whole cache per decoded token.
/// The block loops, softmax and SiLU are the portable ones (fused).
#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{Kernels, Widen};
    use half::f16;
    use std::arch::aarch64::*;
    use std::arch::asm;

    // SAFETY (all): NEON is part of every aarch64 target.
    pub const KERNELS: Kernels = Kernels {
        dot: |a, b| unsafe { dot(a, b) },
        axpy: |a, x, y| unsafe { axpy(a, x, y) },
        dot_f16: |a, b| unsafe { dot(a, b) },
        axpy_f16: |a, x, y| unsafe { axpy(a, x, y) },
        widen: |src, dst| unsafe { widen(src, dst) },
        ..super::PORTABLE
    };

    /// Four f16 as f32, exactly (`fcvtl`; its intrinsic needs the unstable
    /// f16 type).
    #[inline(always)]
    fn widen4(h: uint16x4_t) -> float32x4_t {
        let f: float32x4_t;
        // SAFETY: NEON is part of aarch64; the instruction only touches these registers.
        unsafe {
            asm!(
                "fcvtl {f:v}.4s, {h:v}.4h",
                f = lateout(vreg) f,
                h = in(vreg) h,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        f
    }

    /// Values [`dot`] and [`axpy`] read as 4 f32 lanes at a time.
    trait Load: Widen {
        /// The 4 values from `p` as f32.
        ///
        /// # Safety
        /// `p` must point to 4 readable values.
        unsafe fn load4(p: *const Self) -> float32x4_t;
    }

    impl Load for f32 {
        #[inline(always)]
        unsafe fn load4(p: *const f32) -> float32x4_t {
            // SAFETY: the caller's contract.
            unsafe { vld1q_f32(p) }
        }
    }

    impl Load for f16 {
        #[inline(always)]
        unsafe fn load4(p: *const f16) -> float32x4_t {
            // SAFETY: the caller's contract.
            widen4(unsafe { vld1_u16(p.cast()) })
        }
    }

    /// [`Kernels::dot`]: four chains of 4 lanes, 16 values per step.
    #[target_feature(enable = "neon")]
    fn dot<T: Load>(a: &[f32], b: &[T]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: i + 16 <= n bounds the 4 values read from each.
                let (a4, b4) = unsafe {
                    let a4 = vld1q_f32(a.as_ptr().add(i + 4 * j));
                    (a4, T::load4(b.as_ptr().add(i + 4 * j)))
                };
                *acc = vfmaq_f32(*acc, a4, b4);
            }
            i += 16;
        }
        let tail: f32 = (i..n).map(|i| a[i] * b[i].widen()).sum();
        let acc = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
        vaddvq_f32(acc) + tail
    }

    /// [`Kernels::axpy`], 16 values per step.
    #[target_feature(enable = "neon")]
    fn axpy<T: Load>(a: f32, x: &[T], y: &mut [f32]) {
        let n = x.len().min(y.len());
        let mut i = 0;
        while i + 16 <= n {
            for j in (i..i + 16).step_by(4) {
                // SAFETY: j + 4 <= i + 16 <= n bounds the 4 values read and written.
                unsafe {
                    let x4 = T::load4(x.as_ptr().add(j));
                    let y4 = vld1q_f32(y.as_ptr().add(j));
                    vst1q_f32(y.as_mut_ptr().add(j), vfmaq_n_f32(y4, x4, a));
                }
            }
            i += 16;
        }
        for i in i..n {
            y[i] = a.mul_add(x[i].widen(), y[i]);
        }
    }

    /// [`Kernels::widen`], 8 values per step.
    #[target_feature(enable = "neon")]
    fn widen(src: &[f16], dst: &mut [f32]) {
        assert_eq!(src.len(), dst.len());
        let (chunks, tail) = src.as_chunks::<8>();
        let (out, out_tail) = dst.as_chunks_mut::<8>();
        for (h, f) in chunks.iter().zip(out) {
            // SAFETY: `h` holds 8 f16 (16 bytes) and `f` 8 f32.
            unsafe {
                let h = vld1q_u16(h.as_ptr().cast());
                vst1q_f32(f.as_mut_ptr(), widen4(vget_low_u16(h)));
                vst1q_f32(f.as_mut_ptr().add(4), widen4(vget_high_u16(h)));
            }
        }
        super::widen(tail, out_tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable kernels and every x86_64 set this CPU runs, or NEON's.
    fn all_kernels() -> Vec<&'static Kernels> {
        #[cfg_attr(
            not(any(target_arch = "x86_64", target_arch = "aarch64")),
            allow(unused_mut)
        )]
        let mut all = vec![&PORTABLE];
        #[cfg(target_arch = "aarch64")]
        all.push(&neon::KERNELS);
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            all.push(&avx2::KERNELS);
            if is_x86_feature_detected!("avx512f") {
                all.push(&avx512::KERNELS);
            }
        }
        all
    }

    /// A block of queries, keys transposed with a padded stride, weights and
    /// values for `used` positions.
    struct Block {
        hd: usize,
        width: usize,
        stride: usize,
        queries: Vec<f32>,
        keys: Vec<f32>,
        keys_t: Vec<f32>,
        weights: Vec<f32>,
        values: Vec<f32>,
    }

    impl Block {
        fn new(hd: usize, width: usize, used: usize) -> Block {
            let stride = width + 3;
            let wave = |len: usize, f: f32| (0..len).map(|i| (i as f32 * f).sin()).collect();
            let keys: Vec<f32> = wave(width * hd, 0.11); // [key][dim]
            let mut keys_t = vec![0.0; hd * stride];
            for (j, key) in keys.chunks_exact(hd).enumerate() {
                for (d, &k) in key.iter().enumerate() {
                    keys_t[d * stride + j] = k;
                }
            }
            Block {
                hd,
                width,
                stride,
                queries: wave(QUERIES * hd, 0.37),
                keys,
                keys_t,
                weights: wave(QUERIES * stride, 0.23),
                values: wave(used * hd, 0.71),
            }
        }

        /// (scores, weighted sums) from `k`'s block kernels.
        fn run(&self, k: &Kernels) -> (Vec<f32>, Vec<f32>) {
            let mut scores = vec![f32::NAN; QUERIES * self.width];
            (k.block_scores)(&self.queries, &self.keys_t, self.stride, &mut scores);
            let mut out = vec![f32::NAN; QUERIES * self.hd];
            (k.block_weighted_sum)(&self.weights, self.stride, &self.values, &mut out);
            (scores, out)
        }
    }

    /// Head widths and key counts that reach every pass shape of the
    /// kernels: whole and partial register blocks of keys and columns.
    const SHAPES: [(usize, usize); 4] = [(20, 2 * KEYS), (80, 6 * KEYS), (96, 5 * KEYS), (8, KEYS)];

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
        for (hd, width) in SHAPES {
            let used = width - 5;
            let block = Block::new(hd, width, used);
            for k in all_kernels() {
                let (scores, out) = block.run(k);
                for (i, q) in block.queries.chunks_exact(hd).enumerate() {
                    for (j, key) in block.keys.chunks_exact(hd).enumerate() {
                        let want = (k.dot)(q, key);
                        let got = scores[i * width + j];
                        assert!((got - want).abs() < 1e-6 * hd as f32, "{got} vs {want}");
                    }
                    let mut want = vec![0.0; hd];
                    for (j, v) in block.values.chunks_exact(hd).enumerate() {
                        (k.axpy)(block.weights[i * block.stride + j], v, &mut want);
                    }
                    // Rounding grows with the terms summed (`axpy` may not fuse).
                    for (o, w) in out[i * hd..][..hd].iter().zip(&want) {
                        assert!((o - w).abs() < 1e-6 * used as f32, "{o} vs {w}");
                    }
                }
            }
        }
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn block_kernels_refuse_strides_that_overflow() {
        // 3 · stride wraps to 2 in 64 bits: a plain product passes the check
        // (and panics on its own overflow only where overflow checks are on).
        let stride: usize = 0x5555_5555_5555_5556;
        assert!(3usize.wrapping_mul(stride) + 4 <= 64);
        assert!(!rows_fit(64, 4, stride, 4));
        assert!(rows_fit(64, 4, 16, 16) && !rows_fit(63, 4, 16, 16));
        for k in all_kernels() {
            let scores = std::panic::catch_unwind(|| {
                (k.block_scores)(&[1.0; 16], &[1.0; 32], stride, &mut [0.0; 64])
            });
            assert!(scores.is_err());
            let sums = std::panic::catch_unwind(|| {
                (k.block_weighted_sum)(&[1.0; 32], stride, &[1.0; 64], &mut [0.0; 64])
            });
            assert!(sums.is_err());
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_block_kernels_give_the_generic_loops_bits() {
        if !is_x86_feature_detected!("avx2") || !is_x86_feature_detected!("fma") {
            return;
        }
        /// The generic loops, compiled for AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        fn generic(block: &Block) -> (Vec<f32>, Vec<f32>) {
            let mut scores = vec![f32::NAN; QUERIES * block.width];
            block_scores::<true>(&block.queries, &block.keys_t, block.stride, &mut scores);
            let mut out = vec![f32::NAN; QUERIES * block.hd];
            block_weighted_sum::<true>(&block.weights, block.stride, &block.values, &mut out);
            (scores, out)
        }
        for (hd, width) in SHAPES {
            let block = Block::new(hd, width, width - 5);
            // SAFETY: AVX2 and FMA are present.
            let want = unsafe { generic(&block) };
            assert_eq!(block.run(&avx2::KERNELS), want, "hd {hd}");
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx512_block_kernels_give_the_avx2_bits() {
        if !is_x86_feature_detected!("avx512f") || !is_x86_feature_detected!("fma") {
            return;
        }
        for (hd, width) in SHAPES {
            let block = Block::new(hd, width, width - 5);
            assert_eq!(
                block.run(&avx2::KERNELS),
                block.run(&avx512::KERNELS),
                "hd {hd}"
            );
        }
    }

    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        for i in -87_000..88_000 {
            let x = i as f32 * 1e-3 + 0.000_37;
            let want = (x as f64).exp();
            for got in [exp::<false>(x), exp::<true>(x)] {
                let ulps =
                    (got as f64 - want).abs() / (want as f32).abs() as f64 / f32::EPSILON as f64;
                assert!(ulps <= 2.0, "exp({x}) = {got}, want {want} ({ulps} ulp)");
            }
        }
        assert_eq!(exp::<true>(0.0), 1.0);
        assert!(exp::<true>(-1e4) < 1e-37 && exp::<true>(1e4).is_finite());
        assert!(exp::<true>(f32::NAN).is_nan());
    }

    /// Scores over a wide range, `len` long.
    fn scores(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (i as f32 * 0.77).sin() * 30.0 - i as f32 * 0.01)
            .collect()
    }

    #[test]
    fn softmax_matches_f64_with_and_without_tails() {
        for k in all_kernels() {
            for len in [1, 5, 16, 37, 256, 513] {
                let mut x = scores(len);
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
                let want: Vec<f64> = x.iter().map(|&v| (v as f64 - max).exp() / sum).collect();
                (k.softmax)(&mut x);
                for (g, w) in x.iter().zip(&want) {
                    assert!((*g as f64 - w).abs() < 1e-6 * w.max(1e-3), "{g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn softmax_spreads_nan() {
        for k in all_kernels() {
            let mut x = scores(40);
            x[33] = f32::NAN;
            (k.softmax)(&mut x);
            assert!(x.iter().all(|v| v.is_nan()));
        }
    }

    #[test]
    fn silu_matches_f64() {
        for k in all_kernels() {
            let mut y: Vec<f32> = (0..70).map(|i| (i as f32 - 35.0) * 0.9).collect();
            let want: Vec<f64> = y
                .iter()
                .map(|&g| g as f64 / (1.0 + (-g as f64).exp()))
                .collect();
            (k.silu)(&mut y);
            for (g, w) in y.iter().zip(&want) {
                assert!(
                    (*g as f64 - w).abs() < 1e-6 * w.abs().max(1e-6),
                    "{g} vs {w}"
                );
            }
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx512_softmax_and_silu_give_the_avx2_bits() {
        if !is_x86_feature_detected!("avx512f") || !is_x86_feature_detected!("fma") {
            return;
        }
        let run = |k: &Kernels| {
            let mut x = scores(300);
            (k.softmax)(&mut x);
            let mut y = scores(300);
            (k.silu)(&mut y);
            (x, y)
        };
        assert_eq!(run(&avx2::KERNELS), run(&avx512::KERNELS));
    }

    #[test]
    fn widen_is_exact_for_every_f16() {
        let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        for k in all_kernels() {
            // Odd lengths: whole vectors and a tail.
            for len in [all.len(), 13] {
                let mut out = vec![0.0f32; len];
                (k.widen)(&all[..len], &mut out);
                for (&h, &f) in all.iter().zip(&out) {
                    let want = h.to_f32();
                    assert!(
                        f.to_bits() == want.to_bits() || (f.is_nan() && want.is_nan()),
                        "{:#06x}: {f} vs {want}",
                        h.to_bits()
                    );
                }
            }
        }
    }

    #[test]
    fn f16_dot_and_axpy_equal_widening_first() {
        for k in all_kernels() {
            for len in [5, 16, 80, 83] {
                let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.3).cos()).collect();
                let b: Vec<f16> = (0..len)
                    .map(|i| f16::from_f32((i as f32 * 0.7).sin()))
                    .collect();
                let mut wide = vec![0.0; len];
                (k.widen)(&b, &mut wide);
                assert_eq!((k.dot_f16)(&a, &b), (k.dot)(&a, &wide), "{len}");
                let (mut y, mut want) = (a.clone(), a.clone());
                (k.axpy_f16)(0.5, &b, &mut y);
                (k.axpy)(0.5, &wide, &mut want);
                assert_eq!(y, want, "{len}");
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
