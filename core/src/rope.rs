//! CHAYA's own rotary position embedding (spec: "RoPE: CHAYA's own variant").
//!
//! For a head vector `x` of width `2h` at absolute position `p`, with
//! `f_j = base^(-2j / 2h)`:
//! - output `i < h`  is `x[i]·cos(p·f_i) − x[2i+1]·sin(p·f_i)`,
//! - output `i ≥ h`  is `x[i]·cos(p·f_{i−h}) + x[2(i−h)]·sin(p·f_{i−h})`.
//!
//! This mixes an interleaved "rotate half" with a split-half frequency layout, so
//! it is not a rotation: neither GPT-NeoX nor GPT-J kernels compute it, and keys
//! are tied to their absolute positions (a cache cannot be shifted).

/// Precomputed cos/sin tables of CHAYA's RoPE for positions `0..max_positions`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChayaRope {
    head_dim: usize,
    max_positions: usize,
    /// `cos[p * head_dim + i] = cos(p · f_{i mod h})`.
    cos: Vec<f32>,
    /// `sin[p * head_dim + i] = sin(p · f_{i mod h})`.
    sin: Vec<f32>,
}

/// Frequency `j` (of `head_dim / 2`) of heads of width `head_dim`:
/// `1 / base^(2j / head_dim)`, the checkpoints' `inv_freq[j]`.
pub fn inv_freq(base: f32, head_dim: usize, j: usize) -> f64 {
    1.0 / f64::from(base).powf(2.0 * j as f64 / head_dim as f64)
}

impl ChayaRope {
    /// Tables for heads of width `head_dim` (even) and positions below `max_positions`.
    pub fn new(head_dim: usize, base: f32, max_positions: usize) -> ChayaRope {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(max_positions * head_dim);
        let mut sin = Vec::with_capacity(max_positions * head_dim);
        for p in 0..max_positions {
            for i in 0..head_dim {
                let angle = p as f64 * inv_freq(base, head_dim, i % half);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        ChayaRope {
            head_dim,
            max_positions,
            cos,
            sin,
        }
    }

    /// Positions covered by the tables.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Writes `rope(x)` at absolute position `pos` into `out`; both have `head_dim` values.
    pub fn apply(&self, x: &[f32], pos: usize, out: &mut [f32]) {
        let (d, h) = (self.head_dim, self.head_dim / 2);
        debug_assert!(x.len() == d && out.len() == d && pos < self.max_positions);
        let cos = &self.cos[pos * d..][..d];
        let sin = &self.sin[pos * d..][..d];
        for i in 0..h {
            out[i] = x[i] * cos[i] - x[2 * i + 1] * sin[i];
            out[h + i] = x[h + i] * cos[h + i] + x[2 * i] * sin[h + i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spec's definition, written literally: rot(x) = concat(-x_odd, x_even).
    fn spec_rope(x: &[f64], p: f64, base: f64) -> Vec<f64> {
        let d = x.len();
        let rot: Vec<f64> = (0..d / 2)
            .map(|k| -x[2 * k + 1])
            .chain((0..d / 2).map(|k| x[2 * k]))
            .collect();
        (0..d)
            .map(|i| {
                let f = 1.0 / base.powf(2.0 * (i % (d / 2)) as f64 / d as f64);
                x[i] * (p * f).cos() + rot[i] * (p * f).sin()
            })
            .collect()
    }

    #[test]
    fn matches_the_spec_definition() {
        let rope = ChayaRope::new(80, 10000.0, 512);
        let x: Vec<f32> = (0..80)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 7.0)
            .collect();
        let mut out = vec![0.0; 80];
        for pos in [0usize, 1, 7, 255, 511] {
            rope.apply(&x, pos, &mut out);
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let expected = spec_rope(&x64, pos as f64, 10000.0);
            for (got, want) in out.iter().zip(&expected) {
                assert!(
                    (*got as f64 - want).abs() < 1e-5,
                    "pos {pos}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn is_not_a_rotation() {
        // A true rotation keeps the norm; CHAYA's variant does not (spec).
        let rope = ChayaRope::new(8, 10000.0, 4);
        let x = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let mut out = [0.0; 8];
        rope.apply(&x, 1, &mut out);
        let norm: f32 = out.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() > 1e-3, "norm {norm}");
    }

    #[test]
    fn position_zero_is_identity() {
        let rope = ChayaRope::new(16, 10000.0, 2);
        let x: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let mut out = vec![0.0; 16];
        rope.apply(&x, 0, &mut out);
        assert_eq!(out, x);
    }
}
