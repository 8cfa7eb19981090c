# The Rust build the binding and mobile tests link (sourced): `build_workspace`
# moves to $ROOT and builds the whole workspace with all features in the
# $PROFILE profile (debug or release), into $TARGET_DIR: CARGO_TARGET_DIR
# (a relative one is taken from $ROOT, where cargo runs) or $ROOT/target.
# The debug build reuses `cargo test`'s: with --all-targets the dependencies get
# the features the tests' dev-dependencies add (resolver 2 unifies them only
# when tests are built), so nothing is compiled twice (without it: 4m41s more).
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
build_workspace() {
    cd "$ROOT"
    if [[ $PROFILE == release ]]; then
        cargo build --workspace --all-features --release
    else
        cargo build --workspace --all-features --all-targets
    fi
}
