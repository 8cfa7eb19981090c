//! The single-file model format: a safetensors file that carries the
//! hyper-parameters and the tokenizer with the weights, so an app ships one asset.
//!
//! Metadata keys: `format` = `chaya-v1`, `config` = [`Config`] as JSON. The
//! `tokenizer.json` text is the `U8` tensor [`TOKENIZER_TENSOR`] (as metadata,
//! it cost 7 ms of load time to unescape; files that keep it in a `tokenizer`
//! metadata key, as before 2026-12-03, are still read). Weights keep the
//! checkpoint's names. Matrices are stored as `F32`, `F16`, `BF16`, or `I8`
//! with a sibling `<name>.scale_q` (`F32`, one scale per row:
//! `w[r][c] = q[r][c] · scale[r]`);
//! norm scales are always `F32`.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::quant::{QuantMatrix, Storage};
use safetensors::Dtype;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_core::prelude::Tensor;

/// Value of the `format` metadata key.
pub const FORMAT: &str = "chaya-v1";
/// Name of the `U8` tensor holding the `tokenizer.json` text.
pub const TOKENIZER_TENSOR: &str = "tokenizer.json";
/// Suffix of the per-row scales of an int8 matrix.
pub const SCALE_SUFFIX: &str = ".scale_q";

/// One tensor as stored: raw little-endian bytes with their type and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTensor {
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Little-endian element bytes.
    pub data: Vec<u8>,
}

impl StoredTensor {
    /// An `F32` tensor.
    pub fn f32(shape: Vec<usize>, values: &[f32]) -> StoredTensor {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        StoredTensor {
            dtype: Dtype::F32,
            shape,
            data,
        }
    }
}

/// A tensor as the runtime keeps it: f32, or int8 read in place.
#[derive(Clone, Debug)]
pub enum Weight {
    /// Stored as f32, f16 or bf16; decoded to an f32 tract tensor, which the
    /// graph takes as a constant without copying it.
    Dense(Arc<Tensor>),
    /// Stored as int8 with per-row scales; kept as int8.
    Int8(Arc<QuantMatrix>),
}

impl Weight {
    /// Shape, outermost first.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Weight::Dense(t) => t.shape().to_vec(),
            Weight::Int8(m) => vec![m.rows(), m.cols()],
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything a model file holds, decoded and validated.
#[derive(Debug)]
pub struct ModelFile {
    /// Hyper-parameters.
    pub config: Config,
    /// The `tokenizer.json` text.
    pub tokenizer_json: String,
    /// Every tensor named in [`Config::tensor_shapes`].
    pub tensors: HashMap<String, Weight>,
    /// Storage type of each tensor (`I8`, `F16`, `F32`...), for reports.
    pub dtypes: BTreeMap<String, Dtype>,
}

impl ModelFile {
    /// Reads a model file, memory-mapped.
    ///
    /// Before mapping, the safetensors header is read with plain reads and the
    /// file's length checked against its tensor table, so a truncated or
    /// corrupt file fails with [`Error::InvalidModel`] rather than a fault.
    /// int8 weights stay in the mapping for the model's lifetime: the file must
    /// not be truncated or rewritten in place meanwhile (reading a page cut off
    /// by truncation raises SIGBUS; rewritten bytes change the weights). Replace
    /// model files by renaming a new file over them, as `chaya convert` does.
    pub fn read_path(path: impl AsRef<Path>) -> Result<ModelFile> {
        let path = path.as_ref();
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let metadata = file.metadata().map_err(|e| Error::io(path, e))?;
        if metadata.is_dir() {
            return Err(Error::io(path, std::io::ErrorKind::IsADirectory.into()));
        }
        let len = metadata.len();
        let header = read_header(&mut file, len)
            .map_err(|what| Error::InvalidModel(format!("{}: {what}", path.display())))?;
        // SAFETY: the mapping is read-only and every offset is checked against
        // its length before use; see the doc comment for files changed while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let map = Arc::new(map);
        Self::parse(&map[..], header, Some(map.clone()))
    }

    /// Reads a model file from memory (e.g. an app asset); int8 weights are copied.
    pub fn read_bytes(bytes: &[u8]) -> Result<ModelFile> {
        let header =
            read_header(&mut &bytes[..], bytes.len() as u64).map_err(Error::InvalidModel)?;
        Self::parse(bytes, header, None)
    }

    /// Reads a model file from memory it takes over; int8 weights are read
    /// in place, as from a mapped file, instead of copied.
    pub fn read_vec(bytes: Vec<u8>) -> Result<ModelFile> {
        let header =
            read_header(&mut &bytes[..], bytes.len() as u64).map_err(Error::InvalidModel)?;
        let bytes = Arc::new(bytes);
        Self::parse(&bytes[..], header, Some(bytes.clone()))
    }

    /// Decodes and validates `bytes`, whose safetensors header is `header`;
    /// int8 tensors borrow from `shared` when given (it must hold `bytes`),
    /// else from copies.
    fn parse(bytes: &[u8], header: Header, shared: Option<Storage>) -> Result<ModelFile> {
        let invalid = |what: String| Error::InvalidModel(what);
        let Header {
            len: header_len,
            table: header,
        } = header;
        let meta = header.metadata().clone().unwrap_or_default();
        match meta.get("format").map(String::as_str) {
            Some(FORMAT) => {}
            Some(other) => return Err(invalid(format!("format `{other}`, expected `{FORMAT}`"))),
            None => {
                return Err(invalid(
                    "no `format` metadata: not a CHAYA model file (convert checkpoints with `chaya convert`)".to_string()
                ))
            }
        }
        let config_json = meta
            .get("config")
            .ok_or_else(|| invalid("no `config` metadata".into()))?;
        let config: Config = serde_json::from_str(config_json)
            .map_err(|e| invalid(format!("`config` metadata is not a valid config: {e}")))?;
        config.validate()?;
        // The header was validated against the file's length: tensors lie
        // inside `data`, in order (a mapped file cut meanwhile is caught here).
        let data = bytes
            .get(8 + header_len..)
            .filter(|data| data.len() == header.data_len())
            .ok_or_else(|| invalid("the file changed while it was being read".into()))?;
        let tensor = |name: &str| {
            header.info(name).map(|info| {
                let (start, end) = info.data_offsets;
                (info.dtype, info.shape.as_slice(), &data[start..end])
            })
        };
        let tokenizer_json = match (tensor(TOKENIZER_TENSOR), meta.get("tokenizer")) {
            (Some((Dtype::U8, [_], text)), _) => String::from_utf8(text.to_vec()).map_err(|e| {
                invalid(format!("tensor `{TOKENIZER_TENSOR}` is not UTF-8 text: {e}"))
            })?,
            (Some((dtype, shape, _)), _) => {
                return Err(invalid(format!(
                    "tensor `{TOKENIZER_TENSOR}` must be U8 with one dimension, not {dtype:?} {shape:?}"
                )))
            }
            (None, Some(text)) => {
                log::info!(
                    "this model file keeps its tokenizer in the metadata (the older layout): \
                     converting it again makes it load faster"
                );
                text.clone()
            }
            (None, None) => {
                return Err(invalid(format!(
                    "no tokenizer (neither a `{TOKENIZER_TENSOR}` tensor nor `tokenizer` metadata)"
                )))
            }
        };

        let expected = config.tensor_shapes();
        let mut allowed: Vec<String> = expected.iter().map(|(n, _)| n.clone()).collect();
        allowed.push(TOKENIZER_TENSOR.into());
        allowed.extend(expected.iter().map(|(n, _)| format!("{n}{SCALE_SUFFIX}")));
        if let Some(unknown) = header
            .offset_keys()
            .into_iter()
            .find(|n| !allowed.iter().any(|a| a == n))
        {
            return Err(invalid(format!("unexpected tensor `{unknown}`")));
        }
        let mut tensors = HashMap::new();
        let mut dtypes = BTreeMap::new();
        for (name, shape) in expected {
            let (dtype, stored_shape, values) =
                tensor(&name).ok_or_else(|| invalid(format!("missing tensor `{name}`")))?;
            if stored_shape != shape.as_slice() {
                return Err(invalid(format!(
                    "tensor `{name}` has shape {stored_shape:?}, expected {shape:?}"
                )));
            }
            let weight = if dtype == Dtype::I8 {
                let scale_name = format!("{name}{SCALE_SUFFIX}");
                let (scale_type, scale_shape, scales) = tensor(&scale_name).ok_or_else(|| {
                    invalid(format!("int8 tensor `{name}` has no `{scale_name}`"))
                })?;
                if scale_type != Dtype::F32 || scale_shape != [shape[0]] {
                    return Err(invalid(format!(
                        "`{scale_name}` must be F32 [{}]",
                        shape[0]
                    )));
                }
                let scales = finite(&scale_name, decode(Dtype::F32, scales)?.unwrap_or_default())?;
                let (storage, offset) = match &shared {
                    Some(storage) => (
                        storage.clone(),
                        values.as_ptr() as usize - bytes.as_ptr() as usize,
                    ),
                    None => (Arc::new(values.to_vec()) as Storage, 0),
                };
                let cols = shape[1..].iter().product();
                Weight::Int8(Arc::new(QuantMatrix::new(
                    storage, offset, shape[0], cols, scales,
                )?))
            } else {
                let values = decode(dtype, values)?.ok_or_else(|| {
                    invalid(format!("tensor `{name}` has unsupported type {dtype:?}"))
                })?;
                let values = finite(&name, values)?;
                let tensor = Tensor::from_shape(&shape, &values)
                    .map_err(|e| invalid(format!("tensor `{name}`: {e}")))?;
                Weight::Dense(Arc::new(tensor))
            };
            dtypes.insert(name.clone(), dtype);
            tensors.insert(name, weight);
        }
        Ok(ModelFile {
            config,
            tokenizer_json,
            tensors,
            dtypes,
        })
    }
}

/// Largest safetensors header accepted (the `safetensors` crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A safetensors header: its length in bytes and its tensor table, validated
/// (tensors in order, each as long as its type and shape say).
struct Header {
    len: usize,
    table: safetensors::tensor::Metadata,
}

/// Reads the safetensors header at the start of `reader` and checks that the
/// file (`len` bytes in all) is exactly as long as its tensor table says;
/// the error names what is wrong.
fn read_header(reader: &mut impl std::io::Read, len: u64) -> std::result::Result<Header, String> {
    if len < 8 {
        return Err(format!("only {len} bytes long"));
    }
    let mut n = [0u8; 8];
    reader.read_exact(&mut n).map_err(|e| e.to_string())?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_BYTES {
        return Err(format!(
            "not a safetensors file (header length {n} exceeds {MAX_HEADER_BYTES} bytes)"
        ));
    }
    if 8 + n > len {
        return Err(format!(
            "truncated: the header needs {} bytes, the file has {len}",
            8 + n
        ));
    }
    let mut header = vec![0u8; n as usize];
    reader.read_exact(&mut header).map_err(|e| e.to_string())?;
    let table: safetensors::tensor::Metadata = serde_json::from_slice(&header)
        .map_err(|e| format!("not a safetensors file (bad header: {e})"))?;
    let tensors = table.tensors();
    let data_len = tensors
        .values()
        .map(|t| t.data_offsets.1)
        .max()
        .unwrap_or(0) as u64;
    let expected = (8 + n).saturating_add(data_len);
    if len < expected {
        let cut = len - 8 - n;
        let name = tensors
            .iter()
            .find(|(_, t)| (t.data_offsets.0 as u64) <= cut && cut < t.data_offsets.1 as u64)
            .map_or(String::new(), |(name, _)| format!(" in tensor `{name}`"));
        return Err(format!(
            "truncated{name}: the tensor table needs {expected} bytes, the file has {len}"
        ));
    }
    if len > expected {
        return Err(format!(
            "{} bytes after the last tensor (the tensor table ends at byte {expected})",
            len - expected
        ));
    }
    Ok(Header {
        len: n as usize,
        table,
    })
}

/// Decodes little-endian `F32`, `F16` or `BF16` bytes to f32; `Ok(None)` for
/// other types, an error when the values do not fit in memory.
fn decode(dtype: Dtype, bytes: &[u8]) -> Result<Option<Vec<f32>>> {
    let width = match dtype {
        Dtype::F32 => 4,
        Dtype::F16 | Dtype::BF16 => 2,
        _ => return Ok(None),
    };
    let mut values = Vec::new();
    values.try_reserve_exact(bytes.len() / width).map_err(|_| {
        Error::InvalidModel(format!(
            "{} values do not fit in memory",
            bytes.len() / width
        ))
    })?;
    let pairs = || {
        bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    match dtype {
        Dtype::F32 => values.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        Dtype::F16 => values.extend(pairs().map(|h| half::f16::from_bits(h).to_f32())),
        _ => values.extend(pairs().map(|h| half::bf16::from_bits(h).to_f32())),
    }
    Ok(Some(values))
}

/// Rewrites the `__metadata__` entry that `safetensors::serialize` put first
/// in `file`'s header with its keys sorted (it writes them in hash order), so
/// converting a checkpoint twice gives the same bytes. Same keys and values,
/// so the same length: nothing else moves. Left as is if the header does not
/// start as expected.
fn sort_metadata(file: &mut [u8], metadata: &HashMap<String, String>) {
    let as_written = serde_json::to_string(metadata).expect("strings serialize");
    let sorted = serde_json::to_string(&metadata.iter().collect::<BTreeMap<_, _>>())
        .expect("strings serialize");
    let start = 8 + r#"{"__metadata__":"#.len();
    if let Some(entry) = file.get_mut(start..start + as_written.len()) {
        if entry == as_written.as_bytes() {
            entry.copy_from_slice(sorted.as_bytes());
        }
    }
}

/// `values` of tensor `name`, or an error when one is NaN or infinite (such a
/// model would only ever produce NaN logits, sampled as token 0).
fn finite(name: &str, values: Vec<f32>) -> Result<Vec<f32>> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(values),
        Some(i) => Err(Error::InvalidModel(format!(
            "tensor `{name}` has a non-finite value ({}) at index {i}",
            values[i]
        ))),
    }
}

/// Whether `path` is a CHAYA model file (by its header's format tag).
#[cfg(feature = "convert")]
pub(crate) fn is_model_file(path: &Path) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    read_header(&mut file, len).is_ok_and(|header| {
        header
            .table
            .metadata()
            .as_ref()
            .and_then(|meta| meta.get("format"))
            .is_some_and(|format| format == FORMAT)
    })
}

/// Where [`write_model_file`] writes `path`'s bytes before renaming them into
/// place: `.NAME.partial` beside it (one name, so an interrupted write is
/// replaced by the next rather than left to pile up).
pub fn partial_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// Writes a model file atomically: to [`partial_path`] first, renamed into
/// place only when complete, so a failure never leaves a partial file.
pub fn write_model_file(
    path: impl AsRef<Path>,
    config: &Config,
    tokenizer_json: &str,
    tensors: &BTreeMap<String, StoredTensor>,
) -> Result<()> {
    let path = path.as_ref();
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        (
            "config".to_string(),
            serde_json::to_string(config).expect("config serializes"),
        ),
    ]);
    let tokenizer = (
        TOKENIZER_TENSOR,
        Dtype::U8,
        vec![tokenizer_json.len()],
        tokenizer_json.as_bytes(),
    );
    let mut views = Vec::with_capacity(tensors.len() + 1);
    let weights = tensors
        .iter()
        .map(|(name, t)| (name.as_str(), t.dtype, t.shape.clone(), t.data.as_slice()));
    for (name, dtype, shape, data) in weights.chain([tokenizer]) {
        let view = safetensors::tensor::TensorView::new(dtype, shape, data)
            .map_err(|e| Error::InvalidModel(format!("tensor `{name}`: {e}")))?;
        views.push((name, view));
    }
    // Serialized in memory and written by hand: `serialize_to_file` goes
    // through a randomly named temporary file of its own, which an interrupt
    // would leave behind under a new name each time.
    let mut bytes = safetensors::serialize(views, Some(metadata.clone()))
        .map_err(|e| Error::InvalidModel(e.to_string()))?;
    sort_metadata(&mut bytes, &metadata);
    let tmp = partial_path(path);
    let written = std::fs::write(&tmp, bytes)
        .map_err(|e| Error::io(&tmp, e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;

    fn tiny_model() -> Vec<u8> {
        std::fs::read(crate::TINY_MODEL).unwrap()
    }

    /// The tiny model's weights with the tokenizer as `tensor` and/or as
    /// `tokenizer` metadata.
    fn with_tokenizer(
        tensor: Option<(Dtype, Vec<usize>, &[u8])>,
        metadata: Option<&str>,
    ) -> Vec<u8> {
        let file = tiny_model();
        let (_, header) = safetensors::SafeTensors::read_metadata(&file).unwrap();
        let parsed = safetensors::SafeTensors::deserialize(&file).unwrap();
        let mut meta = header.metadata().clone().unwrap();
        if let Some(text) = metadata {
            meta.insert("tokenizer".into(), text.into());
        }
        let mut views: Vec<(String, TensorView)> = parsed
            .tensors()
            .into_iter()
            .filter(|(name, _)| name != TOKENIZER_TENSOR)
            .collect();
        if let Some((dtype, shape, bytes)) = tensor {
            views.push((
                TOKENIZER_TENSOR.into(),
                TensorView::new(dtype, shape, bytes).unwrap(),
            ));
        }
        safetensors::serialize(views, Some(meta)).unwrap()
    }

    /// The tiny model with f32 tensor `name`'s value at `index` set to `value`.
    fn with_value(name: &str, index: usize, value: f32) -> Vec<u8> {
        let file = tiny_model();
        let (_, header) = safetensors::SafeTensors::read_metadata(&file).unwrap();
        let parsed = safetensors::SafeTensors::deserialize(&file).unwrap();
        let original = parsed.tensor(name).unwrap();
        let mut bytes = original.data().to_vec();
        bytes[index * 4..index * 4 + 4].copy_from_slice(&value.to_le_bytes());
        let mut views: Vec<(String, TensorView)> = parsed
            .tensors()
            .into_iter()
            .filter(|(n, _)| n != name)
            .collect();
        views.push((
            name.into(),
            TensorView::new(Dtype::F32, original.shape().to_vec(), &bytes).unwrap(),
        ));
        safetensors::serialize(views, header.metadata().clone()).unwrap()
    }

    fn error(bytes: &[u8]) -> String {
        ModelFile::read_bytes(bytes).unwrap_err().to_string()
    }

    #[test]
    fn tokenizer_is_read_from_its_tensor_or_older_files_metadata() {
        let current = ModelFile::read_bytes(&tiny_model()).unwrap();
        let text = current.tokenizer_json.as_str();
        assert!(text.contains("\"model\""), "{text:.80}");
        let older = ModelFile::read_bytes(&with_tokenizer(None, Some(text))).unwrap();
        assert_eq!(older.tokenizer_json, text);
        assert_eq!(older.dtypes, current.dtypes);
        let both = with_tokenizer(
            Some((Dtype::U8, vec![text.len()], text.as_bytes())),
            Some("{}"),
        );
        assert_eq!(ModelFile::read_bytes(&both).unwrap().tokenizer_json, text);
    }

    #[test]
    fn written_files_are_reproducible_byte_for_byte() {
        let model = ModelFile::read_bytes(&tiny_model()).unwrap();
        let tensors = BTreeMap::from([(
            "norm_f.scale".to_string(),
            StoredTensor::f32(vec![2], &[1.0, 2.0]),
        )]);
        let path =
            std::env::temp_dir().join(format!("chaya-repro-{}.safetensors", std::process::id()));
        let writes: Vec<Vec<u8>> = (0..8)
            .map(|_| {
                write_model_file(&path, &model.config, &model.tokenizer_json, &tensors).unwrap();
                std::fs::read(&path).unwrap()
            })
            .collect();
        std::fs::remove_file(&path).unwrap();
        // Hash order would put `format` first in about half of the writes.
        let sorted = br#"{"__metadata__":{"config":"#;
        let start = &writes[0][8..8 + sorted.len()];
        assert_eq!(start, sorted, "{}", String::from_utf8_lossy(start));
        assert!(writes.iter().all(|w| *w == writes[0]));
        let err = ModelFile::read_bytes(&writes[0]).unwrap_err().to_string();
        assert!(
            err.contains("missing tensor"),
            "header and metadata read: {err}"
        );
    }

    #[test]
    fn non_finite_weights_or_scales_are_refused_by_name() {
        for (name, value) in [
            ("layers.0.norm1.scale", f32::NAN),
            ("norm_f.scale", f32::INFINITY),
            ("layers.1.ffn.w2.weight.scale_q", f32::NEG_INFINITY),
        ] {
            let err = error(&with_value(name, 3, value));
            assert!(
                err.contains(&format!(
                    "`{name}` has a non-finite value ({value}) at index 3"
                )),
                "{err}"
            );
        }
        ModelFile::read_bytes(&with_value("norm_f.scale", 3, 0.0)).unwrap();
    }

    #[test]
    fn paths_that_cannot_be_read_are_io_errors_naming_them() {
        let dir = std::env::temp_dir();
        let missing = dir.join("chaya-no-such-model.safetensors");
        for path in [dir.as_path(), missing.as_path()] {
            match ModelFile::read_path(path) {
                Err(Error::Io { path: named, .. }) => assert_eq!(named, path.display().to_string()),
                other => panic!("{}: {:?}", path.display(), other.map(|_| ())),
            }
        }
    }

    #[test]
    fn missing_or_malformed_tokenizer_is_a_clear_error() {
        assert!(error(&with_tokenizer(None, None)).contains("no tokenizer"));
        let not_utf8 = [b'{', 0xff, b'}'];
        let err = error(&with_tokenizer(Some((Dtype::U8, vec![3], &not_utf8)), None));
        assert!(err.contains("not UTF-8"), "{err}");
        for (dtype, shape) in [(Dtype::I8, vec![4]), (Dtype::U8, vec![2, 2])] {
            let err = error(&with_tokenizer(Some((dtype, shape, b"{  }")), None));
            assert!(err.contains("must be U8 with one dimension"), "{err}");
        }
    }
}
