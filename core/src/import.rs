//! Conversion of the published PyTorch checkpoints into a CHAYA model file.
//!
//! Reads torch zip/pickle files (the wrapping dict with `model_state_dict` and
//! config ints, or a bare state dict; keys with or without `module.` and
//! `_orig_mod.`; f32, f16, bf16 or f64, views included) and plain
//! safetensors state dicts. Every key, shape and value is
//! validated against the configuration the tensors imply.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model_file::{is_model_file, write_model_file, StoredTensor, SCALE_SUFFIX};
use crate::pytorch::candle_message;
use crate::quant::quantize_rows;
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
        crate::pytorch::read(path, &mut progress)
            .map_err(|e| bad(format!("not a readable PyTorch checkpoint ({e})")))?
    } else if read == 4 && magic == LEGACY_TORCH_MAGIC {
        return Err(bad(
            "a PyTorch file in the legacy format (before torch 1.6): load it with torch \
             and save it again with torch.save, which writes the zip format read here"
                .into(),
        ));
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
                    "neither a PyTorch zip checkpoint nor safetensors ({})",
                    candle_message(e)
                ))
            })?;
        let tensors = tensors
            .into_iter()
            .map(|(name, t)| Ok((name, to_dense(&t).map_err(bad)?)))
            .collect::<Result<Vec<_>>>()?;
        (tensors, HashMap::new())
    };
    let mut unwrapped = HashMap::new();
    let mut stored_as = HashMap::new();
    for (name, tensor) in raw {
        let key = unwrapped_name(&name).to_string();
        if let Some(first) = stored_as.insert(key.clone(), name.clone()) {
            return Err(bad(format!(
                "tensor `{key}` appears twice, as `{first}` and as `{name}`"
            )));
        }
        unwrapped.insert(key, tensor);
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
            let wanted = (0..values.len())
                .map(|i| crate::rope::inv_freq(config.rope_base, config.head_dim(), i));
            if let Some((i, (value, want))) =
                values
                    .iter()
                    .zip(wanted)
                    .enumerate()
                    .find(|(_, (v, want))| {
                        !v.is_finite() || (f64::from(**v) - want).abs() > INV_FREQ_TOLERANCE * want
                    })
            {
                return Err(bad(format!(
                    "`{name}`[{i}] is {value} where CHAYA's RoPE (base {}) has {want}: this \
                     runtime computes RoPE from its base, so a model trained with other \
                     frequencies would run wrong",
                    config.rope_base
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

/// The first bytes of a PyTorch file in the legacy (pre-zip) format: pickle
/// protocol 2 and the 10-byte `LONG1` that starts its magic number.
const LEGACY_TORCH_MAGIC: [u8; 4] = [0x80, 0x02, 0x8a, 0x0a];

/// Relative difference allowed between a stored `inv_freq` and CHAYA's (a
/// buffer saved as f16 or bf16 is within 0.4%).
const INV_FREQ_TOLERANCE: f64 = 1e-2;

/// A state-dict key without the prefixes `nn.DataParallel` (`module.`) and
/// `torch.compile` (`_orig_mod.`) add, in any order.
fn unwrapped_name(mut name: &str) -> &str {
    while let Some(rest) = name
        .strip_prefix("module.")
        .or_else(|| name.strip_prefix("_orig_mod."))
    {
        name = rest;
    }
    name
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

/// A candle tensor as (shape, f32 values).
fn to_dense(t: &candle_core::Tensor) -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
    let shape = t.dims().to_vec();
    let values = t
        .to_dtype(candle_core::DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| format!("unsupported tensor ({})", candle_message(e)))?;
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
}
