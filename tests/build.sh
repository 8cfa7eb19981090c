# The Rust build the binding and mobile tests link (sourced): `build_workspace`
# moves to $ROOT and builds the whole workspace with all features, as the Rust
# tests do (one feature set, so no step rebuilds the dependencies), in the
# $PROFILE profile (debug or release), into $TARGET_DIR: CARGO_TARGET_DIR
# (a relative one is taken from $ROOT, where cargo runs) or $ROOT/target.
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
build_workspace() {
    cd "$ROOT"
    if [[ $PROFILE == release ]]; then
        cargo build --workspace --all-features --release
    else
        cargo build --workspace --all-features
    fi
}
