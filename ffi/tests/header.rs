//! `include/chaya.h` must be what cbindgen generates from the sources.
//!
//! Regenerate it with `CHAYA_BLESS=1 cargo test -p chaya-ffi --test header`.

use std::path::Path;

fn generate() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    // Parsing the sources directly (following `mod` declarations) needs no
    // `cargo metadata` run, so the test works offline and without the cargo lock.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen failed");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn header_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/chaya.h");
    let generated = generate();
    if std::env::var_os("CHAYA_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("writing include/chaya.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: regenerate it with `CHAYA_BLESS=1 cargo test -p chaya-ffi --test header`",
        path.display()
    );
}

#[test]
fn header_declares_the_api() {
    let header = generate();
    for name in [
        "chaya_model_load",
        "chaya_model_load_from_memory",
        "chaya_session_new",
        "chaya_generate",
        "chaya_cancel",
        "chaya_tokenize",
        "chaya_detokenize",
        "chaya_last_error",
        "CHAYA_ERR_BUSY",
        "typedef struct chaya_model chaya_model;",
        "typedef bool (*chaya_token_callback)",
    ] {
        assert!(header.contains(name), "`{name}` missing from the header");
    }
}
