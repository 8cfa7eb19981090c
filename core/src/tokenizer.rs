//! The GPT-2 byte-level BPE tokenizer, through the `tokenizers` crate.

use crate::error::{Error, Result};
use std::collections::HashMap;

/// Encodes text to token ids and maps ids back to their exact bytes.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Raw bytes of every token id (byte-level BPE pieces decoded).
    pieces: Vec<Vec<u8>>,
    special: Vec<(String, u32)>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

impl Tokenizer {
    /// Parses a `tokenizer.json` document.
    pub fn from_json(json: &str) -> Result<Tokenizer> {
        let inner: tokenizers::Tokenizer = json
            .parse()
            .map_err(|e| Error::Tokenizer(format!("cannot parse tokenizer.json: {e}")))?;
        let byte_of_char = byte_level_alphabet();
        let vocab = inner.get_vocab(true);
        let size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let mut pieces = vec![Vec::new(); size];
        let mut special = Vec::new();
        let added: HashMap<u32, String> = inner
            .get_added_tokens_decoder()
            .into_iter()
            .map(|(id, t)| (id, t.content))
            .collect();
        for (token, id) in vocab {
            pieces[id as usize] = match added.get(&id) {
                Some(content) => {
                    special.push((content.clone(), id));
                    content.as_bytes().to_vec()
                }
                None => token
                    .chars()
                    .map(|c| byte_of_char.get(&c).copied().unwrap_or(b'?'))
                    .collect(),
            };
        }
        special.sort_by_key(|(_, id)| *id);
        Ok(Tokenizer {
            inner,
            pieces,
            special,
        })
    }

    /// Token ids of `text`, with no special tokens added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`; bytes that do not form valid UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend_from_slice(self.token_bytes(id)?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The exact bytes token `id` stands for (possibly part of a UTF-8 character).
    pub fn token_bytes(&self, id: u32) -> Result<&[u8]> {
        self.pieces
            .get(id as usize)
            .map(Vec::as_slice)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "token id {id} is outside the vocabulary ({})",
                    self.vocab_size()
                ))
            })
    }

    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// Special tokens (such as `<|endoftext|>`) with their ids.
    pub fn special_tokens(&self) -> &[(String, u32)] {
        &self.special
    }
}

/// GPT-2's reversible map from the printable characters used in its vocabulary
/// back to the bytes they stand for.
fn byte_level_alphabet() -> HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            let c = if printable(b) {
                b as u32
            } else {
                next += 1;
                next - 1
            };
            (char::from_u32(c).expect("valid code point"), b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt2() -> Tokenizer {
        Tokenizer::from_json(include_str!("../../assets/tokenizer.json")).unwrap()
    }

    #[test]
    fn round_trips_text_with_multibyte_characters() {
        let tok = gpt2();
        let text = "Hello, naïve café — 東京 🚀!";
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text);
        assert_eq!(tok.vocab_size(), 50257);
        assert_eq!(
            tok.special_tokens(),
            &[("<|endoftext|>".to_string(), 50256)]
        );
    }

    #[test]
    fn known_gpt2_ids() {
        assert_eq!(gpt2().encode("Hello world").unwrap(), vec![15496, 995]);
        assert_eq!(gpt2().token_bytes(220).unwrap(), b" ");
    }

    #[test]
    fn out_of_range_id_is_an_error() {
        let err = gpt2().decode(&[50257]).unwrap_err().to_string();
        assert!(err.contains("outside the vocabulary"), "{err}");
    }
}
