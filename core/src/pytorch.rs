//! Reads the state dict of a PyTorch `torch.save` zip archive: its pickle,
//! checked and then parsed by candle's unpickler, and every floating-point
//! tensor's storage, read through the tensor's offset and strides (views,
//! transposes and expanded tensors as they were saved) into row-major f32.

use candle_core::pickle::{Object, Stack};
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

/// Values all tensors together may have beyond one per byte of the file
/// (tensors expanded from fewer stored values, or views sharing storage).
const MAX_EXTRA_ELEMENTS: usize = 1 << 24;

/// A pickled dict's (key, value) entries.
type Entries = Vec<(Object, Object)>;

/// A zip archive of a file on disk.
type Archive = zip::ZipArchive<BufReader<std::fs::File>>;

/// Reads the floating-point tensors of the checkpoint at `path` and, when it
/// is a wrapping dict (a `model_state_dict` entry), the dict's integer
/// entries. Tensors of other types (integer or boolean buffers) cannot be
/// weights: they are skipped with a warning. `progress` gets (tensors read,
/// total).
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
        .find(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .ok_or("a zip archive without data.pkl: not a PyTorch checkpoint")?;
    // Storages are `<archive>/data/<key>`, beside `<archive>/data.pkl`.
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
    let mut stored = stored_tensors(state_dict, dir)?;
    // Views of one storage one after the other: each storage is read once.
    stored.sort_by(|a, b| a.storage.cmp(&b.storage));
    let file_len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    let mut budget = usize::try_from(file_len)
        .unwrap_or(usize::MAX)
        .saturating_add(MAX_EXTRA_ELEMENTS);
    let mut storage: Option<(&str, Vec<u8>)> = None;
    let mut tensors = Vec::with_capacity(stored.len());
    for (i, tensor) in stored.iter().enumerate() {
        if storage
            .as_ref()
            .is_none_or(|(name, _)| *name != tensor.storage)
        {
            let limit = zip
                .by_name(&tensor.storage)
                .map(|entry| entry.size())
                .map_err(|e| {
                    format!("tensor `{}`: storage {}: {e}", tensor.name, tensor.storage)
                })?;
            storage = Some((
                &tensor.storage,
                read_entry(&mut zip, &tensor.storage, limit)?,
            ));
        }
        let bytes = &storage.as_ref().expect("read above").1;
        let values = tensor
            .values(bytes, &mut budget)
            .map_err(|e| format!("tensor `{}`: {e}", tensor.name))?;
        tensors.push((tensor.name.clone(), (tensor.dims.clone(), values)));
        progress(i + 1, stored.len());
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
        return Err(format!("holds no dict: {EXPECTED}"));
    };
    let wrapped = entries
        .iter()
        .any(|(key, _)| matches!(key, Object::Unicode(k) if k == STATE_DICT_KEY));
    if !wrapped {
        // Tensors one level down: a training script's own wrapping dict.
        let nested = entries.iter().find_map(|(key, value)| match (key, value) {
            (Object::Unicode(key), Object::Dict(inner)) if inner.iter().any(is_tensor) => Some(key),
            _ => None,
        });
        if let Some(key) = nested {
            return Err(format!(
                "its tensors are under `{key}` (keys: {}): {EXPECTED}; save that dict \
                 on its own (`torch.save(checkpoint[\"{key}\"], path)`)",
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

/// Whether a dict entry's value is rebuilt by a call, as tensors are.
fn is_tensor((_, value): &(Object, Object)) -> bool {
    matches!(value, Object::Reduce { .. })
}

/// Up to 8 of a dict's string keys, sorted, for an error message.
fn keys_of(entries: &Entries) -> String {
    let mut keys: Vec<&str> = entries
        .iter()
        .filter_map(|(key, _)| match key {
            Object::Unicode(key) => Some(key.as_str()),
            _ => None,
        })
        .collect();
    keys.sort_unstable();
    keys.truncate(8);
    format!("{keys:?}")
}

/// The floating-point tensors of a state dict whose storages are under
/// `dir`. Entries that are not tensors (an integer, say) are left out, and
/// tensors of other types with a warning.
fn stored_tensors(state_dict: Entries, dir: &str) -> Result<Vec<StoredTensor>, String> {
    if !state_dict.iter().any(is_tensor) {
        return Err(format!(
            "the state dict holds no tensors (keys: {}): {EXPECTED}",
            keys_of(&state_dict)
        ));
    }
    let mut stored = Vec::new();
    for (name, value) in state_dict {
        let Object::Unicode(name) = name else {
            continue;
        };
        match tensor_entry(value, dir).map_err(|e| format!("`{name}`: {e}"))? {
            Entry::Floats(tensor) => stored.push(StoredTensor { name, ..tensor }),
            Entry::Other(storage) => {
                log::warn!("skipping `{name}`: a tensor of {storage}, not a weight")
            }
            Entry::NotTensor => {}
        }
    }
    Ok(stored)
}

/// What a state-dict value is.
enum Entry {
    /// A tensor (or parameter) of floating-point values (its name empty).
    Floats(StoredTensor),
    /// A tensor of another type: its storage class.
    Other(String),
    /// Not a tensor.
    NotTensor,
}

/// Classifies a state-dict value, unwrapping parameters and tensor subclasses
/// down to torch's `_rebuild_tensor_v2`.
fn tensor_entry(value: Object, dir: &str) -> Result<Entry, String> {
    let Object::Reduce { callable, args } = value else {
        return Ok(Entry::NotTensor);
    };
    let Object::Class {
        module_name,
        class_name,
    } = *callable
    else {
        return Ok(Entry::NotTensor);
    };
    let rebuilds_tensor = matches!(module_name.as_str(), "torch._utils" | "torch._tensor")
        && class_name.starts_with("_rebuild");
    if !rebuilds_tensor {
        return Ok(Entry::NotTensor);
    }
    let Object::Tuple(mut args) = *args else {
        return Err(format!("`{class_name}` without an argument tuple"));
    };
    let too_few = |n: usize| format!("`{class_name}` with {n} arguments");
    match class_name.as_str() {
        // (data, requires_grad, backward_hooks[, state])
        "_rebuild_parameter" | "_rebuild_parameter_with_state" if !args.is_empty() => {
            tensor_entry(args.swap_remove(0), dir)
        }
        // (func, new_type, args, state): the tensor is func(*args).
        "_rebuild_from_type_v2" if args.len() >= 3 => {
            let inner = args.swap_remove(2);
            let func = args.swap_remove(0);
            tensor_entry(
                Object::Reduce {
                    callable: Box::new(func),
                    args: Box::new(inner),
                },
                dir,
            )
        }
        // (storage, storage_offset, size, stride, requires_grad, hooks[, metadata])
        "_rebuild_tensor_v2" if args.len() >= 4 => {
            args.truncate(4);
            let strides = counts(args.pop().expect("4 arguments"), "stride")?;
            let dims = counts(args.pop().expect("3 arguments"), "size")?;
            let offset = count(args.pop().expect("2 arguments"), "storage offset")?;
            let (class, key) = storage_id(args.pop().expect("1 argument"))?;
            let Some(dtype) = Float::of_storage(&class) else {
                return Ok(Entry::Other(class));
            };
            Ok(Entry::Floats(StoredTensor {
                name: String::new(),
                dtype,
                storage: format!("{dir}/{key}"),
                offset,
                dims,
                strides,
            }))
        }
        "_rebuild_parameter"
        | "_rebuild_parameter_with_state"
        | "_rebuild_from_type_v2"
        | "_rebuild_tensor_v2" => Err(too_few(args.len())),
        _ => Err(format!(
            "saved as `{module_name}.{class_name}`, which this converter does not read"
        )),
    }
}

/// The storage class and archive key of a persistent storage id
/// (`("storage", torch.FloatStorage, key, location, numel)`).
fn storage_id(storage: Object) -> Result<(String, String), String> {
    let Object::PersistentLoad(id) = storage else {
        return Err("a tensor without a persistent storage".into());
    };
    match *id {
        Object::Tuple(id) => match <[Object; 5]>::try_from(id) {
            Ok([_, Object::Class { class_name, .. }, Object::Unicode(key), _, _]) => {
                Ok((class_name, key))
            }
            _ => Err("a malformed storage id".into()),
        },
        _ => Err("a malformed storage id".into()),
    }
}

/// A non-negative integer of the pickle.
fn count(value: Object, what: &str) -> Result<usize, String> {
    let n = match value {
        Object::Int(n) => i64::from(n),
        Object::Long(n) => n,
        other => return Err(format!("{what} is {other:?}, not an integer")),
    };
    usize::try_from(n).map_err(|_| format!("{what} {n} is out of range"))
}

/// A tuple of non-negative integers of the pickle.
fn counts(value: Object, what: &str) -> Result<Vec<usize>, String> {
    match value {
        Object::Tuple(values) => values.into_iter().map(|v| count(v, what)).collect(),
        other => Err(format!("{what} is {other:?}, not a tuple")),
    }
}

/// A floating-point storage type.
#[derive(Clone, Copy, Debug)]
enum Float {
    F32,
    F16,
    BF16,
    F64,
}

impl Float {
    /// The type of a torch storage class (`FloatStorage`, ...), if floating point.
    fn of_storage(class: &str) -> Option<Float> {
        Some(match class {
            "FloatStorage" => Float::F32,
            "HalfStorage" => Float::F16,
            "BFloat16Storage" => Float::BF16,
            "DoubleStorage" => Float::F64,
            _ => return None,
        })
    }

    /// Bytes per value.
    fn size(self) -> usize {
        match self {
            Float::F32 => 4,
            Float::F16 | Float::BF16 => 2,
            Float::F64 => 8,
        }
    }

    /// The little-endian value at `bytes` (exactly [`Float::size`] of them).
    fn decode(self, bytes: &[u8]) -> f32 {
        match self {
            Float::F32 => f32::from_le_bytes(bytes.try_into().expect("4 bytes")),
            Float::F16 => half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
            Float::BF16 => half::bf16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
            Float::F64 => f64::from_le_bytes(bytes.try_into().expect("8 bytes")) as f32,
        }
    }
}

/// Where a tensor's values are in the archive and how they are laid out.
struct StoredTensor {
    name: String,
    dtype: Float,
    /// The storage's archive entry.
    storage: String,
    /// In values, as the strides.
    offset: usize,
    dims: Vec<usize>,
    strides: Vec<usize>,
}

impl StoredTensor {
    /// The values in row-major order, read from `storage` (the entry's
    /// bytes) through the offset and strides, as f32; `budget` is what may
    /// still be read, lowered by this tensor's count.
    fn values(&self, storage: &[u8], budget: &mut usize) -> Result<Vec<f32>, String> {
        let (dims, strides, size) = (&self.dims, &self.strides, self.dtype.size());
        if dims.len() != strides.len() {
            return Err(format!(
                "{} dimensions but {} strides",
                dims.len(),
                strides.len()
            ));
        }
        let count = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or("too many elements")?;
        let stored = storage.len() / size;
        if count > 0 {
            let last = dims
                .iter()
                .zip(strides)
                .try_fold(self.offset, |at, (&d, &s)| {
                    (d - 1).checked_mul(s).and_then(|step| at.checked_add(step))
                })
                .ok_or("strides overflow")?;
            if last >= stored {
                return Err(format!(
                    "reads value {last} of a storage of {stored}: truncated or corrupt"
                ));
            }
        }
        *budget = budget
            .checked_sub(count)
            .ok_or("the tensors hold far more values than the file stores: corrupt")?;
        let value = |k: usize| self.dtype.decode(&storage[k * size..][..size]);
        let mut values = Vec::new();
        values
            .try_reserve_exact(count)
            .map_err(|_| format!("{count} values do not fit in memory"))?;
        if *strides == row_major_strides(dims) {
            values.extend((self.offset..self.offset + count).map(value));
            return Ok(values);
        }
        // Any other layout: walk the indices in row-major order.
        let mut index = vec![0usize; dims.len()];
        for _ in 0..count {
            let at: usize = index.iter().zip(strides).map(|(i, s)| i * s).sum();
            values.push(value(self.offset + at));
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

/// Deepest nesting of pickled objects accepted (CHAYA's is under 10).
const MAX_PICKLE_DEPTH: u32 = 256;

/// Most objects a pickle may make candle build, counting the copy candle makes
/// at every memo read (CHAYA's builds a few thousand).
const MAX_PICKLE_OBJECTS: u64 = 1 << 24;

/// The nesting depth and object count of a pickled object.
#[derive(Clone, Copy, Default)]
struct Shape {
    depth: u32,
    objects: u64,
}

impl Shape {
    /// A scalar, a string or an empty container.
    const LEAF: Shape = Shape {
        depth: 0,
        objects: 1,
    };

    /// An object holding `items`.
    fn holding(items: &[Shape]) -> Shape {
        Shape::LEAF.with(items)
    }

    /// This object with `items` added to it.
    fn with(self, items: &[Shape]) -> Shape {
        items.iter().fold(self, |shape, item| Shape {
            depth: shape.depth.max(item.depth + 1),
            objects: shape.objects.saturating_add(item.objects),
        })
    }
}

/// Runs the opcodes candle's unpickler knows as it would, keeping only each
/// object's [`Shape`], and refuses what would abort the process there: a
/// length field running past the pickle (candle allocates what it says),
/// objects nested deeper than [`MAX_PICKLE_DEPTH`] (building and dropping
/// them recurses) and more than [`MAX_PICKLE_OBJECTS`] objects (a memo read
/// copies an object, so a few reads can double it again and again). Stops at
/// `STOP`, at an opcode candle rejects and at a malformed stack: candle
/// reports those.
fn check_pickle(bytes: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<&[u8], String> {
        let start = *at;
        match start.checked_add(n).filter(|&end| end <= bytes.len()) {
            Some(end) => {
                *at = end;
                Ok(&bytes[start..end])
            }
            None => Err(format!(
                "opcode at byte {start} needs {n} bytes, {} remain",
                bytes.len() - start
            )),
        }
    };
    let index = |b: &[u8]| b.iter().rev().fold(0u32, |n, &b| n << 8 | u32::from(b));
    let (mut stack, mut marks) = (Vec::<Shape>::new(), Vec::<usize>::new());
    let mut memo = HashMap::<u32, Shape>::new();
    let mut objects = 0u64;
    while at < bytes.len() {
        let op = bytes[at];
        at += 1;
        // What the opcode leaves on top of the stack, if anything new.
        let pushed = match op {
            b'.' => return Ok(()),
            0x80 => {
                take(&mut at, 1)?;
                None
            }
            b'K' | b'M' | b'J' | b'G' => {
                let width = match op {
                    b'K' => 1,
                    b'M' => 2,
                    b'J' => 4,
                    _ => 8,
                };
                take(&mut at, width)?;
                Some(Shape::LEAF)
            }
            b'X' => {
                let len = index(take(&mut at, 4)?);
                take(&mut at, len as usize)?;
                Some(Shape::LEAF)
            }
            0x8a => {
                let len = take(&mut at, 1)?[0];
                take(&mut at, usize::from(len))?;
                Some(Shape::LEAF)
            }
            b'c' => {
                for _ in 0..2 {
                    let line = bytes[at..].iter().position(|&b| b == b'\n');
                    at += line.ok_or("unterminated GLOBAL name")? + 1;
                }
                Some(Shape::LEAF)
            }
            b'N' | 0x88 | 0x89 | b')' | b']' | b'}' => Some(Shape::LEAF),
            b'(' => {
                marks.push(stack.len());
                None
            }
            b't' | b'd' | b'e' | b'u' => {
                let Some(mark) = marks.pop().filter(|&m| m <= stack.len()) else {
                    return Ok(());
                };
                let items = stack.split_off(mark);
                if matches!(op, b't' | b'd') {
                    Some(Shape::holding(&items))
                } else {
                    let Some(top) = stack.pop() else {
                        return Ok(());
                    };
                    Some(top.with(&items))
                }
            }
            0x85..=0x87 | b'R' | 0x81 | b'Q' | b'a' | b's' | b'b' => {
                let (n, into_top) = match op {
                    0x85..=0x87 => (usize::from(op - 0x84), false),
                    b'R' | 0x81 => (2, false),
                    b'Q' => (1, false),
                    b'a' | b'b' => (1, true),
                    _ => (2, true),
                };
                let Some(first) = stack.len().checked_sub(n + usize::from(into_top)) else {
                    return Ok(());
                };
                let items = stack.split_off(first + usize::from(into_top));
                if into_top {
                    let top = stack.pop().expect("counted above");
                    Some(top.with(&items))
                } else {
                    Some(Shape::holding(&items))
                }
            }
            b'q' | b'r' => {
                let key = index(take(&mut at, if op == b'q' { 1 } else { 4 })?);
                let Some(&top) = stack.last() else {
                    return Ok(());
                };
                memo.insert(key, top);
                None
            }
            b'h' | b'j' => {
                let key = index(take(&mut at, if op == b'h' { 1 } else { 4 })?);
                let Some(&copy) = memo.get(&key) else {
                    return Ok(());
                };
                objects = objects.saturating_add(copy.objects);
                Some(copy)
            }
            _ => return Ok(()),
        };
        if let Some(shape) = pushed {
            objects = objects.saturating_add(1);
            if shape.depth > MAX_PICKLE_DEPTH {
                return Err(format!(
                    "objects nested more than {MAX_PICKLE_DEPTH} deep (byte {at})"
                ));
            }
            if objects > MAX_PICKLE_OBJECTS {
                return Err(format!(
                    "builds more than {MAX_PICKLE_OBJECTS} objects (byte {at})"
                ));
            }
            stack.push(shape);
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
    fn deep_or_exploding_pickles_are_refused() {
        // 300 nested one-element tuples.
        let mut deep = b"\x80\x02K\x01".to_vec();
        deep.extend([0x85; 300]);
        deep.push(b'.');
        let err = check_pickle(&deep).unwrap_err();
        assert!(err.contains("nested more than 256"), "{err}");
        let mut shallow = b"\x80\x02K\x01".to_vec();
        shallow.extend([0x85; 200]);
        shallow.push(b'.');
        assert!(check_pickle(&shallow).is_ok());
        // A list, then lists of two copies of the last one, 30 times: 2^30
        // objects from a pickle of 200 bytes.
        let mut doubling = b"\x80\x02]q\x00".to_vec();
        for i in 0..30u8 {
            doubling.extend([b']', b'(', b'h', i, b'h', i, b'e', b'q', i + 1]);
        }
        doubling.push(b'.');
        let err = check_pickle(&doubling).unwrap_err();
        assert!(err.contains("more than 16777216 objects"), "{err}");
        assert!(
            check_pickle(&doubling[..2 + 3 + 9 * 20]).is_ok(),
            "2^20 objects"
        );
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
