//! Reads the state dict of a PyTorch `torch.save` zip archive: its pickle,
//! checked and then parsed by candle's unpickler, and every tensor's storage,
//! read through the tensor's offset and strides (views, transposes and
//! expanded tensors as they were saved) into row-major f32.

use candle_core::pickle::{Object, Stack, TensorInfo};
use candle_core::DType;
use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

/// Tensors by name, as (shape, row-major f32 values).
pub type RawTensors = Vec<(String, (Vec<usize>, Vec<f32>))>;

/// The key a wrapping dict keeps the state dict under.
const STATE_DICT_KEY: &str = "model_state_dict";

/// What a checkpoint must hold, for error messages.
const EXPECTED: &str = "a CHAYA checkpoint is a state dict, bare or under `model_state_dict`";

/// Largest pickle accepted (CHAYA's is a few KB).
const MAX_PICKLE_BYTES: u64 = 16 << 20;

/// Most elements a tensor may have beyond its storage's (an expanded one).
const MAX_EXPANDED_ELEMENTS: usize = 1 << 24;

/// A pickled dict's (key, value) entries.
type Entries = Vec<(Object, Object)>;

/// A zip archive of a file on disk.
type Archive = zip::ZipArchive<BufReader<std::fs::File>>;

/// Reads the tensors of the checkpoint at `path` and, when it is a wrapping
/// dict (a `model_state_dict` entry), the dict's integer entries.
/// `progress` gets (tensors read, total).
pub fn read(
    path: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(RawTensors, HashMap<String, i64>), String> {
    let mut zip = open(path)?;
    let names = zip
        .file_names()
        .map(|name| name.map(String::from))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let pickle = names
        .iter()
        .find(|n| n.ends_with("data.pkl"))
        .ok_or("a zip archive without data.pkl: not a PyTorch checkpoint")?;
    let dir = pickle.strip_suffix(".pkl").expect("ends with .pkl");
    if let Some(order) = names.iter().find(|n| n.ends_with("byteorder")) {
        let order = read_entry(&mut zip, order, 16)?;
        if order != b"little" {
            return Err(format!(
                "tensors stored {} endian: only little-endian checkpoints are read",
                String::from_utf8_lossy(&order)
            ));
        }
    }
    let root = unpickle(&read_entry(&mut zip, pickle, MAX_PICKLE_BYTES)?)?;
    let (state_dict, ints) = state_dict(root)?;
    let infos = tensor_infos(state_dict, Path::new(dir))?;
    let mut tensors = Vec::with_capacity(infos.len());
    for (i, info) in infos.iter().enumerate() {
        let values =
            read_tensor(&mut zip, info).map_err(|e| format!("tensor `{}`: {e}", info.name))?;
        tensors.push((info.name.clone(), (info.layout.dims().to_vec(), values)));
        progress(i + 1, infos.len());
    }
    Ok((tensors, ints))
}

/// Opens the zip archive `torch.save` wrote at `path`.
fn open(path: &Path) -> Result<Archive, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    // torch's archives start at byte 0. Left to detect the start, the zip
    // crate takes the 76 bytes of zip64 records torch writes before the end
    // record for a prefix when the first directory entry is 76 bytes long
    // too (a 21-byte file stem at save time), and then reads nothing.
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    zip::ZipArchive::with_config(config, BufReader::new(file))
        .map_err(|e| format!("not a readable zip archive ({e})"))
}

/// The bytes of the entry `name`, refused beyond `limit` bytes.
fn read_entry(zip: &mut Archive, name: &str, limit: u64) -> Result<Vec<u8>, String> {
    let entry = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
    let mut bytes = Vec::new();
    entry
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{name}: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{name} is larger than {limit} bytes"));
    }
    Ok(bytes)
}

/// The object a checked pickle holds.
fn unpickle(pickle: &[u8]) -> Result<Object, String> {
    if let [0x80, protocol, ..] = *pickle {
        if protocol > 3 {
            return Err(format!(
                "pickled with protocol {protocol}; save it with torch.save's default \
                 pickle_protocol (2)"
            ));
        }
    }
    check_pickle(pickle).map_err(|e| format!("data.pkl: {e}"))?;
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut &pickle[..])
        .and_then(|()| stack.finalize())
        .map_err(|e| format!("data.pkl: {}", candle_message(e)))
}

/// The state dict's entries and, for a wrapping dict, its integer entries.
fn state_dict(root: Object) -> Result<(Entries, HashMap<String, i64>), String> {
    let Object::Dict(entries) = root else {
        return Err("holds no dict: not a state dict or a dict wrapping one".into());
    };
    let wrapped = entries
        .iter()
        .any(|(key, _)| matches!(key, Object::Unicode(k) if k == STATE_DICT_KEY));
    if !wrapped {
        // A state dict is flat: dicts inside mean it is somewhere else.
        if entries
            .iter()
            .any(|(_, value)| matches!(value, Object::Dict(_)))
        {
            return Err(format!(
                "a dict of dicts without `{STATE_DICT_KEY}` (its keys: {}): {EXPECTED}",
                keys_of(&entries)
            ));
        }
        return Ok((entries, HashMap::new()));
    }
    let (mut state_dict, mut ints) = (None, HashMap::new());
    for (key, value) in entries {
        let Object::Unicode(key) = key else { continue };
        match value {
            Object::Dict(entries) if key == STATE_DICT_KEY => state_dict = Some(entries),
            Object::Int(v) => drop(ints.insert(key, i64::from(v))),
            Object::Long(v) => drop(ints.insert(key, v)),
            _ => {}
        }
    }
    let state_dict = state_dict.ok_or(format!("`{STATE_DICT_KEY}` is not a dict"))?;
    Ok((state_dict, ints))
}

/// Where and how each tensor of a state dict is stored (tensors' storages
/// are under `dir`); entries that are not tensors (an integer, say) are left
/// out, as are their names when they are not strings.
fn tensor_infos(state_dict: Entries, dir: &Path) -> Result<Vec<TensorInfo>, String> {
    if !state_dict
        .iter()
        .any(|(_, value)| matches!(value, Object::Reduce { .. }))
    {
        return Err(format!(
            "the state dict holds no tensors (its keys: {}): {EXPECTED}",
            keys_of(&state_dict)
        ));
    }
    let mut infos = Vec::new();
    for (name, value) in state_dict {
        let Object::Unicode(name) = name else {
            continue;
        };
        let value = without_parameter_state(value);
        let rebuilt_by = match &value {
            Object::Reduce { callable, .. } => match callable.as_ref() {
                Object::Class {
                    module_name,
                    class_name,
                } => Some(format!("{module_name}.{class_name}")),
                _ => None,
            },
            _ => None,
        };
        match value.into_tensor_info(Object::Unicode(name.clone()), dir) {
            Ok(Some(info)) => infos.push(info),
            Ok(None) => {
                if let Some(callable) = rebuilt_by {
                    return Err(format!(
                        "`{name}` is saved as `{callable}`, not as a plain tensor"
                    ));
                }
            }
            Err(e) => return Err(format!("`{name}`: {}", candle_message(e))),
        }
    }
    Ok(infos)
}

/// The first string keys of a dict, for an error message.
fn keys_of(entries: &Entries) -> String {
    let keys: Vec<&str> = entries
        .iter()
        .filter_map(|(key, _)| match key {
            Object::Unicode(key) => Some(key.as_str()),
            _ => None,
        })
        .take(8)
        .collect();
    format!("{keys:?}")
}

/// A parameter saved with Python attributes (`_rebuild_parameter_with_state`:
/// data, requires_grad, hooks, state) as its data; anything else as it is.
fn without_parameter_state(value: Object) -> Object {
    match value {
        Object::Reduce { callable, args } => match (*callable, *args) {
            (
                Object::Class {
                    module_name,
                    class_name,
                },
                Object::Tuple(mut args),
            ) if module_name == "torch._utils"
                && class_name == "_rebuild_parameter_with_state"
                && !args.is_empty() =>
            {
                args.swap_remove(0)
            }
            (callable, args) => Object::Reduce {
                callable: Box::new(callable),
                args: Box::new(args),
            },
        },
        other => other,
    }
}

/// A tensor's values in row-major order, read from its storage through its
/// offset and strides, as f32.
fn read_tensor(zip: &mut Archive, info: &TensorInfo) -> Result<Vec<f32>, String> {
    let size = match info.dtype {
        DType::F32 => 4,
        DType::F16 | DType::BF16 => 2,
        DType::F64 => 8,
        other => return Err(format!("holds {other:?} values, not floating point")),
    };
    let (dims, strides) = (info.layout.dims(), info.layout.stride());
    if dims.len() != strides.len() {
        return Err(format!(
            "{} dimensions but {} strides",
            dims.len(),
            strides.len()
        ));
    }
    // candle's layout gives the storage offset in bytes.
    let offset = info.layout.start_offset() / size;
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("too many elements")?;
    let entry_limit = zip
        .by_name(&info.path)
        .map(|entry| entry.size())
        .map_err(|e| format!("storage {}: {e}", info.path))?;
    let storage = read_entry(zip, &info.path, entry_limit)?;
    let stored = storage.len() / size;
    if count > 0 {
        let last = dims
            .iter()
            .zip(strides)
            .try_fold(offset, |at, (&d, &s)| {
                (d - 1).checked_mul(s).and_then(|step| at.checked_add(step))
            })
            .ok_or("strides overflow")?;
        if last >= stored {
            return Err(format!(
                "reads element {last} of a storage of {stored}: truncated or corrupt"
            ));
        }
    }
    let value = |k: usize| -> f32 {
        let bytes = &storage[k * size..][..size];
        match info.dtype {
            DType::F32 => f32::from_le_bytes(bytes.try_into().expect("4 bytes")),
            DType::F16 => half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
            DType::BF16 => half::bf16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
            _ => f64::from_le_bytes(bytes.try_into().expect("8 bytes")) as f32,
        }
    };
    // Only a tensor expanded from fewer values (stride 0) has more elements
    // than its storage; bounded so a corrupt shape cannot fill the memory.
    if count > stored.max(MAX_EXPANDED_ELEMENTS) {
        return Err(format!(
            "{count} elements read from a storage of {stored}: corrupt"
        ));
    }
    let mut values = Vec::new();
    values
        .try_reserve_exact(count)
        .map_err(|_| format!("{count} elements do not fit in memory"))?;
    if strides == row_major_strides(dims) {
        values.extend((offset..offset + count).map(value));
        return Ok(values);
    }
    // Any other layout: walk the indices in row-major order.
    let mut index = vec![0usize; dims.len()];
    for _ in 0..count {
        let at: usize = index.iter().zip(strides).map(|(i, s)| i * s).sum();
        values.push(value(offset + at));
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok(values)
}

/// The strides of a contiguous row-major tensor of shape `dims`.
fn row_major_strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; dims.len()];
    for axis in (0..dims.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * dims[axis + 1];
    }
    strides
}

/// A candle error's message, without the backtrace candle appends to it when
/// `RUST_BACKTRACE` is set.
pub(crate) fn candle_message(error: candle_core::Error) -> String {
    match error {
        candle_core::Error::WithBacktrace { inner, .. } => inner.to_string(),
        other => other.to_string(),
    }
}

/// Walks the opcodes candle's unpickler knows and checks that every length
/// field fits in the remaining bytes (candle allocates whatever a length
/// says: a corrupt one would abort on a failed allocation). Stops at `STOP`
/// or at an opcode candle rejects anyway.
fn check_pickle(bytes: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<usize, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn newer_pickle_protocols_are_named() {
        let err = unpickle(b"\x80\x04\x95\x00").unwrap_err();
        assert!(err.contains("protocol 4"), "{err}");
    }

    #[test]
    fn row_major_strides_count_elements_of_the_inner_axes() {
        assert_eq!(row_major_strides(&[2, 3, 4]), [12, 4, 1]);
        assert_eq!(row_major_strides(&[5]), [1]);
        assert!(row_major_strides(&[]).is_empty());
    }
}
