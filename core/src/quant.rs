//! Symmetric int8 quantization of weight matrices, one scale per output row.

/// Quantizes a row-major matrix with `cols` columns: returns the int8 values
/// and, per row, the scale `s` such that `w ≈ q · s` (`s = max|w_row| / 127`).
pub fn quantize_rows(values: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(values.len() / cols);
    for row in values.chunks_exact(cols) {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        scales.push(scale);
        q.extend(
            row.iter()
                .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
        );
    }
    (q, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_at_most_half_a_step_per_row() {
        let values: Vec<f32> = (0..64)
            .map(|i| ((i * 7919) % 97) as f32 / 13.0 - 3.0)
            .collect();
        let (q, scales) = quantize_rows(&values, 16);
        for (r, row) in values.chunks(16).enumerate() {
            for (c, v) in row.iter().enumerate() {
                let back = q[r * 16 + c] as f32 * scales[r];
                assert!((back - v).abs() <= scales[r] / 2.0 + 1e-6);
            }
        }
        assert!(q.iter().any(|&v| v == 127 || v == -127));
    }

    #[test]
    fn zero_rows_get_a_harmless_scale() {
        let (q, scales) = quantize_rows(&[0.0; 4], 4);
        assert_eq!(q, vec![0; 4]);
        assert_eq!(scales, vec![1.0]);
    }
}
