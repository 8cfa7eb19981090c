//! Library-owned C strings (chaya_detokenize, chaya_summary.text).
//!
//! Text may contain U+0000, so the allocation size cannot be recovered with
//! strlen: each string is preceded by a hidden `usize` holding it.

use crate::status::guard_or;
use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ffi::c_char;
use std::mem::{align_of, size_of};

const HEADER: usize = size_of::<usize>();

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, align_of::<usize>()).expect("string too long to allocate")
}

/// Copies `bytes` into a new NUL-terminated string to be freed by
/// [`chaya_string_free`].
pub fn to_owned_c_string(bytes: &[u8]) -> *mut c_char {
    let size = HEADER + bytes.len() + 1;
    let layout = layout(size);
    // SAFETY: `layout` has a non-zero size.
    let base = unsafe { alloc(layout) };
    if base.is_null() {
        handle_alloc_error(layout);
    }
    // SAFETY: `base` is a fresh allocation of `size` bytes aligned for usize:
    // the header, the bytes and the NUL all fit and nothing else aliases it.
    unsafe {
        base.cast::<usize>().write(size);
        let text = base.add(HEADER);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), text, bytes.len());
        text.add(bytes.len()).write(0);
        text.cast()
    }
}

/// Frees a string returned by the library (chaya_detokenize). NULL is a
/// no-op. Freeing any other pointer, or the same string twice, is undefined
/// behaviour.
///
/// # Safety
/// `text` is NULL or a string allocated by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn chaya_string_free(text: *mut c_char) {
    guard_or((), || {
        if text.is_null() {
            return;
        }
        // SAFETY: `text` came from `to_owned_c_string` (caller), which put the
        // allocation size HEADER bytes before it.
        unsafe {
            let base = text.cast::<u8>().sub(HEADER);
            let size = base.cast::<usize>().read();
            dealloc(base, layout(size));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn round_trip_with_interior_nul() {
        for text in [&b""[..], b"abc", b"a\0b"] {
            let p = to_owned_c_string(text);
            // SAFETY: `p` is NUL-terminated after `text.len()` bytes.
            let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), text.len() + 1) };
            assert_eq!(&bytes[..text.len()], text);
            assert_eq!(bytes[text.len()], 0);
            if !text.contains(&0) {
                // SAFETY: as above.
                assert_eq!(unsafe { CStr::from_ptr(p) }.to_bytes(), text);
            }
            // SAFETY: allocated above, freed once.
            unsafe { chaya_string_free(p) };
        }
        // SAFETY: NULL is allowed.
        unsafe { chaya_string_free(std::ptr::null_mut()) };
    }
}
