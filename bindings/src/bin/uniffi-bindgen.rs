//! The `uniffi-bindgen` tool, built from this crate's uniffi version so the
//! generated sources always match the scaffolding (see `bindings/generate.sh`).

fn main() {
    uniffi::uniffi_bindgen_main()
}
