//! `chaya convert` end to end: paths that would lose data or waste the work
//! are refused before converting, and a good conversion leaves one file.

mod common;

use common::{chaya, repo_path, stderr, temp_dir};

#[test]
fn refuses_to_write_over_its_input() {
    let scratch = temp_dir("convert-onto-input");
    let dir = scratch.path();
    let checkpoint = dir.join("x.pt");
    std::fs::copy(repo_path("tests/fixtures/tiny_wrapped.pt"), &checkpoint).unwrap();
    let before = std::fs::read(&checkpoint).unwrap();
    // The same file under another spelling of its path, too.
    let spelled = dir.join(".").join("x.pt");
    for output in [&checkpoint, &spelled] {
        let out = chaya(&[
            "convert",
            checkpoint.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
        ]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("is the input checkpoint"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(std::fs::read(&checkpoint).unwrap(), before);
}

#[test]
fn names_a_missing_output_directory_and_a_model_file_given_as_input() {
    let scratch = temp_dir("convert-bad-paths");
    let dir = scratch.path();
    let checkpoint = repo_path("tests/fixtures/tiny_wrapped.pt");
    let missing = dir.join("no-such-dir").join("m.safetensors");
    let out = chaya(&[
        "convert",
        checkpoint.to_str().unwrap(),
        "-o",
        missing.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the output directory does not exist"),
        "{}",
        stderr(&out)
    );

    let model = common::tiny_model();
    let output = dir.join("again.safetensors");
    let out = chaya(&["convert", &model, "-o", output.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already a CHAYA model file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        0,
        "nothing left behind"
    );
}

#[test]
fn a_conversion_leaves_only_the_model_file() {
    let scratch = temp_dir("convert-clean");
    let dir = scratch.path();
    let output = dir.join("m.safetensors");
    let checkpoint = repo_path("tests/fixtures/tiny_wrapped.pt");
    let out = chaya(&[
        "convert",
        checkpoint.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["m.safetensors"]);
    let inspected = chaya(&["inspect", output.to_str().unwrap()]);
    assert!(inspected.status.success(), "{}", stderr(&inspected));
}
