//! Tokenizer decoding of arbitrary token ids (in and out of the vocabulary),
//! piece by piece through the UTF-8 stream, and re-encoding of the result.
#![no_main]

use chaya::model_file::ModelFile;
use chaya::utf8_stream::Utf8Stream;
use chaya::Tokenizer;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/chaya-tiny-random.safetensors"
        );
        let file = ModelFile::read_path(path).expect("the committed tiny model");
        Tokenizer::from_json(&file.tokenizer_json).expect("its tokenizer")
    })
}

fuzz_target!(|data: &[u8]| {
    let tokenizer = tokenizer();
    // Ids mostly near the vocabulary, sometimes anywhere in u32.
    let ids: Vec<u32> = data
        .chunks(3)
        .map(|c| match *c {
            [a, b, 0xff] => u32::from_le_bytes([a, b, 0xff, 0xff]),
            [a, b, c] => u32::from(a) | u32::from(b) << 8 | u32::from(c & 0x01) << 16,
            _ => u32::from(c[0]),
        })
        .collect();
    let size = tokenizer.vocab_size();
    match tokenizer.decode(&ids) {
        Ok(text) => {
            assert!(ids.iter().all(|&id| (id as usize) < size));
            let mut stream = Utf8Stream::default();
            let mut streamed = String::new();
            for &id in &ids {
                streamed.push_str(&stream.push(tokenizer.token_bytes(id).expect("in range")));
            }
            // The stream gives the same text, minus an unfinished last character
            // (which lossy decoding shows as one U+FFFD).
            let rest = text.strip_prefix(streamed.as_str());
            assert!(
                matches!(rest, Some("" | "\u{fffd}")),
                "{text:?} vs {streamed:?}"
            );
            let _ = tokenizer.encode(&text).expect("decoded text encodes");
        }
        Err(_) => assert!(ids.iter().any(|&id| id as usize >= size)),
    }
});
