//! Conversion of the published PyTorch checkpoints into a CHAYA model file.
//!
//! Reads torch zip/pickle files (the wrapping dict with `model_state_dict` and
//! config ints, or a bare state dict; keys with or without `module.`; f32, f16
//! or bf16) and plain safetensors state dicts. Every key, shape and value is
//! validated against the configuration the tensors imply.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model_file::{is_model_file, write_model_file, StoredTensor, SCALE_SUFFIX};
use crate::quant::quantize_rows;
use candle_core::pickle::{Object, PthTensors, Stack};
use safetensors::Dtype;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Storage type of the converted matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WeightType {
    /// 32-bit floats: exact.
    F32,
    /// 16-bit floats.
    F16,
    /// 8-bit integers with one f32 scale per output row (the default).
    #[default]
    Int8,
}

/// What to convert and how.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Storage type of the matrices.
    pub weight_type: WeightType,
    /// Number of attention heads, for checkpoints that record it nowhere.
    pub n_heads: Option<usize>,
    /// Context length of the converted model (default 512).
    pub context_length: Option<usize>,
}

/// A checkpoint read into memory and checked against its configuration.
#[derive(Debug)]
pub struct Checkpoint {
    /// The configuration implied by the tensors (and the wrapper's ints).
    pub config: Config,
    /// Every tensor of [`Config::tensor_shapes`], as f32, row-major.
    pub tensors: BTreeMap<String, Vec<f32>>,
}

/// Reads and validates a `.pt` checkpoint or a safetensors state dict.
/// `progress` gets (tensors read, total).
pub fn read_checkpoint(
    path: &Path,
    options: &ConvertOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<Checkpoint> {
    let bad = |what: String| Error::InvalidCheckpoint(format!("{}: {what}", path.display()));
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut magic))
        .map_err(|e| Error::io(path, e))?;
    let (raw, wrapper) = if read == 4 && magic == *b"PK\x03\x04" {
        read_torch(path, &bad, &mut progress)?
    } else if is_model_file(path) {
        return Err(bad(
            "already a CHAYA model file (`chaya inspect` describes it); convert reads \
             PyTorch checkpoints and safetensors state dicts"
                .into(),
        ));
    } else {
        let tensors =
            candle_core::safetensors::load(path, &candle_core::Device::Cpu).map_err(|e| {
                bad(format!(
                    "neither a PyTorch zip checkpoint nor safetensors ({e})"
                ))
            })?;
        let tensors = tensors
            .into_iter()
            .map(|(name, t)| Ok((name, to_dense(&t).map_err(bad)?)))
            .collect::<Result<Vec<_>>>()?;
        (tensors, HashMap::new())
    };
    let mut unwrapped = HashMap::new();
    for (name, tensor) in raw {
        let key = name.strip_prefix("module.").unwrap_or(&name).to_string();
        if unwrapped.insert(key.clone(), tensor).is_some() {
            return Err(bad(format!(
                "tensor `{key}` appears twice (with and without `module.`)"
            )));
        }
    }
    let raw: HashMap<String, (Vec<usize>, Vec<f32>)> = unwrapped;
    let config = infer_config(&raw, &wrapper, options).map_err(&bad)?;
    config.validate().map_err(|e| bad(e.to_string()))?;
    let mut tensors = BTreeMap::new();
    let expected: HashMap<String, Vec<usize>> = config.tensor_shapes().into_iter().collect();
    let mut names: Vec<&String> = raw.keys().collect();
    names.sort();
    for name in names {
        let (shape, values) = &raw[name];
        if is_inv_freq(name) {
            if shape != &[config.head_dim() / 2] {
                return Err(bad(format!(
                    "`{name}` has shape {shape:?}, expected [{}]",
                    config.head_dim() / 2
                )));
            }
            continue;
        }
        let want = expected
            .get(name)
            .ok_or_else(|| bad(format!("unexpected tensor `{name}`")))?;
        if shape != want {
            return Err(bad(format!(
                "tensor `{name}` has shape {shape:?}, expected {want:?}"
            )));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "tensor `{name}` holds a non-finite value ({}) at index {i}",
                values[i]
            )));
        }
        tensors.insert(name.clone(), values.clone());
    }
    if let Some((missing, _)) = config
        .tensor_shapes()
        .into_iter()
        .find(|(n, _)| !tensors.contains_key(n))
    {
        return Err(bad(format!("missing tensor `{missing}`")));
    }
    Ok(Checkpoint { config, tensors })
}

/// Converts a checkpoint into a model file at `output` (written atomically).
pub fn convert(
    input: &Path,
    output: &Path,
    tokenizer_json: &str,
    options: &ConvertOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<Config> {
    check_output_path(input, output)?;
    let tokenizer = crate::tokenizer::Tokenizer::from_json(tokenizer_json)?;
    let mut checkpoint = read_checkpoint(input, options, &mut progress)?;
    if tokenizer.vocab_size() != checkpoint.config.vocab_size {
        return Err(Error::InvalidCheckpoint(format!(
            "{}: its vocabulary has {} tokens but the tokenizer {}",
            input.display(),
            checkpoint.config.vocab_size,
            tokenizer.vocab_size()
        )));
    }
    let eos = tokenizer
        .special_tokens()
        .iter()
        .find(|(s, _)| s == "<|endoftext|>");
    checkpoint.config.eos_token_id =
        eos.map_or(checkpoint.config.vocab_size as u32 - 1, |(_, id)| *id);
    checkpoint.config.validate()?;
    let mut stored = BTreeMap::new();
    for (name, values) in &checkpoint.tensors {
        let shape = checkpoint
            .config
            .tensor_shapes()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s);
        let shape = shape.expect("validated name");
        store(&mut stored, name, shape, values, options.weight_type);
    }
    write_model_file(
        output,
        &checkpoint.config,
        &compact_json(tokenizer_json)?,
        &stored,
    )?;
    Ok(checkpoint.config)
}

/// Fails before any work if `output` is `input` (the checkpoint would be
/// replaced) or its directory does not exist.
fn check_output_path(input: &Path, output: &Path) -> Result<()> {
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        if a == b {
            return Err(Error::InvalidInput(format!(
                "the output {} is the input checkpoint; write the model file elsewhere",
                output.display()
            )));
        }
    }
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty());
    match dir {
        Some(dir) if !dir.is_dir() => Err(Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the output directory does not exist",
            ),
        )),
        _ => Ok(()),
    }
}

/// `json` without its formatting whitespace: GPT-2's pretty-printed 3.5 MB
/// `tokenizer.json` becomes 1.5 MB, which halves the time to read it at load.
fn compact_json(json: &str) -> Result<String> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Error::Tokenizer(format!("cannot parse tokenizer.json: {e}")))?;
    Ok(value.to_string())
}

/// Adds one tensor to `stored` in the requested type (vectors always f32).
fn store(
    stored: &mut BTreeMap<String, StoredTensor>,
    name: &str,
    shape: Vec<usize>,
    values: &[f32],
    ty: WeightType,
) {
    let tensor = match (ty, shape.len()) {
        (WeightType::F32, _) | (_, 1) => StoredTensor::f32(shape, values),
        (WeightType::F16, _) => StoredTensor {
            dtype: Dtype::F16,
            data: values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
            shape,
        },
        (WeightType::Int8, _) => {
            let (q, scales) = quantize_rows(values, shape[1]);
            stored.insert(
                format!("{name}{SCALE_SUFFIX}"),
                StoredTensor::f32(vec![shape[0]], &scales),
            );
            StoredTensor {
                dtype: Dtype::I8,
                data: q.iter().map(|&v| v as u8).collect(),
                shape,
            }
        }
    };
    stored.insert(name.to_string(), tensor);
}

fn is_inv_freq(name: &str) -> bool {
    name.ends_with(".attn.rotary.inv_freq")
}

type RawTensors = Vec<(String, (Vec<usize>, Vec<f32>))>;

/// Reads a torch zip: its tensors and, for a wrapping dict, its integer entries.
fn read_torch(
    path: &Path,
    bad: &dyn Fn(String) -> Error,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(RawTensors, HashMap<String, i64>)> {
    let wrapper = check_pickles(path)
        .and_then(|()| read_wrapper_ints(path))
        .map_err(|e| bad(format!("not a readable PyTorch checkpoint ({e})")))?;
    let key = wrapper.is_some().then_some("model_state_dict");
    let pth =
        PthTensors::new(path, key).map_err(|e| bad(format!("cannot read the state dict ({e})")))?;
    let names: Vec<String> = pth.tensor_infos().keys().cloned().collect();
    if names.is_empty() {
        return Err(bad("holds no tensors: not a CHAYA checkpoint".into()));
    }
    let mut tensors = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let tensor = pth
            .get(name)
            .map_err(|e| bad(format!("tensor `{name}` is unreadable or truncated ({e})")))?
            .ok_or_else(|| bad(format!("tensor `{name}` vanished")))?;
        tensors.push((
            name.clone(),
            to_dense(&tensor).map_err(|e| bad(format!("tensor `{name}`: {e}")))?,
        ));
        progress(i + 1, names.len());
    }
    Ok((tensors, wrapper.unwrap_or_default()))
}

/// Largest pickle accepted inside a checkpoint (CHAYA's is a few KB).
const MAX_PICKLE_BYTES: u64 = 16 << 20;

/// Checks every pickle of a torch zip before candle's unpickler reads it: that
/// unpickler allocates whatever a string's length field says, so a corrupt
/// length would abort the process on a failed allocation.
fn check_pickles(path: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let name = entry.name().map_err(|e| e.to_string())?.into_owned();
        if !name.ends_with(".pkl") {
            continue;
        }
        let mut pickle = Vec::new();
        entry
            .take(MAX_PICKLE_BYTES + 1)
            .read_to_end(&mut pickle)
            .map_err(|e| format!("{name}: {e}"))?;
        if pickle.len() as u64 > MAX_PICKLE_BYTES {
            return Err(format!("{name} is larger than {MAX_PICKLE_BYTES} bytes"));
        }
        check_pickle(&pickle).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// Walks the opcodes candle's unpickler knows and checks that every length
/// field fits in the remaining bytes. Stops at `STOP` or at an opcode candle
/// rejects anyway.
fn check_pickle(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> std::result::Result<usize, String> {
        let start = *at;
        match start.checked_add(n).filter(|&end| end <= bytes.len()) {
            Some(end) => {
                *at = end;
                Ok(start)
            }
            None => Err(format!(
                "opcode at byte {start} needs {n} bytes, {} remain",
                bytes.len() - start
            )),
        }
    };
    while at < bytes.len() {
        let op = bytes[at];
        at += 1;
        match op {
            b'.' => return Ok(()),
            0x80 | b'q' | b'h' | b'K' => drop(take(&mut at, 1)?),
            b'M' => drop(take(&mut at, 2)?),
            b'r' | b'j' | b'J' => drop(take(&mut at, 4)?),
            b'G' => drop(take(&mut at, 8)?),
            b'X' => {
                let start = take(&mut at, 4)?;
                let len = u32::from_le_bytes(bytes[start..start + 4].try_into().expect("4 bytes"));
                take(&mut at, len as usize)?;
            }
            0x8a => {
                let start = take(&mut at, 1)?;
                take(&mut at, bytes[start] as usize)?;
            }
            b'c' => {
                for _ in 0..2 {
                    let line = bytes[at..].iter().position(|&b| b == b'\n');
                    let line = line.ok_or("unterminated GLOBAL name")?;
                    at += line + 1;
                }
            }
            b')'
            | b'R'
            | b'('
            | b't'
            | b'Q'
            | 0x85..=0x89
            | b'N'
            | b's'
            | b'u'
            | b'}'
            | b'd'
            | b'b'
            | 0x81
            | b']'
            | b'a'
            | b'e' => {}
            _ => return Ok(()),
        }
    }
    Ok(())
}

/// The integer entries of a wrapping dict that has a `model_state_dict`, or
/// `None` when the pickle is a bare state dict.
fn read_wrapper_ints(path: &Path) -> std::result::Result<Option<HashMap<String, i64>>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| e.to_string())?;
    let pkl = (0..zip.len())
        .filter_map(|i| {
            zip.name_for_index(i)
                .and_then(|n| n.ok())
                .map(|n| n.to_string())
        })
        .find(|n| n.ends_with("data.pkl"))
        .ok_or("no data.pkl inside the zip")?;
    let reader = zip.by_name(&pkl).map_err(|e| e.to_string())?;
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut std::io::BufReader::new(reader))
        .map_err(|e| e.to_string())?;
    let Object::Dict(entries) = stack.finalize().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let mut ints = HashMap::new();
    let mut wrapped = false;
    for (key, value) in entries {
        let Object::Unicode(key) = key else { continue };
        match value {
            Object::Int(v) => drop(ints.insert(key, v as i64)),
            Object::Long(v) => drop(ints.insert(key, v)),
            _ if key == "model_state_dict" => wrapped = true,
            _ => {}
        }
    }
    Ok(wrapped.then_some(ints))
}

/// A candle tensor as (shape, f32 values).
fn to_dense(t: &candle_core::Tensor) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    let shape = t.dims().to_vec();
    let values = t
        .to_dtype(candle_core::DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| format!("unsupported tensor ({e})"))?;
    Ok((shape, values))
}

/// Derives the configuration from tensor shapes, cross-checked with the wrapper's ints.
fn infer_config(
    raw: &HashMap<String, (Vec<usize>, Vec<f32>)>,
    wrapper: &HashMap<String, i64>,
    options: &ConvertOptions,
) -> std::result::Result<Config, String> {
    let dims = |name: &str, rank: usize| -> std::result::Result<&[usize], String> {
        let (shape, _) = raw.get(name).ok_or(format!("missing tensor `{name}`"))?;
        if shape.len() != rank {
            return Err(format!(
                "tensor `{name}` has shape {shape:?}, expected rank {rank}"
            ));
        }
        Ok(shape)
    };
    let emb = dims("token_embedding.weight", 2)?;
    let proj = dims("emb_proj.weight", 2)?;
    let n_layers = raw
        .keys()
        .filter_map(|n| {
            n.strip_prefix("layers.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |i| i + 1);
    if n_layers == 0 {
        return Err("no `layers.*` tensors".into());
    }
    let ffn_dim = dims("layers.0.ffn.w1.weight", 2)?[0];
    let d_model = proj[0];
    let head_dim_from_buffer = raw
        .get("layers.0.attn.rotary.inv_freq")
        .map(|(s, _)| 2 * s.iter().product::<usize>());
    let n_heads = match (
        options.n_heads,
        wrapper.get("num_heads"),
        head_dim_from_buffer,
    ) {
        (Some(n), _, _) => n,
        (None, Some(&n), _) => usize::try_from(n).map_err(|_| format!("num_heads = {n}"))?,
        (None, None, Some(hd)) if hd > 0 && d_model % hd == 0 => d_model / hd,
        _ => {
            return Err(
                "the checkpoint records the number of attention heads nowhere \
                 (no wrapper config, no inv_freq buffers): pass it explicitly (--n-heads)"
                    .into(),
            )
        }
    };
    let config = Config {
        vocab_size: emb[0],
        e_dim: emb[1],
        d_model,
        n_layers,
        n_heads,
        ffn_dim,
        context_length: options.context_length.unwrap_or(512),
        train_context: wrapper.get("seq_len").map_or(256, |&v| v.max(0) as usize),
        // GPT-2's `<|endoftext|>` is its last token; `convert` takes it from the tokenizer.
        eos_token_id: emb[0].saturating_sub(1) as u32,
        ..Config::chaya_62m()
    };
    let checks = [
        ("vocab_size", config.vocab_size),
        ("e_dim", config.e_dim),
        ("d_model", config.d_model),
        ("num_layers", config.n_layers),
        ("num_heads", config.n_heads),
    ];
    for (key, inferred) in checks {
        if let Some(&stored) = wrapper.get(key) {
            if stored != inferred as i64 {
                let source = match options.n_heads {
                    Some(_) if key == "num_heads" => "--n-heads gives",
                    _ => "its tensors imply",
                };
                return Err(format!(
                    "the checkpoint says {key} = {stored} but {source} {inferred}"
                ));
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tensor of a state dict: name, shape, little-endian f32 bytes.
    type RawTensor = (String, Vec<usize>, Vec<u8>);

    /// The committed fixture checkpoint's configuration and tensors.
    fn fixture_tensors() -> (Config, Vec<RawTensor>) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny_wrapped.pt");
        let checkpoint = read_checkpoint(&path, &ConvertOptions::default(), |_, _| {}).unwrap();
        let shapes: HashMap<String, Vec<usize>> =
            checkpoint.config.tensor_shapes().into_iter().collect();
        let tensors = checkpoint
            .tensors
            .iter()
            .map(|(name, values)| {
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name.clone(), shapes[name].clone(), bytes)
            })
            .collect();
        (checkpoint.config, tensors)
    }

    /// Writes a safetensors state dict of `tensors` into a fresh file.
    fn state_dict(tag: &str, tensors: &[RawTensor]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "chaya-import-{tag}-{}.safetensors",
            std::process::id()
        ));
        let views = tensors.iter().map(|(name, shape, bytes)| {
            let view =
                safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes).unwrap();
            (name.clone(), view)
        });
        safetensors::serialize_to_file(views, None, &path).unwrap();
        path
    }

    #[test]
    fn a_tensor_given_with_and_without_module_prefix_is_an_error() {
        let (config, mut tensors) = fixture_tensors();
        let plain = state_dict("plain", &tensors);
        let options = ConvertOptions {
            n_heads: Some(config.n_heads),
            ..ConvertOptions::default()
        };
        assert!(read_checkpoint(&plain, &options, |_, _| {}).is_ok());
        let (name, shape, mut bytes) = tensors[0].clone();
        bytes.iter_mut().for_each(|b| *b = 0);
        tensors.push((format!("module.{name}"), shape, bytes));
        let twice = state_dict("twice", &tensors);
        let err = read_checkpoint(&twice, &options, |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("tensor `{name}` appears twice")),
            "{err}"
        );
        let _ = (std::fs::remove_file(plain), std::fs::remove_file(twice));
    }

    #[test]
    fn pickle_lengths_must_fit_the_pickle() {
        // PROTO 2, BINUNICODE "ab", STOP.
        assert!(check_pickle(b"\x80\x02X\x02\x00\x00\x00ab.").is_ok());
        // A 4 GB string length in a 12-byte pickle (the fuzzer's crash).
        let err = check_pickle(b"\x80\x02X\xf4\xff\xff\xffab.").unwrap_err();
        assert!(err.contains("needs 4294967284 bytes"), "{err}");
        assert!(check_pickle(b"\x8a\x08\x01").is_err(), "LONG1 past the end");
        assert!(check_pickle(b"cmodule").is_err(), "unterminated GLOBAL");
        // Opcodes candle rejects end the walk: candle reports them.
        assert!(check_pickle(b"\xffX\xff\xff\xff\xff").is_ok());
    }
}
