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
    let byteorder = format!(
        "{}byteorder",
        pickle.strip_suffix("data.pkl").expect("found so")
    );
    if names.contains(&byteorder) {
        let order = read_entry(&mut zip, &byteorder, 16)?;
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
            let bytes = read_entry(&mut zip, &tensor.storage, u64::MAX)
                .map_err(|e| format!("tensor `{}`: storage {e}", tensor.name))?;
            storage = Some((&tensor.storage, bytes));
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

/// The bytes of the entry `name`, refused beyond `limit` bytes or the size
/// its directory entry declares.
fn read_entry(zip: &mut Archive, name: &str, limit: u64) -> Result<Vec<u8>, String> {
    let entry = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
    let limit = limit.min(entry.size());
    let mut bytes = Vec::new();
    entry
        .take(limit.saturating_add(1))
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
    if state_dict.is_empty() {
        // candle's unpickler stores an object in its memo as it is when
        // first seen: a dict saved twice comes back empty the second time.
        return Err(format!(
            "`{STATE_DICT_KEY}` is empty (or the same dict is also saved under another \
             key, which this converter cannot read: save it once)"
        ));
    }
    Ok((state_dict, ints))
}

/// Whether a dict entry's value is a tensor or a parameter.
fn is_tensor((_, value): &(Object, Object)) -> bool {
    match value {
        Object::Reduce { callable, .. } => rebuilds_tensor(callable),
        _ => false,
    }
}

/// Whether `callable` is one of torch's functions that rebuild a tensor or
/// a parameter (`torch._utils._rebuild_tensor_v2`, ...).
fn rebuilds_tensor(callable: &Object) -> bool {
    matches!(callable, Object::Class { module_name, class_name }
        if matches!(module_name.as_str(), "torch._utils" | "torch._tensor")
            && class_name.starts_with("_rebuild"))
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
/// `dir` (at least one). Entries that are not tensors (an integer, say) are
/// left out, and tensors of other types with a warning.
fn stored_tensors(state_dict: Entries, dir: &str) -> Result<Vec<StoredTensor>, String> {
    let keys = keys_of(&state_dict);
    // Where tensors are one level down: a training script's own wrapping dict.
    let nested = state_dict
        .iter()
        .find_map(|(key, value)| match (key, value) {
            (Object::Unicode(key), Object::Dict(inner)) if inner.iter().any(is_tensor) => {
                Some(key.clone())
            }
            _ => None,
        });
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
    match nested {
        _ if !stored.is_empty() => Ok(stored),
        Some(key) => Err(format!(
            "its tensors are under `{key}` (keys: {keys}): {EXPECTED}; save that dict on \
             its own (`torch.save(checkpoint[\"{key}\"], path)`)"
        )),
        None => Err(format!(
            "the state dict holds no floating-point tensors (keys: {keys}): {EXPECTED}"
        )),
    }
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
    if !rebuilds_tensor(&callable) {
        return Ok(Entry::NotTensor);
    }
    let Object::Class {
        module_name,
        class_name,
    } = *callable
    else {
        return Ok(Entry::NotTensor);
    };
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
        other => return Err(format!("{what} is {}, not an integer", kind(&other))),
    };
    usize::try_from(n).map_err(|_| format!("{what} {n} is out of range"))
}

/// What kind of value a pickled object is, for error messages (the object
/// itself may be huge).
fn kind(value: &Object) -> &'static str {
    match value {
        Object::Class { .. } => "a class",
        Object::Int(_) | Object::Long(_) => "an integer",
        Object::Float(_) => "a float",
        Object::Unicode(_) => "a string",
        Object::Bool(_) => "a boolean",
        Object::None => "None",
        Object::Tuple(_) => "a tuple",
        Object::List(_) => "a list",
        Object::Mark => "a mark",
        Object::Dict(_) => "a dict",
        Object::Reduce { .. } | Object::Build { .. } => "an object",
        Object::PersistentLoad(_) => "a persistent id",
    }
}

/// A tuple of non-negative integers of the pickle.
fn counts(value: Object, what: &str) -> Result<Vec<usize>, String> {
    match value {
        Object::Tuple(values) => values.into_iter().map(|v| count(v, what)).collect(),
        other => Err(format!("{what} is {}, not a tuple", kind(&other))),
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
        if count == 0 || *strides == row_major_strides(dims) {
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

/// The strides of a contiguous row-major tensor of shape `dims` (a shape
/// whose element count fits in `usize` and is not 0).
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

/// Bytes counted for each object candle's unpickler makes.
const OBJECT_BYTES: u64 = 64;

/// Most memory, as counted here, a pickle may make candle's unpickler spend,
/// copies included (CHAYA's: about a megabyte; a dict of 30k tensors:
/// ~60 MB). candle's own use runs a few times higher.
const MAX_PICKLE_MEMORY: u64 = 1 << 28;

/// A value on the modelled unpickler's stack: its nesting depth, the bytes
/// it holds, and whether it is a MARK (which candle keeps on the stack too).
#[derive(Clone, Copy)]
struct Shape {
    depth: u32,
    bytes: u64,
    mark: bool,
}

impl Shape {
    /// A scalar, an empty container, or a string of `len` bytes.
    fn leaf(len: usize) -> Shape {
        Shape {
            depth: 0,
            bytes: OBJECT_BYTES.saturating_add(len as u64),
            mark: false,
        }
    }

    /// A new object holding `items`.
    fn holding(items: &[Shape]) -> Shape {
        Shape::leaf(0).with(items)
    }

    /// This object with `items` added to it.
    fn with(self, items: &[Shape]) -> Shape {
        items.iter().fold(self, |shape, item| Shape {
            depth: shape.depth.max(item.depth.saturating_add(1)),
            bytes: shape.bytes.saturating_add(item.bytes),
            mark: false,
        })
    }
}

/// Runs the opcodes candle's unpickler knows with their stack effects, on
/// each value's [`Shape`] only, and refuses what would abort the process
/// there: a length running past the pickle (candle allocates what it says),
/// a `LONG1` over 8 bytes (its shift overflows), objects nested deeper than
/// [`MAX_PICKLE_DEPTH`] (building and dropping them recurses), more than
/// [`MAX_PICKLE_MEMORY`] spent (candle copies an object at every memo write
/// and read, so a few reads can double it again and again), and anything
/// candle would reject.
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
    let mut stack = Vec::<Shape>::new();
    let mut memo = HashMap::<u32, Shape>::new();
    let mut spent = 0u64;
    while at < bytes.len() {
        let (op, start) = (bytes[at], at);
        at += 1;
        let malformed = |what: &str| format!("{what} at byte {start}");
        let pop = |stack: &mut Vec<Shape>, n: usize| match stack.len().checked_sub(n) {
            Some(first) => Ok(stack.split_off(first)),
            None => Err(malformed("stack underflow")),
        };
        let pop_to_mark = |stack: &mut Vec<Shape>| match stack.iter().rposition(|s| s.mark) {
            Some(mark) => {
                let items = stack.split_off(mark + 1);
                stack.pop();
                Ok(items)
            }
            None => Err(malformed("no MARK")),
        };
        let leaf = |len: usize| {
            let shape = Shape::leaf(len);
            (Some(shape), shape.bytes)
        };
        let holding = |items: &[Shape]| (Some(Shape::holding(items)), OBJECT_BYTES);
        // The value the opcode leaves on top of the stack, if any, and the
        // bytes candle allocates for it.
        let (pushed, allocated) = match op {
            b'.' => return Ok(()),
            0x80 => {
                take(&mut at, 1)?;
                (None, 0)
            }
            b'K' | b'M' | b'J' | b'G' => {
                let width = match op {
                    b'K' => 1,
                    b'M' => 2,
                    b'J' => 4,
                    _ => 8,
                };
                take(&mut at, width)?;
                leaf(0)
            }
            b'X' => {
                let len = index(take(&mut at, 4)?) as usize;
                take(&mut at, len)?;
                leaf(len)
            }
            0x8a => {
                let len = usize::from(take(&mut at, 1)?[0]);
                if len > 8 {
                    return Err(malformed(&format!("LONG1 of {len} bytes")));
                }
                take(&mut at, len)?;
                leaf(0)
            }
            b'c' => {
                let name_start = at;
                for _ in 0..2 {
                    let line = bytes[at..].iter().position(|&b| b == b'\n');
                    at += line.ok_or_else(|| malformed("unterminated GLOBAL name"))? + 1;
                }
                leaf(at - name_start)
            }
            b'N' | 0x88 | 0x89 | b')' | b']' | b'}' | b'd' => leaf(0),
            b'(' => {
                let mark = Shape {
                    mark: true,
                    ..Shape::leaf(0)
                };
                (Some(mark), mark.bytes)
            }
            b't' => holding(&pop_to_mark(&mut stack)?),
            b'e' | b'u' => {
                let items = pop_to_mark(&mut stack)?;
                let top = pop(&mut stack, 1)?[0];
                (Some(top.with(&items)), 0)
            }
            0x85..=0x87 => holding(&pop(&mut stack, usize::from(op - 0x84))?),
            b'R' | 0x81 | b'b' => holding(&pop(&mut stack, 2)?),
            b'Q' => holding(&pop(&mut stack, 1)?),
            b'a' | b's' => {
                let items = pop(&mut stack, if op == b'a' { 1 } else { 2 })?;
                let top = pop(&mut stack, 1)?[0];
                (Some(top.with(&items)), 0)
            }
            b'q' | b'r' => {
                let key = index(take(&mut at, if op == b'q' { 1 } else { 4 })?);
                let top = *stack
                    .last()
                    .ok_or_else(|| malformed("memo write of nothing"))?;
                // candle stores a copy.
                memo.insert(key, top);
                (None, top.bytes)
            }
            b'h' | b'j' => {
                let key = index(take(&mut at, if op == b'h' { 1 } else { 4 })?);
                let copy = *memo
                    .get(&key)
                    .ok_or_else(|| malformed("memo read of nothing"))?;
                // candle pushes a copy.
                (Some(copy), copy.bytes)
            }
            _ => return Err(malformed(&format!("unknown opcode {op:#04x}"))),
        };
        spent = spent.saturating_add(allocated);
        if spent > MAX_PICKLE_MEMORY {
            return Err(malformed(&format!(
                "objects of more than {MAX_PICKLE_MEMORY} bytes"
            )));
        }
        if let Some(shape) = pushed {
            if shape.depth > MAX_PICKLE_DEPTH {
                return Err(malformed(&format!(
                    "objects nested more than {MAX_PICKLE_DEPTH} deep"
                )));
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
        let err = check_pickle(b"\x8a\x09\x01\x01\x01\x01\x01\x01\x01\x01\x01.").unwrap_err();
        assert!(err.contains("LONG1 of 9 bytes"), "{err}");
        assert!(check_pickle(b"cmodule").is_err(), "unterminated GLOBAL");
        let err = check_pickle(b"\xffX\xff\xff\xff\xff").unwrap_err();
        assert!(err.contains("unknown opcode 0xff"), "{err}");
        assert!(check_pickle(b"t.").unwrap_err().contains("no MARK"));
        assert!(check_pickle(b"NR.").unwrap_err().contains("underflow"));
    }

    /// `prefix`, then `op` 300 times over one value, then STOP.
    fn nested(prefix: &[u8], op: &[u8]) -> Vec<u8> {
        let mut pickle = prefix.to_vec();
        for _ in 0..300 {
            pickle.extend(op);
        }
        pickle.push(b'.');
        pickle
    }

    #[test]
    fn deep_pickles_are_refused_however_they_nest() {
        let cases: [(&[u8], &[u8]); 5] = [
            (b"\x80\x02K\x01", b"\x85"),  // TUPLE1 around TUPLE1 ...
            (b"\x80\x02dN", b"\x85"),     // after DICT (an empty dict in candle)
            (b"\x80\x02(", b"\x85"),      // a MARK is a value on candle's stack
            (b"\x80\x02(q\x00", b"\x85"), // and can be memoised
            (b"\x80\x02N", b"Nb"),        // BUILD makes a new object each time
        ];
        for (prefix, op) in cases {
            let err = check_pickle(&nested(prefix, op)).unwrap_err();
            assert!(
                err.contains("nested more than 256"),
                "{prefix:?} {op:?}: {err}"
            );
        }
        let mut shallow = b"\x80\x02K\x01".to_vec();
        shallow.extend([0x85; 200]);
        shallow.push(b'.');
        assert!(check_pickle(&shallow).is_ok());
    }

    #[test]
    fn pickles_that_copy_themselves_past_the_limit_are_refused() {
        // A list, then lists of two copies of the last one, 30 times: 2^30
        // objects from a pickle of 275 bytes.
        let mut doubling = b"\x80\x02]q\x00".to_vec();
        for i in 0..30u8 {
            doubling.extend([b']', b'(', b'h', i, b'h', i, b'e', b'q', i + 1]);
        }
        doubling.push(b'.');
        let err = check_pickle(&doubling).unwrap_err();
        assert!(err.contains("more than 268435456 bytes"), "{err}");
        assert!(
            check_pickle(&doubling[..5 + 9 * 16]).is_ok(),
            "2^16 objects"
        );
        // A 1 MiB string read from the memo 300 times.
        let mut copies = b"\x80\x02X\x00\x00\x10\x00".to_vec();
        copies.extend(vec![b'a'; 1 << 20]);
        copies.extend(b"q\x00");
        for _ in 0..300 {
            copies.extend(b"h\x00");
        }
        let err = check_pickle(&copies).unwrap_err();
        assert!(err.contains("more than 268435456 bytes"), "{err}");
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
