//! Symmetric int8 quantization of weight matrices, one scale per output row,
//! and [`QuantMatrix`], the in-memory form the int8 kernels read.

use crate::error::{Error, Result};
use std::sync::Arc;

/// Bytes an int8 matrix reads its values from: the memory-mapped model file, or
/// an owned copy when the model was loaded from a buffer.
pub type Storage = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// An int8 matrix `[rows, cols]` with one f32 scale per row (`w ≈ q · scale`),
/// its values read in place from [`Storage`] (no copy of a mapped file).
pub struct QuantMatrix {
    storage: Storage,
    offset: usize,
    rows: usize,
    cols: usize,
    scales: Vec<f32>,
}

impl QuantMatrix {
    /// Views `rows · cols` bytes of `storage` from `offset` as int8 values.
    pub fn new(
        storage: Storage,
        offset: usize,
        rows: usize,
        cols: usize,
        scales: Vec<f32>,
    ) -> Result<QuantMatrix> {
        let end = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_add(offset))
            .ok_or_else(|| Error::InvalidModel("int8 matrix size overflows".into()))?;
        if end > (*storage).as_ref().len() || scales.len() != rows {
            return Err(Error::InvalidModel(format!(
                "int8 matrix [{rows}, {cols}] does not fit its data or scales"
            )));
        }
        Ok(QuantMatrix {
            storage,
            offset,
            rows,
            cols,
            scales,
        })
    }

    /// Quantizes a row-major f32 matrix with `cols` columns into owned storage.
    pub fn quantize(values: &[f32], cols: usize) -> QuantMatrix {
        let (q, scales) = quantize_rows(values, cols);
        let bytes: Vec<u8> = q.into_iter().map(|v| v as u8).collect();
        let rows = scales.len();
        QuantMatrix::new(Arc::new(bytes), 0, rows, cols, scales).expect("sizes agree")
    }

    /// Number of rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (input features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Per-row scales.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The int8 values of row `r`.
    pub fn row(&self, r: usize) -> &[i8] {
        self.row_range(r, 1)
    }

    /// The int8 values of rows `first..first + count`, row-major.
    pub fn row_range(&self, first: usize, count: usize) -> &[i8] {
        let bytes =
            &(*self.storage).as_ref()[self.offset + first * self.cols..][..count * self.cols];
        // SAFETY: i8 and u8 have the same size, alignment and valid bit patterns.
        unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len()) }
    }

    /// Writes row `r`, dequantized, into `out` (`cols` long).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let scale = self.scales[r];
        for (o, &q) in out.iter_mut().zip(self.row(r)) {
            *o = q as f32 * scale;
        }
    }
}

impl std::fmt::Debug for QuantMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QuantMatrix[{}, {}]", self.rows, self.cols)
    }
}

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
    fn matrix_rows_dequantize_close_to_the_original() {
        let values: Vec<f32> = (0..48).map(|i| (i as f32 * 0.37).sin()).collect();
        let m = QuantMatrix::quantize(&values, 12);
        assert_eq!((m.rows(), m.cols()), (4, 12));
        let mut row = vec![0.0; 12];
        for r in 0..4 {
            m.dequantize_row(r, &mut row);
            for (a, b) in row.iter().zip(&values[r * 12..]) {
                assert!((a - b).abs() <= m.scales()[r] / 2.0 + 1e-6);
            }
        }
    }

    #[test]
    fn matrix_outside_its_storage_is_an_error() {
        let storage: Storage = Arc::new(vec![0u8; 10]);
        assert!(QuantMatrix::new(storage.clone(), 0, 2, 5, vec![1.0; 2]).is_ok());
        assert!(QuantMatrix::new(storage.clone(), 1, 2, 5, vec![1.0; 2]).is_err());
        assert!(QuantMatrix::new(storage.clone(), 0, 2, 5, vec![1.0; 3]).is_err());
        assert!(QuantMatrix::new(storage, usize::MAX, 2, 5, vec![1.0; 2]).is_err());
    }

    #[test]
    fn zero_rows_get_a_harmless_scale() {
        let (q, scales) = quantize_rows(&[0.0; 4], 4);
        assert_eq!(q, vec![0; 4]);
        assert_eq!(scales, vec![1.0]);
    }
}
