//! `chaya generate` end to end on the committed tiny model: output errors,
//! negative option values, and the interactive loop.

mod common;

use common::{chaya, chaya_into, chaya_with_input, stderr, tiny_model};
use std::process::Stdio;

fn generate(extra: &[&str]) -> Vec<String> {
    let model = tiny_model();
    [
        &["generate", "-m", &model, "--threads", "1", "--seed", "5"],
        extra,
    ]
    .concat()
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn negative_values_are_values_not_flags() {
    let ok = generate(&[
        "-p",
        "Hi",
        "-n",
        "3",
        "--frequency-penalty",
        "-0.5",
        "--presence-penalty",
        "-1",
    ]);
    let out = chaya(&args(&ok));
    assert!(out.status.success(), "{}", stderr(&out));
    // Out of range, a negative value gets the range error, not clap's.
    let bad = generate(&["-p", "Hi", "--temperature", "-1"]);
    let out = chaya(&args(&bad));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid option `temperature`: -1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn penalty_last_n_sets_the_window_of_the_penalties() {
    // GPT-2 ids 64 and 65 are "a" and "b": "a" wins unless penalized, then
    // "b" does; either comes back as soon as it leaves the penalty window.
    let text = |extra: &[&str]| {
        let base = [
            "-p",
            "x",
            "-n",
            "70",
            "--temperature",
            "0",
            "--repeat-penalty",
            "1",
            "--presence-penalty",
            "100",
            "--logit-bias",
            "64=200",
            "--logit-bias",
            "65=150",
        ];
        let out = chaya(&args(&generate(&[&base[..], extra].concat())));
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let a_then_b_again = format!("ab{}baaa\n", "a".repeat(64));
    assert_eq!(
        text(&["--penalty-last-n", "0"]),
        format!("ab{}\n", "a".repeat(68))
    );
    assert_eq!(
        text(&["--penalty-last-n", "1"]),
        format!("{}\n", "ab".repeat(35))
    );
    assert_eq!(text(&["--penalty-last-n", "64"]), a_then_b_again);
    // The default window is 64 tokens: "b" leaves it after 64 tokens.
    assert_eq!(text(&[]), a_then_b_again);
    let out = chaya(&args(&generate(&["-p", "x", "--penalty-last-n", "-1"])));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid value '-1' for '--penalty-last-n"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_full_disk_is_an_error_and_a_closed_pipe_is_not() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
    let Ok(full) = full else {
        return eprintln!("no /dev/full here: skipped");
    };
    let streamed = generate(&["-p", "Hi", "-n", "20"]);
    let out = chaya_into(&args(&streamed), full.try_clone().unwrap());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot write to standard output"),
        "{}",
        stderr(&out)
    );
    let json = generate(&["-p", "Hi", "-n", "5", "--json"]);
    let out = chaya_into(&args(&json), full);
    assert!(!out.status.success());

    // A reader that has gone away: a pipe whose read end is closed.
    for case in [streamed, json] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = chaya_into(&args(&case), Stdio::from(writer));
        assert!(out.status.success(), "{case:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
}

#[test]
fn interactive_json_gives_a_line_per_prompt_and_skips_lines_that_are_not_utf8() {
    let options = generate(&["-n", "4", "--json"]);
    let out = chaya_with_input(&args(&options), b"Hello\n\xff\xfe\nWorld\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("not valid UTF-8"), "{}", stderr(&out));
    let replies: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(replies.len(), 2);
    // "World" starts a line of its own after the first reply: "\nWorld\n".
    assert_eq!(replies[1]["prompt_tokens"], 3, "{}", replies[1]);
    assert!(replies
        .iter()
        .all(|r| r["tokens"].as_array().unwrap().len() == 4));
}

#[test]
fn interactive_reports_a_refused_turn_and_goes_on() {
    // Without context shift the long second line cannot fit the window.
    let options = generate(&["-n", "2", "--json", "--no-context-shift"]);
    let long = "word ".repeat(1000);
    let input = format!("Hi\n{long}\nThere\n");
    let out = chaya_with_input(&args(&options), input.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exceeds the context window"),
        "{}",
        stderr(&out)
    );
    let replies = String::from_utf8(out.stdout).unwrap();
    assert_eq!(replies.lines().count(), 2, "{replies}");
}

#[test]
fn invalid_options_are_refused_before_the_first_prompt() {
    let options = generate(&["--stop", ""]);
    let out = chaya_with_input(&args(&options), b"");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stop"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("Interactive mode"),
        "{}",
        stderr(&out)
    );
}
