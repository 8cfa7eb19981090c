//! The model-file loader on arbitrary bytes: safetensors header, metadata
//! (config, tokenizer), tensor table and data; a model that loads must also
//! compile and run one token.
#![no_main]

use chaya::{LoadOptions, Logits, Model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = LoadOptions {
        threads: 1,
        context_length: Some(8),
        prefill_chunk: None,
    };
    if let Ok(model) = Model::from_bytes(data, &options) {
        let mut session = model.session().expect("a loaded model makes sessions");
        let _ = session.feed(&[0], Logits::Last);
    }
});
