//! `Utf8Stream`: turns token bytes into text pieces that never split a character.

/// Buffers bytes until they form complete UTF-8 characters.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// A stream that starts with `bytes`, the start of a character a previous
    /// stream left [`Utf8Stream::unfinished`].
    pub fn resuming(bytes: Vec<u8>) -> Utf8Stream {
        Utf8Stream { pending: bytes }
    }

    /// The bytes of a character still waiting for its last bytes.
    pub fn unfinished(&self) -> &[u8] {
        &self.pending
    }

    /// Adds `bytes` and returns the longest complete text now available. Bytes
    /// that can never become valid UTF-8 are replaced by U+FFFD.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(
                        std::str::from_utf8(&self.pending[..valid]).expect("valid prefix"),
                    );
                    match e.error_len() {
                        // An incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_split_over_pushes_comes_out_whole() {
        let bytes = "a🚀é東".as_bytes();
        let mut stream = Utf8Stream::default();
        let pieces: Vec<String> = bytes.iter().map(|b| stream.push(&[*b])).collect();
        assert!(pieces
            .iter()
            .all(|p| !p.contains(char::REPLACEMENT_CHARACTER)));
        assert_eq!(pieces.concat(), "a🚀é東");
        assert_eq!(pieces[1..5], ["", "", "", "🚀"]);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut stream = Utf8Stream::default();
        assert_eq!(stream.push(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(stream.push(b"\xe6\x9d"), "");
        assert_eq!(stream.push(b"\xb1"), "東");
    }

    #[test]
    fn a_resumed_stream_finishes_the_character_another_began() {
        let mut first = Utf8Stream::default();
        assert_eq!(first.push(b"a\xe6\x9d"), "a");
        let mut second = Utf8Stream::resuming(first.unfinished().to_vec());
        assert_eq!(second.push(b"\xb1"), "東");
        assert!(second.unfinished().is_empty());
    }
}
