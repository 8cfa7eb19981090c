//! The `uniffi-bindgen` tool, built from the workspace's uniffi version so the
//! generated sources always match the bindings' scaffolding (see
//! `bindings/generate.sh`; maturin runs it too, `bindings/pyproject.toml`).

fn main() {
    uniffi::uniffi_bindgen_main()
}
