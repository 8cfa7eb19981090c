//! Prefill matmul on Intel AMX (x86_64 Linux): int8 tile multiplies
//! (`tdpbssd`) of 16 weight rows by 16 activation rows, one quantization block
//! of [`BLOCK`] columns at a time.
//!
//! Each block's 16 × 16 exact integer dot products are stored, converted and
//! folded into f32 accumulators as `acc = fma(d_b, scale_b, acc)`, the fold
//! every kernel of [`crate::q8`] computes, so AMX results are bit-identical to
//! the decode kernels'. Weights are read in place (a tile loads 16 rows with
//! the matrix's row stride); activations are quantized once per call straight
//! into the layout AMX multiplies by ([`Packed`]), 16 rows per parallel task.
//!
//! AMX needs the kernel's permission per process (`arch_prctl`), asked once,
//! and a tile configuration per thread, loaded by [`Packed::multiply`] itself.

use crate::parallel::map_index;
use crate::q8::BLOCK;

/// Weight rows (and activation rows) per tile.
pub const TILE: usize = 16;

/// Activations quantized to int8 blocks (the values and scales of
/// [`crate::q8::Q8Rows`]) in the layout AMX multiplies by: per group of 16
/// rows and per block, 8 tile rows of 64 bytes, where tile row `r` holds, for
/// each activation row `t`, its 4 values `4r..4r+4` of the block. Rows past
/// the last are zero.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_os = "linux")),
    allow(dead_code)
)]
pub struct Packed {
    rows: usize,
    blocks: usize,
    groups: Vec<Group>,
}

/// 16 activation rows of a [`Packed`].
#[cfg_attr(
    not(all(target_arch = "x86_64", target_os = "linux")),
    allow(dead_code)
)]
struct Group {
    /// `[block][8 tile rows][16 rows × 4]` values.
    values: Vec<i8>,
    /// `[block][16]` scales (zero for padding rows).
    scales: Vec<f32>,
}

/// Bytes of one (group, block) tile of activations.
#[cfg_attr(
    not(all(target_arch = "x86_64", target_os = "linux")),
    allow(dead_code)
)]
const TILE_BYTES: usize = TILE * BLOCK;

impl Packed {
    /// Quantizes the row-major `[rows, cols]` matrix `x` straight into AMX's
    /// layout, a group of 16 rows per parallel task; `None` when AMX is not
    /// usable here or `cols` is not a whole number of blocks (tiles read
    /// whole blocks).
    pub fn quantize(x: &[f32], cols: usize) -> Option<Packed> {
        if !available() || cols == 0 || !cols.is_multiple_of(BLOCK) {
            return None;
        }
        let (rows, blocks) = (x.len() / cols, cols / BLOCK);
        let groups = map_index(rows.div_ceil(TILE), |g| {
            let x = &x[g * TILE * cols..][..(rows - g * TILE).min(TILE) * cols];
            // SAFETY: `available()` checked AVX2.
            unsafe { x86::quantize_group(x, cols) }
        });
        Some(Packed {
            rows,
            blocks,
            groups,
        })
    }

    /// Number of activation rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (values per activation row).
    pub fn cols(&self) -> usize {
        self.blocks * BLOCK
    }

    /// For the weight rows `weights` (row-major, `blocks · BLOCK` columns),
    /// calls `store(j, t, sums, count)` once per tile: `sums[d][e]` is the
    /// block-scaled dot product of weight row `j + d` and activation row
    /// `t + e`, for `e < count` (and `j + d` below the number of weight rows).
    pub fn multiply(&self, weights: &[i8], mut store: impl FnMut(usize, usize, &Sums, usize)) {
        let cols = self.blocks * BLOCK;
        assert!(
            cols > 0 && weights.len().is_multiple_of(cols),
            "weights must be whole rows of the activations' width"
        );
        let whole = weights.len() / (TILE * cols) * (TILE * cols);
        // SAFETY: `available()` held when `self` was made (AMX permitted,
        // AVX-512 present); weight groups are whole.
        unsafe { x86::multiply(&weights[..whole], cols, self, &mut store) };
        if whole < weights.len() {
            // The last rows, zero-padded to a whole tile.
            let mut padded = vec![0i8; TILE * cols];
            padded[..weights.len() - whole].copy_from_slice(&weights[whole..]);
            let first = whole / cols;
            let mut store = |j, t, sums: &Sums, count| store(first + j, t, sums, count);
            // SAFETY: as above.
            unsafe { x86::multiply(&padded, cols, self, &mut store) };
        }
    }
}

/// One tile of results, `[weight row][activation row]`.
pub type Sums = [[f32; TILE]; TILE];

/// Whether this CPU and OS run AMX int8 tiles (checked once; asks Linux for
/// the permission on first use).
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let usable = x86::supported() && x86::request_permission();
        if usable {
            log::debug!("prefill matmul on AMX int8 tiles");
        }
        usable
    })
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod x86 {
    use super::{Group, Packed, Sums, BLOCK, TILE, TILE_BYTES};
    use crate::q8::quantize_block;
    use std::arch::asm;
    use std::arch::x86_64::*;

    /// The tile register layout (`ldtilecfg`'s 64-byte operand): tmm0 = the
    /// 16 × 16 i32 sums, tmm1 = 16 weight rows × 32 bytes, tmm2 = activations,
    /// 8 rows × 64 bytes; tmm3-5 the same again.
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        bytes_per_row: [u16; 16],
        rows: [u8; 16],
    }

    const CONFIG: TileConfig = {
        let mut config = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            bytes_per_row: [0; 16],
            rows: [0; 16],
        };
        // Two sets of (sums, weights, activations): tmm0-2 and tmm3-5.
        let mut set = 0;
        while set < 2 {
            let first = 3 * set;
            config.bytes_per_row[first] = (TILE * 4) as u16;
            config.rows[first] = TILE as u8;
            config.bytes_per_row[first + 1] = BLOCK as u16;
            config.rows[first + 1] = TILE as u8;
            config.bytes_per_row[first + 2] = (TILE * 4) as u16;
            config.rows[first + 2] = (BLOCK / 4) as u8;
            set += 1;
        }
        config
    };

    /// AMX-TILE and AMX-INT8 (CPUID leaf 7), AVX-512F (for the fold) and
    /// AVX2 (for the rounding; every AMX CPU has it, a VM might hide it).
    pub fn supported() -> bool {
        let leaf7 = __cpuid_count(7, 0);
        let (tile, int8) = ((leaf7.edx >> 24) & 1 == 1, (leaf7.edx >> 25) & 1 == 1);
        tile && int8 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx2")
    }

    /// Asks Linux to enable the AMX tile data state for this process.
    pub fn request_permission() -> bool {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: arch_prctl with these arguments only changes a permission flag.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    }

    /// `d[16][16] =` the exact dot products of 16 weight rows of one block at
    /// `w` (row stride `cols`) and one block of 16 packed activation rows at
    /// `x`, using tile registers `c` (sums), `a` (weights) and `b` (activations).
    macro_rules! block_dots {
        ($c:literal, $a:literal, $b:literal, $w:expr, $cols:expr, $x:expr, $d:expr) => {
            asm!(
                concat!("tilezero ", $c),
                concat!("tileloadd ", $a, ", [{w} + {w_stride} * 1]"),
                concat!("tileloadd ", $b, ", [{x} + {x_stride} * 1]"),
                concat!("tdpbssd ", $c, ", ", $a, ", ", $b),
                concat!("tilestored [{d} + {d_stride} * 1], ", $c),
                w = in(reg) $w,
                w_stride = in(reg) $cols,
                x = in(reg) $x,
                x_stride = in(reg) TILE * 4,
                d = in(reg) $d,
                d_stride = in(reg) TILE * 4,
                options(nostack),
            )
        };
    }

    /// Calls `store` for every tile of 16 weight rows of `weights` by 16
    /// activation rows of `packed` (see [`Packed::multiply`]).
    ///
    /// # Safety
    /// AMX must be permitted and AVX-512F present; `weights` holds whole
    /// groups of 16 rows of `cols = packed.blocks · BLOCK` bytes.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn multiply(
        weights: &[i8],
        cols: usize,
        packed: &Packed,
        store: &mut dyn FnMut(usize, usize, &Sums, usize),
    ) {
        // Two blocks at a time on separate tile registers, so the second
        // block's multiply overlaps the first one's store.
        let mut dots = [[[0i32; TILE]; TILE]; 2];
        let mut sums: Sums = [[0.0; TILE]; TILE];
        // SAFETY (asm): the configuration is a valid palette-1 layout; loads
        // read 16 rows of 32 bytes at stride `cols` inside `weights` and 8 rows
        // of 64 bytes inside a group's `values`; stores write 16 rows of 64
        // bytes into `dots`. Compiled code never uses the tile registers.
        // Prefetches may point past `weights`: they never fault.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly));
            for (w_group, rows) in weights.chunks_exact(TILE * cols).enumerate() {
                for (g, group) in packed.groups.iter().enumerate() {
                    let mut acc = [_mm512_setzero_ps(); TILE];
                    for b in (0..packed.blocks).step_by(2) {
                        let w = rows.as_ptr().add(b * BLOCK);
                        if g == 0 {
                            // The next 16 weight rows' cache lines at these
                            // columns: a short prompt uses each weight once,
                            // so the tiles would otherwise wait on memory.
                            for d in 0..TILE {
                                let ahead = w.wrapping_add((TILE + d) * cols);
                                _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                            }
                        }
                        let x = group.values.as_ptr().add(b * TILE_BYTES);
                        block_dots!("tmm0", "tmm1", "tmm2", w, cols, x, dots[0].as_mut_ptr());
                        let pair = b + 1 < packed.blocks;
                        if pair {
                            let (w, x) = (w.add(BLOCK), x.add(TILE_BYTES));
                            block_dots!("tmm3", "tmm4", "tmm5", w, cols, x, dots[1].as_mut_ptr());
                        }
                        for (i, dots) in dots[..1 + pair as usize].iter().enumerate() {
                            let scales = group.scales.as_ptr().add((b + i) * TILE);
                            let scales = _mm512_loadu_ps(scales);
                            for (acc, dots) in acc.iter_mut().zip(dots) {
                                let d =
                                    _mm512_cvtepi32_ps(_mm512_loadu_si512(dots.as_ptr().cast()));
                                *acc = _mm512_fmadd_ps(d, scales, *acc);
                            }
                        }
                    }
                    for (sum, acc) in sums.iter_mut().zip(acc) {
                        _mm512_storeu_ps(sum.as_mut_ptr(), acc);
                    }
                    let valid = (packed.rows - g * TILE).min(TILE);
                    store(w_group * TILE, g * TILE, &sums, valid);
                }
            }
            asm!("tilerelease", options(nostack, nomem));
        }
    }

    /// Up to 16 rows `x` of `cols` values quantized into one [`Group`].
    ///
    /// # Safety
    /// AVX2 must be present (it vectorizes the rounding).
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_group(x: &[f32], cols: usize) -> Group {
        let blocks = cols / BLOCK;
        let mut values = vec![0i8; blocks * TILE_BYTES];
        let mut scales = vec![0.0f32; blocks * TILE];
        let mut q = [0i8; BLOCK];
        for (lane, row) in x.chunks_exact(cols).enumerate() {
            for (b, xs) in row.chunks_exact(BLOCK).enumerate() {
                scales[b * TILE + lane] = quantize_block(xs, &mut q);
                let tile = &mut values[b * TILE_BYTES..][..TILE_BYTES];
                for (r, quad) in q.chunks_exact(4).enumerate() {
                    tile[r * 4 * TILE + lane * 4..][..4].copy_from_slice(quad);
                }
            }
        }
        Group { values, scales }
    }

    /// The tile layout checked without AMX: `tileloadd`, `tdpbssd` and
    /// `tilestored` in software, as the Intel SDM defines them, on
    /// [`CONFIG`]'s shapes and the strides [`multiply`] passes.
    #[cfg(test)]
    mod emulated {
        use super::*;
        use crate::q8::Q8Rows;

        /// A tile as `tileloadd` fills it: `rows` rows of `bytes` bytes, row
        /// `r` read at `memory[r * stride..]`.
        fn load(memory: &[i8], stride: usize, tile: usize) -> Vec<Vec<i8>> {
            let (rows, bytes) = (
                CONFIG.rows[tile] as usize,
                CONFIG.bytes_per_row[tile] as usize,
            );
            (0..rows)
                .map(|r| memory[r * stride..][..bytes].to_vec())
                .collect()
        }

        /// `tdpbssd c, a, b` on a zeroed `c`: `c[m][n] = Σ_k Σ_i a[m][4k+i] ·
        /// b[k][4n+i]` for `m` below `a`'s rows, `n` below `c`'s bytes / 4 and
        /// `k` below `a`'s bytes / 4.
        fn dot_product(c: usize, a: &[Vec<i8>], b: &[Vec<i8>]) -> Vec<Vec<i32>> {
            let columns = CONFIG.bytes_per_row[c] as usize / 4;
            a.iter()
                .map(|a| {
                    (0..columns)
                        .map(|n| {
                            (0..a.len() / 4)
                                .flat_map(|k| (0..4).map(move |i| (k, i)))
                                .map(|(k, i)| a[4 * k + i] as i32 * b[k][4 * n + i] as i32)
                                .sum()
                        })
                        .collect()
                })
                .collect()
        }

        #[test]
        fn the_tile_shapes_fit_together() {
            for (c, a, b) in [(0, 1, 2), (3, 4, 5)] {
                // tdpbssd's constraints (SDM): rows(c) = rows(a),
                // bytes(a) = 4 · rows(b), bytes(c) = bytes(b).
                assert_eq!(CONFIG.rows[c], CONFIG.rows[a]);
                assert_eq!(CONFIG.bytes_per_row[a], 4 * CONFIG.rows[b] as u16);
                assert_eq!(CONFIG.bytes_per_row[c], CONFIG.bytes_per_row[b]);
                // One block of 16 weight rows by 16 activation rows of i32.
                assert_eq!(CONFIG.rows[c] as usize, TILE);
                assert_eq!(CONFIG.bytes_per_row[a] as usize, BLOCK);
                assert_eq!(CONFIG.bytes_per_row[c] as usize, TILE * 4);
            }
            // Tiles 6 and 7 unused: a palette-1 configuration must zero them.
            assert!(CONFIG.rows[6..].iter().all(|&r| r == 0));
            assert!(CONFIG.bytes_per_row[6..].iter().all(|&b| b == 0));
        }

        #[test]
        fn a_packed_group_multiplies_to_the_exact_block_dots() {
            if !is_x86_feature_detected!("avx2") {
                eprintln!("AVX2 not available here: nothing to test");
                return;
            }
            let (rows, cols) = (13, 3 * BLOCK);
            let x: Vec<f32> = (0..rows * cols)
                .map(|i| (i as f32 * 0.37).cos() * 3.0)
                .collect();
            let w: Vec<i8> = (0..TILE * cols)
                .map(|i| ((i * 53 + 11) % 255) as i32 - 127)
                .map(|v| v as i8)
                .collect();
            // SAFETY: AVX2 is present.
            let group = unsafe { quantize_group(&x, cols) };
            let xq = Q8Rows::quantize(&x, cols);
            for b in 0..cols / BLOCK {
                // As `multiply` addresses block `b` for tiles 1 and 2.
                let a = load(&w[b * BLOCK..], cols, 1);
                let packed = load(&group.values[b * TILE_BYTES..], TILE * 4, 2);
                let dots = dot_product(0, &a, &packed);
                for (d, dots) in dots.iter().enumerate() {
                    for (e, &dot) in dots.iter().enumerate() {
                        let want: i32 = if e < rows {
                            let q = &xq.row(e).values[b * BLOCK..][..BLOCK];
                            let w = &w[d * cols + b * BLOCK..][..BLOCK];
                            q.iter().zip(w).map(|(&q, &w)| q as i32 * w as i32).sum()
                        } else {
                            0
                        };
                        assert_eq!(dot, want, "block {b}, weight row {d}, activation row {e}");
                    }
                }
                for e in 0..TILE {
                    let want = if e < rows { xq.row(e).scales[b] } else { 0.0 };
                    assert_eq!(group.scales[b * TILE + e], want, "block {b}, row {e}");
                }
            }
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod x86 {
    use super::{Group, Packed, Sums};

    pub fn supported() -> bool {
        false
    }

    pub fn request_permission() -> bool {
        false
    }

    /// Never called: [`Packed`] is never made where AMX is not supported.
    pub unsafe fn multiply(
        _: &[i8],
        _: usize,
        _: &Packed,
        _: &mut dyn FnMut(usize, usize, &Sums, usize),
    ) {
        unreachable!("AMX is not supported on this target")
    }

    /// Never called, as [`multiply`].
    pub unsafe fn quantize_group(_: &[f32], _: usize) -> Group {
        unreachable!("AMX is not supported on this target")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::q8::{block_dot, Q8Rows};

    fn weights(len: usize) -> Vec<i8> {
        (0..len)
            .map(|i| ((i * 37 + 5) % 255) as i32 - 127)
            .map(|v| v as i8)
            .collect()
    }

    #[test]
    fn amx_gives_exactly_the_block_fold() {
        if !available() {
            eprintln!("AMX not available here: nothing to test");
            return;
        }
        let cols = 96;
        // Two groups of weight rows and a partial one.
        let w = weights(37 * cols);
        // 21 rows: one full group and a partial one.
        let x: Vec<f32> = (0..21 * cols)
            .map(|i| (i as f32 * 0.61).sin() * 2.0)
            .collect();
        // The same int8 values as the other kernels read.
        let xq = Q8Rows::quantize(&x, cols);
        let packed = Packed::quantize(&x, cols).expect("whole blocks");
        assert_eq!((packed.rows(), packed.cols()), (21, cols));
        let mut seen = 0;
        packed.multiply(&w, |j, t, sums, count| {
            for (d, row) in sums.iter().enumerate().take(37 - j) {
                for (e, &v) in row[..count].iter().enumerate() {
                    let want = block_dot(&w[(j + d) * cols..][..cols], xq.row(t + e));
                    assert_eq!(v, want, "({}, {})", j + d, t + e);
                    seen += 1;
                }
            }
        });
        assert_eq!(seen, 37 * 21);
    }

    #[test]
    fn partial_blocks_are_not_packed() {
        assert!(Packed::quantize(&[1.0; 40], 40).is_none());
    }
}
