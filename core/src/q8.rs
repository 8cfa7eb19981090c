//! Integer dot products for the int8 matmul: activations quantized to int8 in
//! blocks of [`BLOCK`] values with one f32 scale per block (llama.cpp's Q8_0
//! layout), multiplied with int8 weight rows in integer arithmetic.
//!
//! Every kernel computes, for a weight row `w` and an activation row `x`, the
//! same number: the exact integer dot product `d_b` of each block `b` (the last
//! one may be partial), folded in block order as `acc = fma(d_b, scale_b, acc)`
//! from `acc = 0` (the weight's own scale is applied by the caller). The blocks
//! are exact and the fold is the same fused operation in the same order, so
//! every kernel — decode tiles, prefill tiles, AMX ([`crate::amx`]) — gives
//! bit-identical results, and the result never depends on how rows are grouped.
//!
//! Versions, picked at run time:
//! - AVX-VNNI (VEX) or AVX512-VNNI (EVEX: 256-bit decode tiles, 512-bit
//!   prefill panels): `vpdpbusd` multiplies unsigned by signed bytes, so
//!   weights are offset to `w + 128` and each block's sum starts at
//!   `-128 · Σ x` ([`Q8Row::offsets`]), exact in integers;
//! - AVX2: `vpmaddubsw` on `|w|` and `x` carrying `w`'s sign (exact: both
//!   are within ±127, so the 16-bit pair sums cannot saturate);
//! - aarch64 with the dot-product extension: `sdot` multiplies signed by
//!   signed bytes, so no offset is needed (inline `asm!`: its intrinsic is not
//!   stable yet); with the int8 matrix-multiply extension too (i8mm), prefill
//!   panels on `smmla`, which multiplies two activation rows by two weight
//!   rows at once;
//! - portable code elsewhere (auto-vectorized, e.g. plain NEON on aarch64).

use std::sync::OnceLock;

/// Activation values per quantization block.
pub const BLOCK: usize = 32;

/// Rows of activations quantized to int8, one scale per block of [`BLOCK`].
pub struct Q8Rows {
    /// Kept rather than divided out of `values.len()`: the kernels ask per
    /// few rows, and an integer division costs more than the rest of that.
    rows: usize,
    cols: usize,
    values: Vec<i8>,
    scales: Vec<f32>,
    offsets: Vec<i32>,
}

/// One quantized activation row, as the kernels read it.
#[derive(Clone, Copy)]
pub struct Q8Row<'a> {
    /// `cols` int8 values.
    pub values: &'a [i8],
    /// One scale per block (the last block may be partial).
    pub scales: &'a [f32],
    /// Per block, `-128 ·` the sum of its int8 values: where the VNNI kernels,
    /// which multiply by `w + 128`, start the block's sum.
    pub offsets: &'a [i32],
}

/// Quantizes one block of at most [`BLOCK`] values into `qs`: `scale = max|x| / 127`
/// (returned) and `q = round(x / scale)`. Every quantization path calls this,
/// so all of them give the same int8 values.
#[inline(always)]
pub fn quantize_block(xs: &[f32], qs: &mut [i8]) -> f32 {
    // max |x| as the largest bit pattern without the sign (the same order for
    // non-negative floats), which vectorizes.
    let max_bits = xs.iter().map(|v| v.to_bits() & 0x7fff_ffff).max();
    let scale = f32::from_bits(max_bits.unwrap_or(0)) / 127.0;
    let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    for (q, &v) in qs.iter_mut().zip(xs) {
        // NaN (from non-finite inputs) becomes 0, as `as` would, but as a
        // select, so the loop vectorizes.
        let r = (v * inverse).round();
        let r = if r.is_nan() {
            0.0
        } else {
            r.clamp(-127.0, 127.0)
        };
        // SAFETY: `r` is an integer within ±127.
        *q = unsafe { r.to_int_unchecked::<i32>() } as i8;
    }
    scale
}

/// [`quantize_block`], returning the scale and the block's offset (`-128 ·`
/// the sum of its int8 values).
#[inline(always)]
fn quantize_with_offset(xs: &[f32], qs: &mut [i8]) -> (f32, i32) {
    let scale = quantize_block(xs, qs);
    (scale, -128 * qs.iter().map(|&q| q as i32).sum::<i32>())
}

impl Q8Rows {
    /// Quantizes a row-major `[rows, cols]` matrix: per block, `scale = max|x| / 127`
    /// and `q = round(x / scale)`.
    pub fn quantize(x: &[f32], cols: usize) -> Q8Rows {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is present.
            return unsafe { x86::quantize_avx512(x, cols) };
        }
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present.
            return unsafe { x86::quantize(x, cols) };
        }
        Self::quantize_portable(x, cols)
    }

    /// [`Q8Rows::quantize`] for any CPU: the same values on every path
    /// (rounding and saturating casts are exact operations).
    #[inline(always)]
    fn quantize_portable(x: &[f32], cols: usize) -> Q8Rows {
        Self::quantize_with(x, cols, |xs, qs| quantize_with_offset(xs, qs))
    }

    /// [`Q8Rows::quantize`] with `whole` quantizing each whole block (and
    /// returning its scale and offset) and [`quantize_block`] a trailing
    /// partial one.
    #[inline(always)]
    fn quantize_with(
        x: &[f32],
        cols: usize,
        whole: impl Fn(&[f32; BLOCK], &mut [i8; BLOCK]) -> (f32, i32),
    ) -> Q8Rows {
        let blocks = cols.div_ceil(BLOCK);
        let rows = x.len() / cols.max(1);
        let mut values = vec![0i8; rows * cols];
        let mut scales = vec![0.0f32; rows * blocks];
        let mut offsets = vec![0i32; rows * blocks];
        for (t, row) in x.chunks_exact(cols.max(1)).enumerate() {
            let q_row = &mut values[t * cols..][..cols];
            let scales = &mut scales[t * blocks..][..blocks];
            let offsets = &mut offsets[t * blocks..][..blocks];
            let (xs_whole, xs_tail) = row.as_chunks::<BLOCK>();
            let (qs_whole, qs_tail) = q_row.as_chunks_mut::<BLOCK>();
            for (b, (xs, qs)) in xs_whole.iter().zip(qs_whole).enumerate() {
                (scales[b], offsets[b]) = whole(xs, qs);
            }
            if !xs_tail.is_empty() {
                (scales[blocks - 1], offsets[blocks - 1]) = quantize_with_offset(xs_tail, qs_tail);
            }
        }
        Q8Rows {
            rows,
            cols,
            values,
            scales,
            offsets,
        }
    }

    /// The rows of `parts`, in order, as one matrix (their widths must agree).
    pub fn concat(parts: Vec<Q8Rows>) -> Q8Rows {
        let cols = parts.first().map_or(0, |part| part.cols);
        assert!(parts.iter().all(|part| part.cols == cols), "widths differ");
        let mut all = Q8Rows {
            rows: parts.iter().map(|part| part.rows).sum(),
            cols,
            values: Vec::with_capacity(parts.iter().map(|part| part.values.len()).sum()),
            scales: Vec::with_capacity(parts.iter().map(|part| part.scales.len()).sum()),
            offsets: Vec::with_capacity(parts.iter().map(|part| part.offsets.len()).sum()),
        };
        for part in parts {
            all.values.extend_from_slice(&part.values);
            all.scales.extend_from_slice(&part.scales);
            all.offsets.extend_from_slice(&part.offsets);
        }
        all
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `t`.
    #[inline]
    pub fn row(&self, t: usize) -> Q8Row<'_> {
        let blocks = self.cols.div_ceil(BLOCK);
        Q8Row {
            values: &self.values[t * self.cols..][..self.cols],
            scales: &self.scales[t * blocks..][..blocks],
            offsets: &self.offsets[t * blocks..][..blocks],
        }
    }
}

/// `out[j]` = the block-scaled dot product of weight row `j` and the
/// activation row; the third argument is the weight bytes to prefetch
/// meanwhile (`prefetch_ahead`).
pub type Tile = fn(&[&[i8]; 8], Q8Row, &[i8]) -> [f32; 8];

/// Weight rows of a [`Panel`].
pub const PANEL_ROWS: usize = 16;

/// Activation rows a [`Panel`] kernel multiplies at a time.
pub const PANEL_TOKENS: usize = 4;

/// The block-scaled dot products of every weight row with every activation
/// row, given the weight rows and their full blocks as the kernel set's
/// [`Pack`] packed them, handed to a [`PanelOut`] as they are computed. The
/// kernels take the activation rows [`PANEL_TOKENS`] (or twice that) at a
/// time; a vector of packed weights holds 4 columns of 8 or 16 rows, so they
/// multiply by broadcast activations and need no horizontal sums.
pub type Panel = fn(&[&[i8]; PANEL_ROWS], &[i8], &Q8Rows, PanelOut);

/// Receives a [`Panel`]'s results in order of activation rows, a few rows
/// at a time: `(t, sums)` with `sums[e][j]` the result of activation row
/// `t + e` and weight row `j`. Writing them out as they come keeps them in
/// L1 and lets the stores overlap the next rows' arithmetic.
pub type PanelOut<'a> = &'a mut dyn FnMut(usize, &[[f32; PANEL_ROWS]]);

/// Packs the full blocks of a [`Panel`]'s weight rows into the buffer, as
/// that panel reads them.
pub type Pack = fn(&[&[i8]; PANEL_ROWS], &mut Vec<i8>);

/// Packs the full blocks of the weight rows: per group of 4 columns, each
/// row's 4 values in turn (64 bytes), each byte XORed with `flip`.
#[inline(always)]
fn pack_panel(rows: &[&[i8]; PANEL_ROWS], packed: &mut Vec<i8>, flip: u8) {
    size_panel(rows, packed);
    pack_groups(rows, packed, flip, 0);
}

/// Sizes `packed` for the full blocks of the weight rows; every byte is then
/// written by the packing, so only the length matters (no zero-filling).
#[inline(always)]
fn size_panel(rows: &[&[i8]; PANEL_ROWS], packed: &mut Vec<i8>) {
    packed.resize(PANEL_ROWS * (rows[0].len() / BLOCK * BLOCK), 0);
}

/// [`pack_panel`]'s work from group `from` of 4 columns on, into a buffer
/// [`size_panel`] sized.
#[inline(always)]
fn pack_groups(rows: &[&[i8]; PANEL_ROWS], packed: &mut [i8], flip: u8, from: usize) {
    let flip = u32::from_ne_bytes([flip; 4]);
    let groups = packed
        .chunks_exact_mut(4 * PANEL_ROWS)
        .enumerate()
        .skip(from);
    for (k, group) in groups {
        for (quad, row) in group.chunks_exact_mut(4).zip(rows) {
            let four: [i8; 4] = row[4 * k..][..4].try_into().expect("4 bytes");
            let four = u32::from_ne_bytes(four.map(|b| b as u8)) ^ flip;
            quad.copy_from_slice(&four.to_ne_bytes().map(|b| b as i8));
        }
    }
}

/// [`pack_panel`] as the weights are: for kernels that multiply signed bytes.
fn pack_signed(rows: &[&[i8]; PANEL_ROWS], packed: &mut Vec<i8>) {
    pack_panel(rows, packed, 0)
}

/// Asks the CPU to bring `bytes` into its caches (one hint per 64-byte line),
/// so a later read finds them there; a no-op where there is no hint.
pub fn prefetch(bytes: &[i8]) {
    for line in bytes.chunks(64) {
        prefetch_line(line.as_ptr());
    }
}

/// Asks the CPU to bring the cache line holding `at` into L1. Any address
/// will do: a prefetch hint never faults.
#[inline(always)]
fn prefetch_line(at: *const i8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch hint has no architectural effect, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(at.cast())
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above; `prfm` only hints.
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) at, options(nostack, preserves_flags, readonly))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = at;
}

/// Decode streams the weights once: while a tile multiplies block `b` of
/// its 8 rows (256 bytes), ask for the same amount of `ahead`, the weights
/// its caller reads some distance later, in address order (8 lines at every
/// other block), so the prefetches keep pace with the reads.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn prefetch_ahead(ahead: &[i8], b: usize) {
    if b.is_multiple_of(2) {
        let from = 8 * BLOCK * b;
        for line in (from..ahead.len().min(from + 16 * BLOCK)).step_by(64) {
            prefetch_line(ahead.as_ptr().wrapping_add(line));
        }
    }
}

/// The int8 kernels, as the fastest versions this CPU runs.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// Which instructions they use (`avx2`, `sdot`, ...), for reports.
    pub name: &'static str,
    /// Eight weight rows by one activation row (decode), prefetching the
    /// given weight bytes as it goes.
    pub w8x1: Tile,
    /// [`PANEL_ROWS`] packed weight rows by every activation row (prefill).
    pub panel: Panel,
    /// Packs weight rows for `panel`.
    pub pack: Pack,
}

/// The kernels for this CPU (the first of [`kernel_sets`]), detected once.
pub fn kernels() -> &'static Kernels {
    static KERNELS: OnceLock<&'static Kernels> = OnceLock::new();
    KERNELS.get_or_init(|| kernel_sets()[0])
}

/// Every kernel set this CPU runs, the preferred first, the portable one last.
/// All compute the same numbers; benchmarks and tests compare them.
pub fn kernel_sets() -> Vec<&'static Kernels> {
    #[allow(unused_mut)]
    let mut sets = Vec::new();
    #[cfg(target_arch = "x86_64")]
    sets.extend(x86::available());
    #[cfg(target_arch = "aarch64")]
    sets.extend(arm::available());
    sets.push(&PORTABLE);
    sets
}

const PORTABLE: Kernels = Kernels {
    name: "portable",
    w8x1: portable_tile,
    panel: portable_panel,
    pack: pack_signed,
};

/// `Σ w[i]·x[i]` in exact integer arithmetic.
fn int_dot(w: &[i8], x: &[i8]) -> i32 {
    w.iter().zip(x).map(|(&a, &b)| a as i32 * b as i32).sum()
}

/// The fold every kernel computes, for one pair of rows, in plain Rust.
pub fn block_dot(w: &[i8], x: Q8Row) -> f32 {
    w.chunks(BLOCK)
        .zip(x.values.chunks(BLOCK))
        .zip(x.scales)
        .fold(0.0, |acc, ((w, q), &scale)| {
            (int_dot(w, q) as f32).mul_add(scale, acc)
        })
}

/// A SIMD tile's number of full blocks, after checking that every weight
/// row, and the activation row's scales and offsets, match the activation
/// row's length: the kernels read whole blocks without bounds checks.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn tile_shape(w: &[&[i8]; 8], x: Q8Row) -> usize {
    let cols = x.values.len();
    assert!(w.iter().all(|w| w.len() == cols));
    assert!(x.scales.len() == cols.div_ceil(BLOCK) && x.offsets.len() == x.scales.len());
    cols / BLOCK
}

/// A panel's number of full blocks, after checking that every weight row has
/// the activations' length and that `packed` holds their full blocks: the
/// kernels read whole blocks without bounds checks.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn panel_shape(w: &[&[i8]; PANEL_ROWS], packed: &[i8], x: &Q8Rows) -> usize {
    let full = x.cols / BLOCK;
    assert!(w.iter().all(|w| w.len() == x.cols));
    assert_eq!(
        packed.len(),
        PANEL_ROWS * full * BLOCK,
        "not packed by the kernels' Pack"
    );
    full
}

/// Where activation rows `t..t + N` start (the last row repeated past the
/// end), for kernels that read whole blocks of them without bounds checks
/// ([`panel_shape`] checked the lengths).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
struct PanelRows<const N: usize> {
    values: [*const i8; N],
    scales: [*const f32; N],
    /// For the VNNI kernels' offset weights.
    #[cfg(target_arch = "x86_64")]
    offsets: [*const i32; N],
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn panel_rows<const N: usize>(x: &Q8Rows, t: usize) -> PanelRows<N> {
    let (blocks, last) = (x.cols.div_ceil(BLOCK), x.rows - 1);
    let row = |e: usize| (t + e).min(last);
    PanelRows {
        values: std::array::from_fn(|e| x.values[row(e) * x.cols..].as_ptr()),
        scales: std::array::from_fn(|e| x.scales[row(e) * blocks..].as_ptr()),
        #[cfg(target_arch = "x86_64")]
        offsets: std::array::from_fn(|e| x.offsets[row(e) * blocks..].as_ptr()),
    }
}

/// `acc`, the fold of the first `full` blocks of `w` and `x`, with the fold's
/// last step for a trailing partial block added.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn tail_step(acc: f32, w: &[i8], x: Q8Row, full: usize) -> f32 {
    let tail = full * BLOCK;
    if tail < w.len() {
        let d = int_dot(&w[tail..], &x.values[tail..]) as f32;
        d.mul_add(x.scales[full], acc)
    } else {
        acc
    }
}

/// `N` weight rows' results with one activation row from the folds of
/// their full blocks, with [`tail_step`] added.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn with_tail<const N: usize>(acc: [f32; N], w: &[&[i8]; N], x: Q8Row, full: usize) -> [f32; N] {
    if full * BLOCK == w[0].len() {
        return acc;
    }
    std::array::from_fn(|j| tail_step(acc[j], w[j], x, full))
}

/// Hands activation rows `t..`'s results to `out` (rows past the last one
/// dropped), from the folds of their full blocks with [`with_tail`] added.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline]
fn finish_panel<const N: usize>(
    mut sums: [[f32; PANEL_ROWS]; N],
    w: &[&[i8]; PANEL_ROWS],
    x: &Q8Rows,
    t: usize,
    full: usize,
    out: PanelOut,
) {
    let sums = &mut sums[..N.min(x.rows() - t)];
    if full * BLOCK < x.cols {
        for (e, sums) in sums.iter_mut().enumerate() {
            *sums = with_tail(*sums, w, x.row(t + e), full);
        }
    }
    out(t, sums);
}

/// The portable tile leaves prefetching to the hardware.
fn portable_tile(w: &[&[i8]; 8], x: Q8Row, _ahead: &[i8]) -> [f32; 8] {
    std::array::from_fn(|j| block_dot(w[j], x))
}

fn portable_panel(w: &[&[i8]; PANEL_ROWS], _packed: &[i8], x: &Q8Rows, out: PanelOut) {
    for t in 0..x.rows() {
        out(t, &[std::array::from_fn(|j| block_dot(w[j], x.row(t)))]);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{
        finish_panel, pack_groups, panel_rows, panel_shape, prefetch_ahead, size_panel, tile_shape,
        with_tail, Kernels, PanelOut, Q8Row, Q8Rows, BLOCK, PANEL_ROWS, PANEL_TOKENS,
    };
    use std::arch::x86_64::*;

    /// Defines a decode tile kernel (eight weight rows by one activation row)
    /// for one instruction set: `$prepare` turns 32 weight bytes into the form
    /// `$dot` takes; `$dot(acc, w, x)` adds eight i32 partial sums of `Σ w·x`
    /// (of `Σ (w + 128)·x` when `$offset`) to `acc`. Weight row `j` lives in
    /// lane `j` of the accumulator.
    macro_rules! tile {
        ($name:ident, $features:literal, $prepare:ident, $dot:ident, $offset:literal) => {
            #[target_feature(enable = $features)]
            fn $name(w: &[&[i8]; 8], x: Q8Row, ahead: &[i8]) -> [f32; 8] {
                let full = tile_shape(w, x);
                let mut acc = _mm256_setzero_ps();
                for b in 0..full {
                    prefetch_ahead(ahead, b);
                    // SAFETY: (b + 1)·BLOCK <= cols = x.values.len().
                    let xv = unsafe { _mm256_loadu_si256(x.values.as_ptr().add(b * BLOCK).cast()) };
                    // (A loop, not a closure: closures do not inherit the
                    // function's target features, so the intrinsics would
                    // not inline.)
                    let mut dots = [_mm256_setzero_si256(); 8];
                    for (dot, row) in dots.iter_mut().zip(w) {
                        // SAFETY: as above, for every weight row.
                        let raw = unsafe { _mm256_loadu_si256(row.as_ptr().add(b * BLOCK).cast()) };
                        *dot = $dot(*dot, $prepare(raw), xv);
                    }
                    let mut d = reduce8(dots);
                    if $offset {
                        d = _mm256_add_epi32(d, _mm256_set1_epi32(x.offsets[b]));
                    }
                    let scale = _mm256_set1_ps(x.scales[b]);
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), scale, acc);
                }
                let mut sums = [0.0f32; 8];
                // SAFETY: `sums` holds eight f32.
                unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), acc) };
                with_tail(sums, w, x, full)
            }
        };
    }

    /// Defines a [`Panel`] kernel on 256-bit vectors for one instruction set,
    /// with `$dot` and `$offset` as for [`tile!`] (the weights come packed as
    /// `$dot` takes them): a vector of packed weights holds 4 columns of 8
    /// rows (half of each 64-byte group), multiplied by an activation row's 4
    /// values at those columns broadcast to every lane, so lane `j` sums row
    /// `j` of that half. `$two_chains` where `$dot` adds to its destination
    /// with a long latency: a second set of sums for odd groups of 4 columns
    /// keeps two dependency chains in flight. Without it (sums that only see
    /// 1-cycle adds) AVX2's 16 registers hold the loop with no spills:
    /// measured 25% faster there than with two chains.
    macro_rules! panel {
        ($name:ident, $features:literal, $dot:ident, $offset:literal, $two_chains:literal) => {
            #[target_feature(enable = $features)]
            fn $name(w: &[&[i8]; PANEL_ROWS], packed: &[i8], x: &Q8Rows, out: PanelOut) {
                let full = panel_shape(w, packed, x);
                for t in (0..x.rows()).step_by(PANEL_TOKENS) {
                    let rows = panel_rows::<PANEL_TOKENS>(x, t);
                    let mut sums = [[0.0f32; PANEL_ROWS]; PANEL_TOKENS];
                    for half in 0..2 {
                        let mut acc = [_mm256_setzero_ps(); PANEL_TOKENS];
                        for b in 0..full {
                            let mut dots = [_mm256_setzero_si256(); PANEL_TOKENS];
                            if $offset {
                                for (dots, offsets) in dots.iter_mut().zip(&rows.offsets) {
                                    // SAFETY: b < full <= the row's number of blocks.
                                    *dots = _mm256_set1_epi32(unsafe { *offsets.add(b) });
                                }
                            }
                            let mut odd = [_mm256_setzero_si256(); PANEL_TOKENS];
                            for q in 0..BLOCK / 4 {
                                let k = b * BLOCK + 4 * q;
                                let dots = if $two_chains && q % 2 == 1 {
                                    &mut odd
                                } else {
                                    &mut dots
                                };
                                // SAFETY: k + 4 <= full·BLOCK, and `packed` holds
                                // PANEL_ROWS bytes per column of the full blocks
                                // (panel_shape).
                                let wv = unsafe {
                                    _mm256_loadu_si256(
                                        packed.as_ptr().add(PANEL_ROWS * k + 32 * half).cast(),
                                    )
                                };
                                for (dots, &x) in dots.iter_mut().zip(&rows.values) {
                                    // SAFETY: k + 4 <= full·BLOCK <= the row's length.
                                    let four = unsafe { x.add(k).cast::<i32>().read_unaligned() };
                                    *dots = $dot(*dots, wv, _mm256_set1_epi32(four));
                                }
                            }
                            for (t, (acc, (dots, odd))) in
                                acc.iter_mut().zip(dots.into_iter().zip(odd)).enumerate()
                            {
                                let dots = _mm256_add_epi32(dots, odd);
                                // SAFETY: b < full <= the row's number of blocks.
                                let scale = _mm256_set1_ps(unsafe { *rows.scales[t].add(b) });
                                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots), scale, *acc);
                            }
                        }
                        for (sums, acc) in sums.iter_mut().zip(acc) {
                            // SAFETY: each `sums` row holds 8 f32 from 8·half.
                            unsafe { _mm256_storeu_ps(sums.as_mut_ptr().add(8 * half), acc) };
                        }
                    }
                    finish_panel(sums, w, x, t, full, out);
                }
            }
        };
    }
    panel!(avx_vnni_panel, "avx2,fma,avxvnni", dot_avx_vnni, true, true);
    panel!(avx2_panel, "avx2,fma", dot_avx2, false, false);

    /// Activation rows [`avx512_vnni_panel`] multiplies at a time: with
    /// 32 vector registers, twice [`PANEL_TOKENS`] keep 16 chains of
    /// `vpdpbusd` in flight (measured 10-15% faster than 4 rows).
    const WIDE_TOKENS: usize = 2 * PANEL_TOKENS;

    /// The [`Panel`] on 512-bit `vpdpbusd`: a vector holds 4 columns of all 16
    /// packed (offset) weight rows, as in [`panel!`] with twice the width,
    /// [`WIDE_TOKENS`] activation rows at a time.
    #[target_feature(enable = "avx2,fma,avx512f,avx512vnni")]
    fn avx512_vnni_panel(w: &[&[i8]; PANEL_ROWS], packed: &[i8], x: &Q8Rows, out: PanelOut) {
        let full = panel_shape(w, packed, x);
        for t in (0..x.rows()).step_by(WIDE_TOKENS) {
            let rows = panel_rows::<WIDE_TOKENS>(x, t);
            let mut acc = [_mm512_setzero_ps(); WIDE_TOKENS];
            for b in 0..full {
                let mut dots = [_mm512_setzero_si512(); WIDE_TOKENS];
                for (dots, offsets) in dots.iter_mut().zip(&rows.offsets) {
                    // SAFETY: b < full <= the row's number of blocks.
                    *dots = _mm512_set1_epi32(unsafe { *offsets.add(b) });
                }
                // Two dependency chains per activation row, as in `panel!`.
                let mut odd = [_mm512_setzero_si512(); WIDE_TOKENS];
                for q in 0..BLOCK / 4 {
                    let k = b * BLOCK + 4 * q;
                    let dots = if q % 2 == 0 { &mut dots } else { &mut odd };
                    // SAFETY: k + 4 <= full·BLOCK, and `packed` holds
                    // PANEL_ROWS bytes per column of the full blocks (panel_shape).
                    let wv =
                        unsafe { _mm512_loadu_si512(packed.as_ptr().add(PANEL_ROWS * k).cast()) };
                    for (dots, &x) in dots.iter_mut().zip(&rows.values) {
                        // SAFETY: k + 4 <= full·BLOCK <= the row's length.
                        let four = unsafe { x.add(k).cast::<i32>().read_unaligned() };
                        *dots = _mm512_dpbusd_epi32(*dots, wv, _mm512_set1_epi32(four));
                    }
                }
                for (t, (acc, (dots, odd))) in
                    acc.iter_mut().zip(dots.into_iter().zip(odd)).enumerate()
                {
                    let dots = _mm512_add_epi32(dots, odd);
                    // SAFETY: b < full <= the row's number of blocks.
                    let scale = _mm512_set1_ps(unsafe { *rows.scales[t].add(b) });
                    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dots), scale, *acc);
                }
            }
            let mut sums = [[0.0f32; PANEL_ROWS]; WIDE_TOKENS];
            for (sums, acc) in sums.iter_mut().zip(acc) {
                // SAFETY: `sums` rows hold 16 f32.
                unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), acc) };
            }
            finish_panel(sums, w, x, t, full, out);
        }
    }

    /// Within each 128-bit lane of the `$n` vectors `$r` (one row of four-byte
    /// values each), 4 × 4 transposes of rows 4i..4i + 4: vector 4i + e of the
    /// result holds, in each lane L, value 4L + e of those four rows. The
    /// intrinsics are the vector width's 32- and 64-bit unpacks.
    macro_rules! lane_transposes {
        ($r:expr, $n:literal, $lo32:ident, $hi32:ident, $lo64:ident, $hi64:ident) => {{
            let r = $r;
            let t: [_; $n] = std::array::from_fn(|j| {
                let (a, b) = (r[j & !1], r[j | 1]);
                if j % 2 == 0 {
                    $lo32(a, b)
                } else {
                    $hi32(a, b)
                }
            });
            let u: [_; $n] = std::array::from_fn(|j| {
                let (i, e) = (j / 4, j % 4);
                let (a, b) = (t[4 * i + e / 2], t[4 * i + e / 2 + 2]);
                if e % 2 == 0 {
                    $lo64(a, b)
                } else {
                    $hi64(a, b)
                }
            });
            u
        }};
    }

    /// [`pack_panel`] with 256-bit vectors: per half of the rows, 8 groups of
    /// 4 columns (one block, so the full blocks are whole chunks) at a time
    /// as a transpose of 8 × 8 four-byte values.
    #[target_feature(enable = "avx2")]
    fn pack_avx2(rows: &[&[i8]; PANEL_ROWS], packed: &mut Vec<i8>, flip: u8) {
        size_panel(rows, packed);
        let chunk = BLOCK * PANEL_ROWS;
        let chunks = packed.len() / chunk;
        let flip_bytes = _mm256_set1_epi8(flip as i8);
        for c in 0..chunks {
            let out = &mut packed[chunk * c..][..chunk];
            for half in 0..2 {
                // r[j]: 32 bytes (8 groups) of row 8·half + j, flipped.
                let r: [__m256i; 8] = std::array::from_fn(|j| {
                    let bytes = &rows[8 * half + j][32 * c..][..32];
                    // SAFETY: `bytes` holds 32 bytes.
                    let v = unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) };
                    _mm256_xor_si256(v, flip_bytes)
                });
                // u[4i + e] holds groups e and 4 + e of rows 4i..4i + 4.
                let u = lane_transposes!(
                    r,
                    8,
                    _mm256_unpacklo_epi32,
                    _mm256_unpackhi_epi32,
                    _mm256_unpacklo_epi64,
                    _mm256_unpackhi_epi64
                );
                for e in 0..4 {
                    let groups = [
                        _mm256_permute2x128_si256::<0x20>(u[e], u[4 + e]),
                        _mm256_permute2x128_si256::<0x31>(u[e], u[4 + e]),
                    ];
                    for (lane, group) in groups.into_iter().enumerate() {
                        let at = &mut out[64 * (4 * lane + e) + 32 * half..][..32];
                        // SAFETY: `at` holds 32 bytes.
                        unsafe { _mm256_storeu_si256(at.as_mut_ptr().cast(), group) };
                    }
                }
            }
        }
    }

    /// [`pack_panel`] offset to `w + 128` (the VNNI panels' weights) with
    /// 512-bit vectors: 16 groups of 4 columns at a time as a transpose of
    /// 16 × 16 four-byte values.
    #[target_feature(enable = "avx512f")]
    fn pack_offset_avx512(rows: &[&[i8]; PANEL_ROWS], packed: &mut Vec<i8>) {
        size_panel(rows, packed);
        let chunks = packed.len() / (16 * 4 * PANEL_ROWS);
        let flip = _mm512_set1_epi8(-128);
        for c in 0..chunks {
            // r[j]: 64 bytes (16 groups) of row j, offset.
            let r: [__m512i; 16] = std::array::from_fn(|j| {
                let bytes = &rows[j][64 * c..][..64];
                // SAFETY: `bytes` holds 64 bytes.
                _mm512_xor_si512(unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }, flip)
            });
            // u[4i + e] holds group 4L + e of rows 4i..4i + 4 in lane L.
            let u = lane_transposes!(
                r,
                16,
                _mm512_unpacklo_epi32,
                _mm512_unpackhi_epi32,
                _mm512_unpacklo_epi64,
                _mm512_unpackhi_epi64
            );
            // Then a 4 × 4 transpose of lanes: group 4L + e is lane L of
            // u[e], u[4 + e], u[8 + e] and u[12 + e].
            let out = &mut packed[16 * 4 * PANEL_ROWS * c..][..16 * 4 * PANEL_ROWS];
            for e in 0..4 {
                let low = _mm512_shuffle_i32x4::<0x44>(u[e], u[4 + e]);
                let high = _mm512_shuffle_i32x4::<0xEE>(u[e], u[4 + e]);
                let low2 = _mm512_shuffle_i32x4::<0x44>(u[8 + e], u[12 + e]);
                let high2 = _mm512_shuffle_i32x4::<0xEE>(u[8 + e], u[12 + e]);
                let groups = [
                    _mm512_shuffle_i32x4::<0x88>(low, low2),
                    _mm512_shuffle_i32x4::<0xDD>(low, low2),
                    _mm512_shuffle_i32x4::<0x88>(high, high2),
                    _mm512_shuffle_i32x4::<0xDD>(high, high2),
                ];
                for (lane, group) in groups.into_iter().enumerate() {
                    let at = &mut out[64 * (4 * lane + e)..][..64];
                    // SAFETY: `at` holds 64 bytes.
                    unsafe { _mm512_storeu_si512(at.as_mut_ptr().cast(), group) };
                }
            }
        }
        pack_groups(rows, packed, 0x80, 16 * chunks);
    }

    /// [`Q8Rows::quantize`] on AVX2: each whole block in four registers
    /// (`f32::round` would be a call per value).
    #[target_feature(enable = "avx2")]
    pub fn quantize(x: &[f32], cols: usize) -> Q8Rows {
        Q8Rows::quantize_with(x, cols, |xs, qs| quantize_block_avx2(xs, qs))
    }

    /// [`super::quantize_block`] of a whole block, with its offset, spelled
    /// out in AVX2 as [`quantize_block_avx512`] is.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn quantize_block_avx2(xs: &[f32; BLOCK], qs: &mut [i8; BLOCK]) -> (f32, i32) {
        // SAFETY: `xs` holds 32 floats.
        let v: [__m256; 4] =
            std::array::from_fn(|i| unsafe { _mm256_loadu_ps(xs.as_ptr().add(8 * i)) });
        let magnitude = _mm256_set1_epi32(0x7fff_ffff);
        let bits = v.map(|v| _mm256_and_si256(_mm256_castps_si256(v), magnitude));
        let max = _mm256_max_epu32(
            _mm256_max_epu32(bits[0], bits[1]),
            _mm256_max_epu32(bits[2], bits[3]),
        );
        let max = _mm_max_epu32(
            _mm256_castsi256_si128(max),
            _mm256_extracti128_si256::<1>(max),
        );
        let max = _mm_max_epu32(max, _mm_shuffle_epi32::<0b01_00_11_10>(max));
        let max = _mm_max_epu32(max, _mm_shuffle_epi32::<0b10_11_00_01>(max));
        let scale = f32::from_bits(_mm_cvtsi128_si32(max) as u32) / 127.0;
        let inverse = _mm256_set1_ps(if scale > 0.0 { 1.0 / scale } else { 0.0 });
        let q = v.map(|v| {
            let p = _mm256_mul_ps(v, inverse);
            let whole = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(p);
            let rest = _mm256_andnot_ps(_mm256_set1_ps(-0.0), _mm256_sub_ps(p, whole));
            let away = _mm256_cmp_ps::<_CMP_GE_OQ>(rest, _mm256_set1_ps(0.5));
            // ±1 with the sign of p, where the remainder is at least 1/2.
            let step = _mm256_or_ps(_mm256_and_ps(p, _mm256_set1_ps(-0.0)), _mm256_set1_ps(1.0));
            let r = _mm256_add_ps(whole, _mm256_and_ps(away, step));
            let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
            let r = _mm256_min_ps(
                _mm256_max_ps(r, _mm256_set1_ps(-127.0)),
                _mm256_set1_ps(127.0),
            );
            _mm256_cvttps_epi32(r)
        });
        // 32 int32 values to 32 bytes in order: packs work within 128-bit
        // halves, so the dwords come out interleaved and are put back.
        let words = [
            _mm256_packs_epi32(q[0], q[1]),
            _mm256_packs_epi32(q[2], q[3]),
        ];
        let bytes = _mm256_packs_epi16(words[0], words[1]);
        let bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // SAFETY: `qs` holds 32 bytes.
        unsafe { _mm256_storeu_si256(qs.as_mut_ptr().cast(), bytes) };
        let sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let sum = _mm_add_epi32(
            _mm256_castsi256_si128(sum),
            _mm256_extracti128_si256::<1>(sum),
        );
        let sum = _mm_add_epi32(sum, _mm_shuffle_epi32::<0b01_00_11_10>(sum));
        let sum = _mm_add_epi32(sum, _mm_shuffle_epi32::<0b10_11_00_01>(sum));
        (scale, -128 * _mm_cvtsi128_si32(sum))
    }

    /// [`Q8Rows::quantize`] on AVX-512: each whole block in two registers.
    #[target_feature(enable = "avx512f")]
    pub fn quantize_avx512(x: &[f32], cols: usize) -> Q8Rows {
        Q8Rows::quantize_with(x, cols, |xs, qs| quantize_block_avx512(xs, qs))
    }

    /// [`super::quantize_block`] of a whole block, with its offset, spelled
    /// out in AVX-512: the same max, scale, rounding (half away from zero:
    /// truncate, then step away where the exact remainder is at least 1/2),
    /// NaN to 0 and clamp, so the same values.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn quantize_block_avx512(xs: &[f32; BLOCK], qs: &mut [i8; BLOCK]) -> (f32, i32) {
        // SAFETY: `xs` holds 32 floats.
        let v: [__m512; 2] =
            std::array::from_fn(|i| unsafe { _mm512_loadu_ps(xs.as_ptr().add(16 * i)) });
        let magnitude = _mm512_set1_epi32(0x7fff_ffff);
        let bits = v.map(|v| _mm512_and_si512(_mm512_castps_si512(v), magnitude));
        let max_bits = _mm512_reduce_max_epu32(_mm512_max_epu32(bits[0], bits[1]));
        let scale = f32::from_bits(max_bits) / 127.0;
        let inverse = _mm512_set1_ps(if scale > 0.0 { 1.0 / scale } else { 0.0 });
        let mut sum = _mm512_setzero_si512();
        for (i, v) in v.into_iter().enumerate() {
            let p = _mm512_mul_ps(v, inverse);
            let whole = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(p);
            let rest = _mm512_abs_ps(_mm512_sub_ps(p, whole));
            let away = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(rest, _mm512_set1_ps(0.5));
            // ±1 with the sign of p.
            let step = _mm512_castsi512_ps(_mm512_or_si512(
                _mm512_andnot_si512(magnitude, _mm512_castps_si512(p)),
                _mm512_castps_si512(_mm512_set1_ps(1.0)),
            ));
            let r = _mm512_mask_add_ps(whole, away, whole, step);
            let r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(r, r), r);
            let r = _mm512_min_ps(
                _mm512_max_ps(r, _mm512_set1_ps(-127.0)),
                _mm512_set1_ps(127.0),
            );
            let q = _mm512_cvttps_epi32(r);
            sum = _mm512_add_epi32(sum, q);
            // SAFETY: `qs` holds 32 bytes.
            unsafe {
                _mm_storeu_si128(qs.as_mut_ptr().add(16 * i).cast(), _mm512_cvtepi32_epi8(q))
            };
        }
        (scale, -128 * _mm512_reduce_add_epi32(sum))
    }

    /// Lane `p` of the result is the sum of the eight lanes of `v[p]`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn reduce8(v: [__m256i; 8]) -> __m256i {
        // Per 128-bit half: [Σ v0, Σ v1, Σ v2, Σ v3] over that half's lanes.
        let low = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
        let high = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
        _mm256_add_epi32(
            _mm256_permute2x128_si256(low, high, 0x20),
            _mm256_permute2x128_si256(low, high, 0x31),
        )
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
    fn dot_avx_vnni(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, w, x)
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn dot_avx2(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
        _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    tile!(
        avx_vnni_tile,
        "avx2,fma,avxvnni",
        offset_weights,
        dot_avx_vnni,
        true
    );
    /// The decode tile on 512-bit vectors: a load takes two blocks of a
    /// weight row, so a pair of blocks costs 8 weight loads, 8 `vpdpbusd` and one
    /// reduction (8 vectors to one), where [`tile!`] spends twice the loads
    /// and dots and two reductions. The fold is [`tile!`]'s: block `b`'s exact
    /// sums, then block `b + 1`'s, each converted and multiplied-added in
    /// order. An odd last block is read with the upper half masked off.
    #[target_feature(enable = "avx2,fma,avx512f,avx512vnni")]
    fn avx512_vnni_tile(w: &[&[i8]; 8], x: Q8Row, ahead: &[i8]) -> [f32; 8] {
        let full = tile_shape(w, x);
        let flip = _mm512_set1_epi8(-128);
        let mut acc = _mm256_setzero_ps();
        for b in (0..full).step_by(2) {
            prefetch_ahead(ahead, b);
            let pair = b + 1 < full;
            let mask: __mmask16 = if pair { 0xffff } else { 0x00ff };
            // SAFETY: the unmasked lanes lie in blocks b and (if `pair`)
            // b + 1 < full, within x.values and every weight row.
            let xv =
                unsafe { _mm512_maskz_loadu_epi32(mask, x.values.as_ptr().add(b * BLOCK).cast()) };
            let mut dots = [_mm512_setzero_si512(); 8];
            for (dot, row) in dots.iter_mut().zip(w) {
                // SAFETY: as above.
                let raw =
                    unsafe { _mm512_maskz_loadu_epi32(mask, row.as_ptr().add(b * BLOCK).cast()) };
                *dot = _mm512_dpbusd_epi32(*dot, _mm512_xor_si512(raw, flip), xv);
            }
            let d = reduce8x2(dots);
            let first =
                _mm256_add_epi32(_mm512_castsi512_si256(d), _mm256_set1_epi32(x.offsets[b]));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(first), _mm256_set1_ps(x.scales[b]), acc);
            if pair {
                let second = _mm256_add_epi32(
                    _mm512_extracti64x4_epi64::<1>(d),
                    _mm256_set1_epi32(x.offsets[b + 1]),
                );
                acc = _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(second),
                    _mm256_set1_ps(x.scales[b + 1]),
                    acc,
                );
            }
        }
        let mut sums = [0.0f32; 8];
        // SAFETY: `sums` holds eight f32.
        unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), acc) };
        with_tail(sums, w, x, full)
    }

    /// Lanes `0..8` of the result are the sums of the lower halves (lanes
    /// `0..8`) of `v[0]`..`v[7]`, lanes `8..16` those of their upper halves.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn reduce8x2(v: [__m512i; 8]) -> __m512i {
        let low = chunk_sums4(v[0], v[1], v[2], v[3]);
        let high = chunk_sums4(v[4], v[5], v[6], v[7]);
        // Chunks 0 + 1 are the lower halves, 2 + 3 the upper ones:
        // [low 0+1, low 2+3, high 0+1, high 2+3], then low and high interleaved.
        let sums = _mm512_add_epi32(
            _mm512_shuffle_i32x4::<0x88>(low, high),
            _mm512_shuffle_i32x4::<0xdd>(low, high),
        );
        _mm512_shuffle_i32x4::<0xd8>(sums, sums)
    }

    /// Per 128-bit chunk: [Σ a, Σ b, Σ c, Σ d] of that chunk's four lanes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn chunk_sums4(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> __m512i {
        // Per chunk: [a0 + a2, b0 + b2, a1 + a3, b1 + b3], and the same of c, d.
        let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
        let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
        _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd))
    }
    tile!(avx2_tile, "avx2,fma", keep, dot_avx2, false);

    // SAFETY (all): each is only selected after detecting its features.
    const AVX_VNNI: Kernels = Kernels {
        name: "avx-vnni",
        w8x1: |w, x, ahead| unsafe { avx_vnni_tile(w, x, ahead) },
        panel: |w, packed, x, out| unsafe { avx_vnni_panel(w, packed, x, out) },
        pack: |w, packed| unsafe { pack_avx2(w, packed, 0x80) },
    };
    const AVX512_VNNI: Kernels = Kernels {
        name: "avx512-vnni",
        w8x1: |w, x, ahead| unsafe { avx512_vnni_tile(w, x, ahead) },
        panel: |w, packed, x, out| unsafe { avx512_vnni_panel(w, packed, x, out) },
        pack: |w, packed| unsafe { pack_offset_avx512(w, packed) },
    };
    const AVX2: Kernels = Kernels {
        name: "avx2",
        w8x1: |w, x, ahead| unsafe { avx2_tile(w, x, ahead) },
        panel: |w, packed, x, out| unsafe { avx2_panel(w, packed, x, out) },
        pack: |w, packed| unsafe { pack_avx2(w, packed, 0) },
    };

    /// The x86 kernel sets this CPU can run, fastest first.
    pub fn available() -> Vec<&'static Kernels> {
        let mut all = Vec::new();
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return all;
        }
        // EVEX first where both exist: 32 vector registers, and 512-bit
        // `vpdpbusd` for the panels (measured here at the 256-bit one's
        // instruction rate: twice the multiply-adds).
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni") {
            all.push(&AVX512_VNNI);
        }
        if is_x86_feature_detected!("avxvnni") {
            all.push(&AVX_VNNI);
        }
        all.push(&AVX2);
        all
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn vector_packings_equal_the_scalar_packing() {
            if !is_x86_feature_detected!("avx2") {
                return;
            }
            // 200 columns: 48 groups of 4 (6 blocks, 3 AVX-512 chunks) and
            // a partial block; 160: 40 groups (2 AVX-512 chunks and 8 groups
            // left).
            for cols in [200, 160] {
                let w: Vec<Vec<i8>> = (0..PANEL_ROWS)
                    .map(|j| (0..cols).map(|i| (i * 31 + j * 7) as u8 as i8).collect())
                    .collect();
                // The last rows repeated, as past a matrix's last row.
                let rows: [&[i8]; PANEL_ROWS] = std::array::from_fn(|j| &w[j.min(13)][..]);
                for flip in [0, 0x80] {
                    let mut scalar = Vec::new();
                    crate::q8::pack_panel(&rows, &mut scalar, flip);
                    let mut fast = vec![7; 5];
                    // SAFETY: AVX2 is present.
                    unsafe { pack_avx2(&rows, &mut fast, flip) };
                    assert_eq!(fast, scalar, "AVX2, cols {cols}, flip {flip}");
                    if flip == 0x80 && is_x86_feature_detected!("avx512f") {
                        // SAFETY: AVX-512F is present.
                        unsafe { pack_offset_avx512(&rows, &mut fast) };
                        assert_eq!(fast, scalar, "AVX-512, cols {cols}");
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{
        finish_panel, pack_signed, panel_rows, panel_shape, prefetch_ahead, size_panel, tile_shape,
        with_tail, Kernels, PanelOut, Q8Row, Q8Rows, BLOCK, PANEL_ROWS, PANEL_TOKENS,
    };
    use std::arch::aarch64::*;
    use std::arch::asm;

    /// `acc` plus, in each lane, the dot product of that lane's four bytes of
    /// `w` and `x` (`sdot`; stable Rust has no intrinsic for it yet).
    #[target_feature(enable = "neon,dotprod")]
    #[inline]
    fn sdot(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // SAFETY: dotprod is enabled; the instruction only touches these registers.
        unsafe {
            asm!(
                "sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
                acc = inout(vreg) acc,
                w = in(vreg) w,
                x = in(vreg) x,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }

    /// Block `b` of `row`: its 32 bytes as two vectors.
    ///
    /// # Safety
    /// `(b + 1)·BLOCK <= row.len()`.
    #[target_feature(enable = "neon")]
    #[inline]
    unsafe fn load_block(row: &[i8], b: usize) -> [int8x16_t; 2] {
        // SAFETY: the caller's bound.
        unsafe {
            let p = row.as_ptr().add(b * BLOCK);
            [vld1q_s8(p), vld1q_s8(p.add(16))]
        }
    }

    /// Lane `p` of the result is the sum of the four lanes of `v[p]`.
    #[target_feature(enable = "neon")]
    #[inline]
    fn reduce4(v: &[int32x4_t]) -> int32x4_t {
        vpaddq_s32(vpaddq_s32(v[0], v[1]), vpaddq_s32(v[2], v[3]))
    }

    /// A decode tile: eight weight rows by one activation row. Row `j` lives
    /// in lane `j % 4` of accumulator `j / 4`.
    #[target_feature(enable = "neon,dotprod")]
    fn dotprod_tile(w: &[&[i8]; 8], x: Q8Row, ahead: &[i8]) -> [f32; 8] {
        let full = tile_shape(w, x);
        let mut acc = [vdupq_n_f32(0.0); 2];
        for b in 0..full {
            prefetch_ahead(ahead, b);
            // SAFETY: b < full, so (b + 1)·BLOCK <= x.values.len() (tile_shape).
            let xv = unsafe { load_block(x.values, b) };
            // (A loop, not a closure, which would not inherit the target features.)
            let mut dots = [vdupq_n_s32(0); 8];
            for (dot, row) in dots.iter_mut().zip(w) {
                // SAFETY: as above, for every weight row.
                let wv = unsafe { load_block(row, b) };
                *dot = sdot(sdot(vdupq_n_s32(0), wv[0], xv[0]), wv[1], xv[1]);
            }
            let scale = vdupq_n_f32(x.scales[b]);
            for (h, acc) in acc.iter_mut().enumerate() {
                let d = vcvtq_f32_s32(reduce4(&dots[4 * h..]));
                *acc = vfmaq_f32(*acc, d, scale);
            }
        }
        let mut sums = [0.0f32; 8];
        // SAFETY: `sums` holds eight f32.
        unsafe {
            vst1q_f32(sums.as_mut_ptr(), acc[0]);
            vst1q_f32(sums.as_mut_ptr().add(4), acc[1]);
        }
        with_tail(sums, w, x, full)
    }

    /// `acc` plus, in each lane, the dot product of that lane's four bytes of
    /// `w` and the four bytes in lane `LANE` of `x` (`sdot`'s indexed form).
    #[target_feature(enable = "neon,dotprod")]
    #[inline]
    fn sdot_lane<const LANE: i32>(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // SAFETY: dotprod is enabled; the instruction only touches these registers.
        unsafe {
            asm!(
                "sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[{lane}]",
                acc = inout(vreg) acc,
                w = in(vreg) w,
                x = in(vreg) x,
                lane = const LANE,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }

    /// A [`super::Panel`] on `sdot`: a vector holds 4 columns of 4 packed
    /// weight rows, multiplied by an activation row's 4 values at those
    /// columns, taken from a lane of its 16 loaded values (the indexed form,
    /// so no broadcasts); 8 rows (half of each 64-byte group) at a time.
    #[target_feature(enable = "neon,dotprod")]
    fn dotprod_panel(w: &[&[i8]; PANEL_ROWS], packed: &[i8], x: &Q8Rows, out: PanelOut) {
        let full = panel_shape(w, packed, x);
        for t in (0..x.rows()).step_by(PANEL_TOKENS) {
            let rows = panel_rows::<PANEL_TOKENS>(x, t);
            let mut sums = [[0.0f32; PANEL_ROWS]; PANEL_TOKENS];
            for half in 0..2 {
                let mut acc = [[vdupq_n_f32(0.0); 2]; PANEL_TOKENS];
                for b in 0..full {
                    let mut dots = [[vdupq_n_s32(0); 2]; PANEL_TOKENS];
                    for s in 0..BLOCK / 16 {
                        let k = b * BLOCK + 16 * s;
                        // SAFETY: k + 16 <= full·BLOCK <= the rows' length.
                        let xv = rows.values.map(|x| unsafe { vld1q_s8(x.add(k)) });
                        // SAFETY: k + 16 <= full·BLOCK, and `packed` holds
                        // PANEL_ROWS bytes per column of the full blocks
                        // (panel_shape): 4 groups of 4 columns from k.
                        let wv: [[int8x16_t; 2]; 4] = std::array::from_fn(|g| unsafe {
                            let p = packed.as_ptr().add(PANEL_ROWS * (k + 4 * g) + 32 * half);
                            [vld1q_s8(p), vld1q_s8(p.add(16))]
                        });
                        for (dots, &xv) in dots.iter_mut().zip(&xv) {
                            for (r, dot) in dots.iter_mut().enumerate() {
                                *dot = sdot_lane::<0>(*dot, wv[0][r], xv);
                                *dot = sdot_lane::<1>(*dot, wv[1][r], xv);
                                *dot = sdot_lane::<2>(*dot, wv[2][r], xv);
                                *dot = sdot_lane::<3>(*dot, wv[3][r], xv);
                            }
                        }
                    }
                    for ((acc, dots), &scales) in acc.iter_mut().zip(dots).zip(&rows.scales) {
                        // SAFETY: b < full <= the row's number of blocks.
                        let scale = vdupq_n_f32(unsafe { *scales.add(b) });
                        for (acc, dots) in acc.iter_mut().zip(dots) {
                            *acc = vfmaq_f32(*acc, vcvtq_f32_s32(dots), scale);
                        }
                    }
                }
                for (sums, acc) in sums.iter_mut().zip(acc) {
                    // SAFETY: each `sums` row holds 8 f32 from 8·half.
                    unsafe {
                        let p = sums.as_mut_ptr().add(8 * half);
                        vst1q_f32(p, acc[0]);
                        vst1q_f32(p.add(4), acc[1]);
                    }
                }
            }
            finish_panel(sums, w, x, t, full, out);
        }
    }

    /// `acc` plus the 2×2 matrix of dot products of `x`'s two 8-byte halves
    /// (rows) with `w`'s (columns), row-major: lanes `[x0·w0, x0·w1, x1·w0,
    /// x1·w1]` (`smmla`; its intrinsic is not stable yet).
    #[target_feature(enable = "neon,i8mm")]
    #[inline]
    fn smmla(mut acc: int32x4_t, x: int8x16_t, w: int8x16_t) -> int32x4_t {
        // SAFETY: i8mm is enabled; the instruction only touches these registers.
        unsafe {
            asm!(
                "smmla {acc:v}.4s, {x:v}.16b, {w:v}.16b",
                acc = inout(vreg) acc,
                x = in(vreg) x,
                w = in(vreg) w,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }

    /// Packs the full blocks of the weight rows for [`i8mm_panel`]: per group
    /// of 8 columns, each row's 8 values in turn (128 bytes), so a vector
    /// holds two consecutive rows' 8 values.
    fn pack_i8mm(rows: &[&[i8]; PANEL_ROWS], packed: &mut Vec<i8>) {
        size_panel(rows, packed);
        for (g, group) in packed.chunks_exact_mut(8 * PANEL_ROWS).enumerate() {
            for (eight, row) in group.chunks_exact_mut(8).zip(rows) {
                eight.copy_from_slice(&row[8 * g..][..8]);
            }
        }
    }

    /// A [`super::Panel`] on `smmla`, which multiplies 8 columns of two
    /// activation rows by the same columns of two weight rows (32
    /// multiply-adds, twice `sdot`'s): 8 weight rows (half of each 128-byte
    /// group) by 4 activation rows at a time.
    #[target_feature(enable = "neon,i8mm")]
    fn i8mm_panel(w: &[&[i8]; PANEL_ROWS], packed: &[i8], x: &Q8Rows, out: PanelOut) {
        const PAIRS: usize = PANEL_TOKENS / 2;
        let full = panel_shape(w, packed, x);
        for t in (0..x.rows()).step_by(PANEL_TOKENS) {
            let rows = panel_rows::<PANEL_TOKENS>(x, t);
            let mut sums = [[0.0f32; PANEL_ROWS]; PANEL_TOKENS];
            for half in 0..2 {
                // acc[p][r]: activation rows 2p, 2p + 1 by weight rows 2r, 2r + 1.
                let mut acc = [[vdupq_n_f32(0.0); 4]; PAIRS];
                for b in 0..full {
                    let mut dots = [[vdupq_n_s32(0); 4]; PAIRS];
                    for e in 0..BLOCK / 8 {
                        let k = b * BLOCK + 8 * e;
                        // SAFETY: k + 8 <= full·BLOCK, and `packed` holds
                        // PANEL_ROWS bytes per column of the full blocks
                        // (panel_shape).
                        let wv: [int8x16_t; 4] = std::array::from_fn(|r| unsafe {
                            vld1q_s8(packed.as_ptr().add(PANEL_ROWS * k + 64 * half + 16 * r))
                        });
                        for (p, dots) in dots.iter_mut().enumerate() {
                            // SAFETY: k + 8 <= full·BLOCK <= the rows' length.
                            let xv = unsafe {
                                vcombine_s8(
                                    vld1_s8(rows.values[2 * p].add(k)),
                                    vld1_s8(rows.values[2 * p + 1].add(k)),
                                )
                            };
                            for (dots, &wv) in dots.iter_mut().zip(&wv) {
                                *dots = smmla(*dots, xv, wv);
                            }
                        }
                    }
                    for (p, (acc, dots)) in acc.iter_mut().zip(dots).enumerate() {
                        // SAFETY: b < full <= the rows' number of blocks.
                        let scale = unsafe {
                            vcombine_f32(
                                vdup_n_f32(*rows.scales[2 * p].add(b)),
                                vdup_n_f32(*rows.scales[2 * p + 1].add(b)),
                            )
                        };
                        for (acc, dots) in acc.iter_mut().zip(dots) {
                            *acc = vfmaq_f32(*acc, vcvtq_f32_s32(dots), scale);
                        }
                    }
                }
                for (p, acc) in acc.iter().enumerate() {
                    for (r, &acc) in acc.iter().enumerate() {
                        // SAFETY: each `sums` row holds 2 f32 from 8·half + 2r.
                        unsafe {
                            let at = 8 * half + 2 * r;
                            vst1_f32(sums[2 * p].as_mut_ptr().add(at), vget_low_f32(acc));
                            vst1_f32(sums[2 * p + 1].as_mut_ptr().add(at), vget_high_f32(acc));
                        }
                    }
                }
            }
            finish_panel(sums, w, x, t, full, out);
        }
    }

    // SAFETY (both): only selected after detecting dotprod.
    const DOTPROD: Kernels = Kernels {
        name: "sdot",
        w8x1: |w, x, ahead| unsafe { dotprod_tile(w, x, ahead) },
        panel: |w, packed, x, out| unsafe { dotprod_panel(w, packed, x, out) },
        pack: pack_signed,
    };

    // SAFETY: only selected after detecting dotprod and i8mm. Decode keeps
    // the `sdot` tile: `smmla` needs two activation rows.
    const I8MM: Kernels = Kernels {
        name: "i8mm",
        panel: |w, packed, x, out| unsafe { i8mm_panel(w, packed, x, out) },
        pack: pack_i8mm,
        ..DOTPROD
    };

    /// The aarch64 kernel sets this CPU can run, the preferred first: `smmla`
    /// before `sdot` except on Apple's cores, which issue both at the same
    /// rate (so `smmla`'s extra shuffles make it slower there, as other
    /// projects measured; `cargo bench -p chaya --bench kernels` compares
    /// them on a device).
    pub fn available() -> Vec<&'static Kernels> {
        let mut sets = Vec::new();
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            sets.push(&DOTPROD);
            if std::arch::is_aarch64_feature_detected!("i8mm") {
                let at = if cfg!(target_vendor = "apple") { 1 } else { 0 };
                sets.insert(at, &I8MM);
            }
        }
        sets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: f32) -> Vec<f32> {
        (0..len).map(|i| (i as f32 * seed).sin() * 3.0).collect()
    }

    fn weights(len: usize, seed: usize) -> Vec<i8> {
        (0..len)
            .map(|i| ((i * seed + 11) % 255) as i32 - 127)
            .map(|v| v as i8)
            .collect()
    }

    /// The value every kernel approximates: f64 sum of scaled integer block dots.
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
            let offsets: Vec<i32> = row
                .values
                .chunks(BLOCK)
                .map(|b| -128 * b.iter().map(|&v| v as i32).sum::<i32>())
                .collect();
            assert_eq!(row.offsets, offsets);
        }
    }

    #[test]
    fn zero_blocks_quantize_to_zero() {
        let q = Q8Rows::quantize(&[0.0; 40], 40);
        assert!(q.row(0).values.iter().all(|&v| v == 0));
        assert_eq!(q.row(0).offsets, [0, 0]);
    }

    #[test]
    fn non_finite_and_tiny_values_quantize_like_the_portable_code() {
        // NaN, infinities, and a block whose scale underflows or whose inverse overflows.
        let mut x = vec![1.0f32; 4 * BLOCK];
        x[3] = f32::NAN;
        x[BLOCK + 1] = f32::INFINITY;
        x[BLOCK + 2] = f32::NEG_INFINITY;
        x[2 * BLOCK..3 * BLOCK].fill(f32::from_bits(1));
        x[3 * BLOCK..].fill(1e-38);
        x[3 * BLOCK] = -2e-38;
        let portable = Q8Rows::quantize_portable(&x, x.len());
        for quantize in quantizers() {
            let fast = quantize(&x, x.len());
            assert_eq!(fast.values, portable.values);
            assert_eq!(fast.offsets, portable.offsets);
            assert!(fast.values[..2 * BLOCK].iter().all(|&q| q == 0));
            assert_eq!(fast.values[3 * BLOCK], -127);
            assert!(fast.values.iter().all(|&q| q != i8::MIN));
        }
    }

    /// Every quantization path this CPU runs.
    fn quantizers() -> Vec<fn(&[f32], usize) -> Q8Rows> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut all: Vec<fn(&[f32], usize) -> Q8Rows> = vec![Q8Rows::quantize_portable];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") {
                all.push(|x, cols| unsafe { x86::quantize(x, cols) });
            }
            if is_x86_feature_detected!("avx512f") {
                all.push(|x, cols| unsafe { x86::quantize_avx512(x, cols) });
            }
        }
        all
    }

    #[test]
    fn every_path_rounds_ties_away_from_zero() {
        // A block with max 127 has scale 1: the values are their own quotients.
        let mut x = vec![0.0f32; 2 * BLOCK + 5];
        let ties = [0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5, -126.5];
        for block in x.chunks_mut(BLOCK) {
            block[0] = 127.0;
            block[1..]
                .iter_mut()
                .zip(ties.iter().cycle())
                .for_each(|(v, &t)| *v = t);
        }
        x[BLOCK + 9] = 0.49999997;
        x[BLOCK + 10] = -2.4999998;
        let want_ties = [1, -1, 2, -2, 3, -3, 127, -127];
        for quantize in quantizers() {
            let q = quantize(&x, x.len());
            assert_eq!(q.values[1..9], want_ties);
            assert_eq!(q.values[BLOCK + 1..BLOCK + 9], want_ties);
            assert_eq!(q.values[BLOCK + 9..BLOCK + 11], [0, -2]);
            assert_eq!(q.values[2 * BLOCK + 1..], want_ties[..4]);
            assert_eq!(q.values, Q8Rows::quantize_portable(&x, x.len()).values);
        }
    }

    /// A panel kernel's results as rows, checking that they come in order.
    fn panel_results(
        k: &Kernels,
        w: &[&[i8]; PANEL_ROWS],
        packed: &[i8],
        x: &Q8Rows,
    ) -> Vec<[f32; PANEL_ROWS]> {
        let mut rows = Vec::new();
        (k.panel)(w, packed, x, &mut |t, sums| {
            assert_eq!(t, rows.len(), "results out of order");
            rows.extend_from_slice(sums);
        });
        rows
    }

    #[test]
    fn every_kernel_gives_exactly_the_block_fold() {
        // 8: only a tail; 64: full blocks; 70 and 200: full blocks and a
        // tail; 96 and 230: an odd number of full blocks (the 512-bit tile's
        // masked last block), without and with a tail.
        for cols in [8, 64, 70, 96, 200, 230] {
            // 10 activation rows: whole groups of 4 and of 8, and partial ones.
            let xq = Q8Rows::quantize(&values(10 * cols, 0.37), cols);
            let w: Vec<Vec<i8>> = (0..PANEL_ROWS).map(|j| weights(cols, 7 + 2 * j)).collect();
            let w8: [&[i8]; 8] = std::array::from_fn(|j| &w[j][..]);
            let panel: [&[i8]; PANEL_ROWS] = std::array::from_fn(|j| &w[j][..]);
            // Bytes to prefetch: none, less than a line, more than the tile reads.
            let far = weights(64 * cols, 3);
            let aheads: [&[i8]; 3] = [&[], &far[..5], &far];
            for k in kernel_sets() {
                for ahead in aheads {
                    let got = (k.w8x1)(&w8, xq.row(1), ahead);
                    for j in 0..8 {
                        assert_eq!(got[j], block_dot(w8[j], xq.row(1)), "cols {cols}");
                        let want = exact(w8[j], xq.row(1));
                        assert!((got[j] as f64 - want).abs() < 1e-4 * want.abs().max(1.0));
                    }
                }
                let mut packed = Vec::new();
                (k.pack)(&panel, &mut packed);
                let got = panel_results(k, &panel, &packed, &xq);
                assert_eq!(got.len(), 10, "one result row per activation row");
                for (t, got) in got.iter().enumerate() {
                    for (j, &got) in got.iter().enumerate() {
                        assert_eq!(got, block_dot(panel[j], xq.row(t)), "cols {cols}");
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
        for k in kernel_sets() {
            let got = (k.w8x1)(&[&w[..]; 8], xq.row(0), &[]);
            let want = exact(&w, xq.row(0));
            assert!((got[0] as f64 - want).abs() < 1e-4 * want.abs());
            let mut packed = Vec::new();
            (k.pack)(&[&w[..]; PANEL_ROWS], &mut packed);
            let got = panel_results(k, &[&w[..]; PANEL_ROWS], &packed, &xq);
            for got in got[0] {
                assert!((got as f64 - want).abs() < 1e-4 * want.abs());
            }
        }
    }
}
