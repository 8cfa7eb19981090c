//! The GPT-2 byte-level BPE tokenizer, through the `tokenizers` crate.

use crate::error::{Error, Result};

/// Encodes text to token ids and maps ids back to their exact bytes.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Raw bytes of every token id (byte-level BPE pieces decoded).
    pieces: Pieces,
    special: Vec<(String, u32)>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

/// Dropped (if any) when parsing a `tokenizer.json` has only single-threaded
/// work left: see [`Tokenizer::from_json_alongside`].
type SerialPartStarts = Option<std::sync::mpsc::Sender<()>>;

/// The parts of a `tokenizer.json` read by [`Tokenizer::from_json`]'s fast path
/// for GPT-2-style byte-level BPE.
#[derive(serde::Deserialize)]
struct ByteLevelBpeJson<'a> {
    normalizer: Option<serde_json::Value>,
    pre_tokenizer: Option<serde_json::Value>,
    #[serde(borrow)]
    model: BpeJson<'a>,
    #[serde(default)]
    added_tokens: Vec<AddedTokenJson>,
}

/// The BPE model, with its vocabulary and merges (most of the document) left
/// as text for [`ByteLevelBpeJson::build`] to parse on two threads.
#[derive(serde::Deserialize)]
struct BpeJson<'a> {
    r#type: String,
    #[serde(borrow)]
    vocab: &'a serde_json::value::RawValue,
    #[serde(borrow)]
    merges: &'a serde_json::value::RawValue,
    dropout: Option<f32>,
    unk_token: Option<String>,
    #[serde(default)]
    continuing_subword_prefix: Option<String>,
    #[serde(default)]
    end_of_word_suffix: Option<String>,
    #[serde(default)]
    byte_fallback: bool,
    #[serde(default)]
    ignore_merges: bool,
}

/// Merges, each a `["a", "b"]` pair (current format) or an `"a b"` string
/// (older). Read in one pass: an untagged enum would buffer the whole list
/// first, which doubled the tokenizer's parse time.
struct MergesJson(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for MergesJson {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Merges;
        impl<'de> serde::de::Visitor<'de> for Merges {
            type Value = MergesJson;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of merges")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<MergesJson, A::Error> {
                let mut merges = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(Merge(a, b)) = seq.next_element()? {
                    merges.push((a, b));
                }
                Ok(MergesJson(merges))
            }
        }
        deserializer.deserialize_seq(Merges)
    }
}

/// One merge: `["a", "b"]` or `"a b"`.
struct Merge(String, String);

impl<'de> serde::Deserialize<'de> for Merge {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Pair;
        impl<'de> serde::de::Visitor<'de> for Pair {
            type Value = Merge;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a merge: [\"a\", \"b\"] or \"a b\"")
            }
            fn visit_str<E: serde::de::Error>(self, line: &str) -> std::result::Result<Merge, E> {
                let (a, b) = line
                    .split_once(' ')
                    .ok_or_else(|| E::custom(format!("merge `{line}` is not `a b`")))?;
                Ok(Merge(a.to_string(), b.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Merge, A::Error> {
                use serde::de::Error;
                let a = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let b = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::invalid_length(3, &self));
                }
                Ok(Merge(a, b))
            }
        }
        deserializer.deserialize_any(Pair)
    }
}

#[derive(serde::Deserialize)]
struct AddedTokenJson {
    id: u32,
    content: String,
    #[serde(default)]
    special: bool,
    #[serde(default)]
    single_word: bool,
    #[serde(default)]
    lstrip: bool,
    #[serde(default)]
    rstrip: bool,
    normalized: Option<bool>,
}

impl ByteLevelBpeJson<'_> {
    /// Whether this is exactly GPT-2's pipeline: no normalizer, a byte-level
    /// pre-tokenizer without prefix space, plain BPE. (Post-processor and
    /// decoder do not affect ids; truncation and padding are ignored by both
    /// paths: the session's context window decides what the model sees.)
    fn is_plain_byte_level(&self) -> bool {
        let pre = self.pre_tokenizer.as_ref();
        let field = |name: &str| pre.and_then(|p| p.get(name)).cloned();
        let m = &self.model;
        let unset =
            |v: &Option<serde_json::Value>| v.as_ref().is_none_or(serde_json::Value::is_null);
        unset(&self.normalizer)
            && field("type") == Some("ByteLevel".into())
            && field("add_prefix_space") == Some(false.into())
            && field("use_regex").is_none_or(|v| v == true)
            && m.r#type == "BPE"
            && m.dropout.is_none()
            && m.unk_token.is_none()
            && m.continuing_subword_prefix
                .as_deref()
                .unwrap_or("")
                .is_empty()
            && m.end_of_word_suffix.as_deref().unwrap_or("").is_empty()
            && !m.byte_fallback
            && !m.ignore_merges
    }

    /// Builds the tokenizer directly (several times faster than the generic
    /// deserializer, which dominates model load time otherwise).
    /// The merges are parsed on a second thread while this one parses the
    /// vocabulary and decodes its pieces; `serial` is dropped when only the
    /// single-threaded build of the BPE merge table is left.
    fn build(self, serial: SerialPartStarts) -> Result<Tokenizer> {
        let failed = |e: tokenizers::Error| Error::Tokenizer(format!("invalid BPE model: {e}"));
        let malformed = |part: &str, e: &dyn std::fmt::Display| {
            Error::Tokenizer(format!("cannot parse tokenizer.json: model.{part}: {e}"))
        };
        let (vocab, merges, pieces, special) = std::thread::scope(|scope| {
            let merges =
                scope.spawn(|| serde_json::from_str::<MergesJson>(self.model.merges.get()));
            let vocab: tokenizers::models::bpe::Vocab =
                serde_json::from_str(self.model.vocab.get()).map_err(|e| malformed("vocab", &e))?;
            let by_id = vocab.iter().map(|(t, &id)| (t.as_str(), id));
            let (pieces, special) = pieces_of(by_id, Spelling::ByteLevel, &self.added_tokens)?;
            let MergesJson(merges) = merges
                .join()
                .map_err(|_| malformed("merges", &"the parser panicked"))?
                .map_err(|e| malformed("merges", &e))?;
            Ok::<_, Error>((vocab, merges, pieces, special))
        })?;
        drop(serial);
        let bpe = tokenizers::models::bpe::BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(failed)?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(
            tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, true),
        ));
        let added: Vec<tokenizers::AddedToken> = self
            .added_tokens
            .iter()
            .map(|t| {
                tokenizers::AddedToken::from(t.content.clone(), t.special)
                    .single_word(t.single_word)
                    .lstrip(t.lstrip)
                    .rstrip(t.rstrip)
                    .normalized(t.normalized.unwrap_or(!t.special))
            })
            .collect();
        inner.add_tokens(&added);
        // `add_tokens` numbers a token missing from the vocabulary itself (the
        // next free id); `pieces` decodes by the document's ids: they must agree.
        for token in &self.added_tokens {
            let given = inner.token_to_id(&token.content);
            if given != Some(token.id) {
                return Err(Error::Tokenizer(format!(
                    "added token `{}` has id {} in tokenizer.json but would encode as {given:?} \
                     (added tokens outside the vocabulary must follow it in id order)",
                    token.content, token.id
                )));
            }
        }
        Ok(Tokenizer {
            inner,
            pieces,
            special,
        })
    }
}

/// The bytes of every token id, concatenated in id order (one allocation
/// instead of one per token).
#[derive(Clone, Debug, Default, PartialEq)]
struct Pieces {
    bytes: Vec<u8>,
    /// `ends[id]`: where token `id`'s bytes end in `bytes`.
    ends: Vec<u32>,
}

impl Pieces {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, id: u32) -> Option<&[u8]> {
        let id = id as usize;
        let end = *self.ends.get(id)? as usize;
        let start = id.checked_sub(1).map_or(0, |prev| self.ends[prev] as usize);
        Some(&self.bytes[start..end])
    }
}

/// How a vocabulary writes a token's bytes as text.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Spelling {
    /// GPT-2's byte-level alphabet: one character per byte.
    ByteLevel,
    /// SentencePiece's: UTF-8 with `▁` for a space and `<0xNN>` for a byte
    /// (byte fallback); other vocabularies' tokens read as their text.
    #[cfg(feature = "any-tokenizer")]
    Text,
    /// The text itself (added tokens).
    Verbatim,
}

impl Spelling {
    /// Appends the bytes `token` spells to `out`.
    fn decode(self, token: &str, byte_of_char: &[Option<u8>], out: &mut Vec<u8>) {
        match self {
            Spelling::ByteLevel => out.extend(token.chars().map(|c| {
                byte_of_char
                    .get(c as usize)
                    .copied()
                    .flatten()
                    .unwrap_or(b'?')
            })),
            #[cfg(feature = "any-tokenizer")]
            Spelling::Text => match fallback_byte(token) {
                Some(byte) => out.push(byte),
                None => out.extend_from_slice(token.replace('\u{2581}', " ").as_bytes()),
            },
            Spelling::Verbatim => out.extend_from_slice(token.as_bytes()),
        }
    }
}

/// The byte a SentencePiece byte-fallback token such as `<0x0A>` stands for.
#[cfg(feature = "any-tokenizer")]
fn fallback_byte(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2).then(|| u8::from_str_radix(hex, 16).ok())?
}

/// The bytes of every id (vocabulary tokens as `spelling` says; added tokens
/// as their text) and the special tokens, from `(token, id)` pairs.
fn pieces_of<'a>(
    vocab: impl Iterator<Item = (&'a str, u32)>,
    spelling: Spelling,
    added: &'a [AddedTokenJson],
) -> Result<(Pieces, Vec<(String, u32)>)> {
    let mut by_id: Vec<Option<(&'a str, Spelling)>> = Vec::new();
    let mut place = |id: u32, text: &'a str, spelling: Spelling| {
        if id >= 1 << 24 {
            return Err(Error::Tokenizer(format!(
                "token id {id} is implausibly large"
            )));
        }
        let id = id as usize;
        if by_id.len() <= id {
            by_id.resize(id + 1, None);
        }
        by_id[id] = Some((text, spelling));
        Ok(())
    };
    for (token, id) in vocab {
        place(id, token, spelling)?;
    }
    for token in added {
        place(token.id, &token.content, Spelling::Verbatim)?;
    }
    let byte_of_char = byte_level_alphabet();
    let mut pieces = Pieces {
        bytes: Vec::with_capacity(by_id.len() * 8),
        ends: Vec::with_capacity(by_id.len()),
    };
    for text in by_id {
        if let Some((text, spelling)) = text {
            spelling.decode(text, &byte_of_char, &mut pieces.bytes);
        }
        let end = u32::try_from(pieces.bytes.len())
            .map_err(|_| Error::Tokenizer("the vocabulary exceeds 4 GB".into()))?;
        pieces.ends.push(end);
    }
    let mut special: Vec<(String, u32)> = added
        .iter()
        .filter(|t| t.special)
        .map(|t| (t.content.clone(), t.id))
        .collect();
    special.sort_by_key(|(_, id)| *id);
    Ok((pieces, special))
}

impl Tokenizer {
    /// Parses a `tokenizer.json` document. GPT-2-style byte-level BPE takes a
    /// fast path; anything else goes through the `tokenizers` deserializer
    /// with the `any-tokenizer` feature, and is an error without it.
    pub fn from_json(json: &str) -> Result<Tokenizer> {
        Self::from_json_signalling(json, None)
    }

    /// [`Tokenizer::from_json`] on another thread, running `alongside` on this
    /// one from the moment the parsing has only one thread's work left
    /// (building the BPE merge table, about half of it), so the caller's work
    /// fills the other core instead of competing with the parsing threads.
    /// A panic while parsing is an [`Error::Tokenizer`].
    pub(crate) fn from_json_alongside<R>(
        json: &str,
        alongside: impl FnOnce() -> R,
    ) -> (Result<Tokenizer>, R) {
        let (serial, serial_part_started) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let tokenizer = scope.spawn(move || Self::from_json_signalling(json, Some(serial)));
            // Returns when `serial` is dropped, on every path (unwinding too).
            let _ = serial_part_started.recv();
            let other = alongside();
            let tokenizer = tokenizer.join().unwrap_or_else(|_| {
                Err(Error::Tokenizer("parsing tokenizer.json panicked".into()))
            });
            (tokenizer, other)
        })
    }

    fn from_json_signalling(json: &str, serial: SerialPartStarts) -> Result<Tokenizer> {
        let parsed: Option<ByteLevelBpeJson> = serde_json::from_str(json).ok();
        if let Some(parsed) = parsed.filter(ByteLevelBpeJson::is_plain_byte_level) {
            return parsed.build(serial);
        }
        drop(serial);
        Self::from_json_generic(json)
    }

    /// Without the `any-tokenizer` feature only the fast path is compiled in:
    /// says why the document did not take it.
    #[cfg(not(feature = "any-tokenizer"))]
    fn from_json_generic(json: &str) -> Result<Tokenizer> {
        let why = match serde_json::from_str::<ByteLevelBpeJson>(json) {
            Err(e) => e.to_string(),
            Ok(_) => "it is another kind".into(),
        };
        Err(Error::Tokenizer(format!(
            "this build reads only GPT-2-style byte-level BPE tokenizers \
             (others need the `any-tokenizer` feature): {why}"
        )))
    }

    /// [`Tokenizer::from_json`] through the `tokenizers` deserializer.
    #[cfg(feature = "any-tokenizer")]
    fn from_json_generic(json: &str) -> Result<Tokenizer> {
        let unparsable = |e: &dyn std::fmt::Display| {
            Error::Tokenizer(format!("cannot parse tokenizer.json: {e}"))
        };
        let mut document: serde_json::Value =
            serde_json::from_str(json).map_err(|e| unparsable(&e))?;
        let spelling = match &document["decoder"] {
            serde_json::Value::Null => &document["pre_tokenizer"],
            decoder => decoder,
        };
        let spelling = if mentions_byte_level(spelling) {
            Spelling::ByteLevel
        } else {
            Spelling::Text
        };
        // Ids are decoded from `pieces`, never by the `tokenizers` decoder, whose
        // deserializer panics on malformed input (found by fuzzing): drop it.
        // Truncation and padding would cut or pad every encoded conversation:
        // the session's context window decides what the model sees.
        if let Some(fields) = document.as_object_mut() {
            for unused in ["decoder", "truncation", "padding"] {
                fields.insert(unused.into(), serde_json::Value::Null);
            }
        }
        // Some other component deserializers of `tokenizers` 0.22 also `expect`
        // well-formed values: contain such a panic as an error.
        let inner: tokenizers::Tokenizer =
            std::panic::catch_unwind(|| serde_json::from_value(document))
                .map_err(|_| unparsable(&"a component is malformed"))?
                .map_err(|e| unparsable(&e))?;
        let added: Vec<AddedTokenJson> = inner
            .get_added_tokens_decoder()
            .into_iter()
            .map(|(id, t)| AddedTokenJson {
                id,
                content: t.content,
                special: t.special,
                single_word: t.single_word,
                lstrip: t.lstrip,
                rstrip: t.rstrip,
                normalized: Some(t.normalized),
            })
            .collect();
        let vocab = inner.get_vocab(false);
        let by_id = vocab.iter().map(|(t, &id)| (t.as_str(), id));
        let (pieces, special) = pieces_of(by_id, spelling, &added)?;
        Ok(Tokenizer {
            inner,
            pieces,
            special,
        })
    }

    /// Token ids of `text`, with no special tokens added (the text
    /// `<|endoftext|>` itself reads as the end-of-text token, as in the reference).
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

    /// The token standing for `byte` alone, if any (byte-level BPE has one
    /// for every byte).
    pub fn byte_token(&self, byte: u8) -> Option<u32> {
        (0..self.vocab_size() as u32).find(|&id| self.token_bytes(id).is_ok_and(|b| b == [byte]))
    }

    /// The exact bytes token `id` stands for (possibly part of a UTF-8 character).
    pub fn token_bytes(&self, id: u32) -> Result<&[u8]> {
        self.pieces.get(id).ok_or_else(|| {
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

/// Whether a decoder or pre-tokenizer is `ByteLevel` or a sequence holding one.
#[cfg(feature = "any-tokenizer")]
fn mentions_byte_level(component: &serde_json::Value) -> bool {
    let parts = ["decoders", "pretokenizers"].map(|key| component[key].as_array());
    component["type"] == "ByteLevel"
        || parts
            .into_iter()
            .flatten()
            .flatten()
            .any(mentions_byte_level)
}

/// GPT-2's reversible map from the printable characters used in its vocabulary
/// back to the bytes they stand for, indexed by code point (all below 324).
fn byte_level_alphabet() -> Vec<Option<u8>> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table = vec![None; 324];
    let mut next = 256;
    for b in 0..=255u8 {
        let c = if printable(b) {
            b as usize
        } else {
            next += 1;
            next - 1
        };
        table[c] = Some(b);
    }
    table
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
        for byte in 0..=255 {
            let id = gpt2().byte_token(byte).unwrap();
            assert_eq!(gpt2().token_bytes(id).unwrap(), [byte]);
        }
    }

    #[test]
    #[cfg(feature = "any-tokenizer")]
    fn fast_path_encodes_like_the_generic_deserializer() {
        let json = include_str!("../../assets/tokenizer.json");
        let fast = Tokenizer::from_json(json).unwrap();
        let generic = Tokenizer::from_json_generic(json).unwrap();
        let text = "Hello, naïve café — 東京 🚀!\n\n  indented\tTabs <|endoftext|> it's 1234 end";
        assert_eq!(fast.encode(text).unwrap(), generic.encode(text).unwrap());
        assert_eq!(fast.pieces, generic.pieces);
        assert_eq!(fast.special, generic.special);
        assert!(fast.encode("a<|endoftext|>b").unwrap().contains(&50256));
    }

    #[test]
    #[cfg(feature = "any-tokenizer")]
    fn both_paths_keep_added_token_flags_and_ignore_truncation_and_padding() {
        let mut doc: serde_json::Value =
            serde_json::from_str(include_str!("../../assets/tokenizer.json")).unwrap();
        doc["added_tokens"][0]["lstrip"] = true.into();
        doc["added_tokens"][0]["rstrip"] = true.into();
        let stripping = doc.to_string();
        doc["added_tokens"][0]["lstrip"] = false.into();
        doc["added_tokens"][0]["rstrip"] = false.into();
        let plain = doc.to_string();
        doc["truncation"] = serde_json::json!({"direction": "Right", "max_length": 4,
            "strategy": "LongestFirst", "stride": 0});
        doc["padding"] = serde_json::json!({"strategy": {"Fixed": 16}, "direction": "Right",
            "pad_to_multiple_of": null, "pad_id": 50256, "pad_type_id": 0,
            "pad_token": "<|endoftext|>"});
        let truncating = doc.to_string();
        let text = "a <|endoftext|> b and a few more words";
        let whole = Tokenizer::from_json(&plain).unwrap().encode(text).unwrap();
        assert_eq!(whole.len(), 9);
        for json in [&stripping, &truncating] {
            let fast = Tokenizer::from_json(json).unwrap();
            let generic = Tokenizer::from_json_generic(json).unwrap();
            assert_eq!(fast.encode(text).unwrap(), generic.encode(text).unwrap());
        }
        for parsed in [
            Tokenizer::from_json(&truncating),
            Tokenizer::from_json_generic(&truncating),
        ] {
            assert_eq!(parsed.unwrap().encode(text).unwrap(), whole);
        }
        let stripped = Tokenizer::from_json(&stripping).unwrap();
        assert_eq!(stripped.encode("a <|endoftext|> b").unwrap().len(), 3);
    }

    #[test]
    fn other_tokenizer_kinds_need_the_any_tokenizer_feature() {
        let json = r#"{"added_tokens": [], "normalizer": null,
            "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "hello": 1, "world": 2},
                      "unk_token": "[UNK]"}}"#;
        let parsed = Tokenizer::from_json(json);
        if cfg!(feature = "any-tokenizer") {
            assert_eq!(parsed.unwrap().encode("hello world").unwrap(), vec![1, 2]);
        } else {
            let err = parsed.unwrap_err();
            assert!(matches!(err, Error::Tokenizer(_)), "{err}");
            assert!(err.to_string().contains("`any-tokenizer`"), "{err}");
        }
    }

    #[test]
    #[cfg(feature = "any-tokenizer")]
    fn tokens_of_other_vocabularies_decode_to_their_text() {
        let json = r#"{"added_tokens": [], "normalizer": null,
            "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "unk_token": "[UNK]", "vocab": {"[UNK]": 0,
                      "h\u00e9llo": 1, "\u2581the": 2, "\u0100": 3, "<0x0A>": 4}}}"#;
        let tok = Tokenizer::from_json(json).unwrap();
        let decoded: Vec<&[u8]> = (0..5).map(|id| tok.token_bytes(id).unwrap()).collect();
        assert_eq!(
            decoded,
            [
                &b"[UNK]"[..],
                "héllo".as_bytes(),
                b" the",
                "Ā".as_bytes(),
                b"\n"
            ]
        );

        // A byte-level decoder inside a sequence is still byte-level.
        let mut doc: serde_json::Value =
            serde_json::from_str(include_str!("../../assets/tokenizer.json")).unwrap();
        doc["decoder"] = serde_json::json!({"type": "Sequence", "decoders": [doc["decoder"]]});
        let generic = Tokenizer::from_json_generic(&doc.to_string()).unwrap();
        assert_eq!(generic.pieces, gpt2().pieces);
    }

    #[test]
    fn added_tokens_numbered_out_of_order_are_refused() {
        let mut doc: serde_json::Value =
            serde_json::from_str(include_str!("../../assets/tokenizer.json")).unwrap();
        let token = |content: &str, id: u32| {
            serde_json::json!({"id": id, "content": content, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        };
        let added = doc["added_tokens"].as_array_mut().unwrap();
        added.extend([token("<A>", 50257), token("<B>", 50258)]);
        let tok = Tokenizer::from_json(&doc.to_string()).unwrap();
        assert_eq!(tok.encode("<B><A>").unwrap(), [50258, 50257]);
        assert_eq!(tok.token_bytes(50258).unwrap(), b"<B>");

        let added = doc["added_tokens"].as_array_mut().unwrap();
        added.swap(1, 2);
        let err = Tokenizer::from_json(&doc.to_string()).unwrap_err();
        assert!(err.to_string().contains("`<B>` has id 50258"), "{err}");
    }

    #[test]
    fn merges_as_strings_read_like_pairs() {
        let mut doc: serde_json::Value =
            serde_json::from_str(include_str!("../../assets/tokenizer.json")).unwrap();
        let merges = doc["model"]["merges"].as_array_mut().unwrap();
        for merge in merges.iter_mut() {
            let pair = merge.as_array().unwrap();
            *merge = format!(
                "{} {}",
                pair[0].as_str().unwrap(),
                pair[1].as_str().unwrap()
            )
            .into();
        }
        let strings = Tokenizer::from_json(&doc.to_string()).unwrap();
        let text = "Hello, naïve café — 東京 🚀! it's 1234";
        assert_eq!(strings.encode(text).unwrap(), gpt2().encode(text).unwrap());
        assert_eq!(strings.pieces, gpt2().pieces);
        doc["model"]["merges"][0] = "nospace".into();
        let err = Tokenizer::from_json(&doc.to_string()).unwrap_err();
        assert!(matches!(err, Error::Tokenizer(_)), "{err}");
    }

    #[test]
    fn malformed_vocabulary_or_merges_is_an_error() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../assets/tokenizer.json")).unwrap();
        for (part, value) in [
            ("vocab", serde_json::json!([1, 2])),
            ("vocab", serde_json::json!({"a": "one"})),
            ("merges", serde_json::json!({"a": 1})),
        ] {
            let mut doc = doc.clone();
            doc["model"][part] = value;
            let err = Tokenizer::from_json(&doc.to_string()).unwrap_err();
            assert!(matches!(err, Error::Tokenizer(_)), "{err}");
            assert!(err.to_string().contains(&format!("model.{part}")), "{err}");
        }
    }

    #[test]
    fn work_alongside_runs_once_whether_parsing_succeeds_or_fails() {
        let gpt2_json = include_str!("../../assets/tokenizer.json");
        let mut doc: serde_json::Value = serde_json::from_str(gpt2_json).unwrap();
        doc["model"]["vocab"] = serde_json::json!([1, 2]);
        let bad_vocab = doc.to_string();
        for (json, parses) in [(gpt2_json, true), (&bad_vocab, false), ("{", false)] {
            let runs = std::sync::atomic::AtomicUsize::new(0);
            let (tokenizer, result) = Tokenizer::from_json_alongside(json, || {
                runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                "graphs"
            });
            assert_eq!(tokenizer.is_ok(), parses, "{json:.40}");
            assert_eq!(result, "graphs");
            assert_eq!(runs.into_inner(), 1);
        }
    }

    #[test]
    fn out_of_range_id_is_an_error() {
        let err = gpt2().decode(&[50257]).unwrap_err().to_string();
        assert!(err.contains("outside the vocabulary"), "{err}");
    }
}
