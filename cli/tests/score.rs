//! `chaya score` end to end on the committed tiny model.

mod common;

use common::{chaya, tiny_model};

fn score(args: &[&str]) -> serde_json::Value {
    let model = tiny_model();
    let output = chaya(&[&["score", "--json", "-m", &model], args].concat());
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

#[test]
fn candidates_are_ranked_by_the_sum_of_their_token_logprobs() {
    let json = score(&[
        "-c",
        "The weather today is",
        " sunny",
        " cold and wet",
        " sunny",
    ]);
    assert_eq!(json["context"], "The weather today is");
    let candidates = json["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 3);
    let totals: Vec<f64> = candidates
        .iter()
        .map(|c| c["logprob"].as_f64().unwrap())
        .collect();
    assert!(totals.windows(2).all(|w| w[0] >= w[1]), "{totals:?}");
    for c in candidates {
        let token_logprobs: Vec<f64> = c["token_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(token_logprobs.len(), c["tokens"].as_array().unwrap().len());
        assert!(token_logprobs.iter().all(|&l| l < 0.0));
        let sum: f64 = token_logprobs.iter().sum();
        assert!((sum - c["logprob"].as_f64().unwrap()).abs() < 1e-4, "{c}");
    }
    let sunny: Vec<_> = candidates
        .iter()
        .filter(|c| c["text"] == " sunny")
        .collect();
    assert_eq!(sunny.len(), 2);
    assert_eq!(
        sunny[0]["logprob"], sunny[1]["logprob"],
        "scoring keeps the context"
    );
}

#[test]
fn the_context_changes_the_scores_and_text_output_has_a_line_per_candidate() {
    let after =
        |context: &str| score(&["-c", context, " river"])["candidates"][0]["logprob"].clone();
    assert_ne!(after("The"), after("Once upon a time, by the"));

    let model = tiny_model();
    let output = chaya(&["score", "-m", &model, " a", " the sea"]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("1 token ") && text.contains("\" the sea\""),
        "{text}"
    );
}

#[test]
fn a_context_or_a_candidate_may_begin_with_a_hyphen() {
    let json = score(&["-c", "-- well", "--", "-ish", " fine"]);
    assert_eq!(json["context"], "-- well");
    let texts: Vec<_> = json["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].clone())
        .collect();
    assert!(
        texts.contains(&"-ish".into()) && texts.len() == 2,
        "{texts:?}"
    );
}

#[test]
fn no_candidate_an_empty_or_too_long_one_or_a_missing_model_is_an_error() {
    let model = tiny_model();
    let output = chaya(&["score", "-m", &model]);
    assert!(!output.status.success());
    let output = chaya(&["score", "-m", &model, " a", ""]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("empty candidate"));
    let long = " sea".repeat(600);
    let output = chaya(&["score", "-m", &model, " a", &long]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("cannot score the candidate \" sea sea"),
        "{stderr}"
    );
    let output = chaya(&["score", "-m", "no-such-model.safetensors", " a"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-model"), "{stderr}");
}
