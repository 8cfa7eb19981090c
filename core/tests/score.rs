//! `Session::score` on the committed tiny random-weight model, against
//! log-probabilities computed from a fresh session's logits of every position.

mod common;

use chaya::eval::log_softmax_at;
use chaya::{Error, GenerateOptions, LoadOptions, Logits, Model, Session, TokenLogprob};
use common::tiny_model;

/// A text long enough to be scored in several passes.
const LONG_TEXT: &str = "The keeper of the lighthouse counted the ships that passed \
    each night, and wrote their names in a book that nobody read. One winter a \
    ship came without a name, its sails grey as the fog, and the keeper waited \
    for it to pass. It did not. It stayed at the edge of the light for three \
    nights, and on the fourth the keeper rowed out to meet it, carrying his book \
    and a lantern, and a pencil in case the ship had something to say.";

fn greedy(max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        stop_at_eos: false,
        ..GenerateOptions::greedy()
    }
}

/// The log-probability of each of `context[from..]` given the tokens before
/// it, from one fresh session fed all of `context` but its last token.
fn expected_logprobs(model: &Model, context: &[u32], from: usize) -> Vec<f32> {
    let mut fresh = model.session().unwrap();
    let logits = fresh
        .feed(&context[..context.len() - 1], Logits::All)
        .unwrap();
    let vocab = model.config().vocab_size;
    (from..context.len())
        .map(|i| {
            let row = &logits[(i - 1) * vocab..i * vocab];
            log_softmax_at(row, context[i] as usize) as f32
        })
        .collect()
}

fn assert_close(scores: &[TokenLogprob], ids: &[u32], expected: &[f32]) {
    let tokens: Vec<u32> = scores.iter().map(|s| s.token).collect();
    assert_eq!(tokens, ids, "the text's own tokens are scored");
    assert_eq!(scores.len(), expected.len());
    for (i, (score, want)) in scores.iter().zip(expected).enumerate() {
        assert!(score.logprob <= 0.0, "token {i}: {score:?}");
        assert!(
            (score.logprob - want).abs() < 1e-4,
            "token {i}: {} scored, {want} expected",
            score.logprob
        );
    }
}

#[test]
fn a_text_after_an_empty_conversation_is_read_after_end_of_text() {
    let model = tiny_model(1);
    let ids = model.tokenizer().encode(LONG_TEXT).unwrap();
    assert!(ids.len() > 64 + 1, "precondition: two passes");
    let scores = model.session().unwrap().score(LONG_TEXT).unwrap();

    let mut context = vec![model.config().eos_token_id];
    context.extend(&ids);
    assert_close(&scores, &ids, &expected_logprobs(&model, &context, 1));
}

#[test]
fn scoring_leaves_the_conversation_as_it_was_with_its_cache() {
    let model = tiny_model(1);
    let mut session = model.session().unwrap();
    let mut untouched = model.session().unwrap();
    for s in [&mut session, &mut untouched] {
        s.generate("The river", &greedy(12), |_| true).unwrap();
    }
    let transcript = session.transcript().to_string();
    let candidate = " and then the sea";
    let scores = session.score(candidate).unwrap();

    let conversation = model.tokenizer().encode(&transcript).unwrap();
    let ids = model.tokenizer().encode(candidate).unwrap();
    let context = [conversation.clone(), ids.clone()].concat();
    assert_close(
        &scores,
        &ids,
        &expected_logprobs(&model, &context, conversation.len()),
    );
    assert_eq!(session.transcript(), transcript);
    assert_eq!(
        session.tokens(),
        conversation,
        "the conversation stays cached"
    );

    let next = session.generate(" Then", &greedy(12), |_| true).unwrap();
    let without_scoring = untouched.generate(" Then", &greedy(12), |_| true).unwrap();
    assert_eq!(next.tokens, without_scoring.tokens);
    assert_eq!(
        next.prefill_tokens,
        model.tokenizer().encode(" Then").unwrap().len(),
        "the next call computes its prompt only"
    );
}

#[test]
fn a_conversation_outgrowing_the_window_is_read_up_to_the_text() {
    let context_length = 64;
    let options = LoadOptions {
        threads: 1,
        context_length: Some(context_length),
        ..LoadOptions::default()
    };
    let model = Model::load(
        common::repo_path("models/chaya-tiny-random.safetensors"),
        &options,
    )
    .unwrap();
    let mut session: Session = model.session().unwrap();
    session
        .generate(&LONG_TEXT[..400], &greedy(3), |_| true)
        .unwrap();
    let candidate = &LONG_TEXT[400..];
    let scores = session.score(candidate).unwrap();

    let conversation = model.tokenizer().encode(session.transcript()).unwrap();
    let ids = model.tokenizer().encode(candidate).unwrap();
    let context = [conversation.clone(), ids.clone()].concat();
    // The cache ends with the conversation: where it starts is where the
    // window read the text from.
    let start = conversation.len() - session.tokens().len();
    assert_eq!(session.tokens(), &conversation[start..]);
    let window = &context[start..];
    assert!(window.len() <= context_length, "{} tokens", window.len());
    assert!(window.len() > ids.len() && start > 0);
    assert_close(
        &scores,
        &ids,
        &expected_logprobs(&model, window, window.len() - ids.len()),
    );
}

#[test]
fn an_empty_text_has_no_tokens_and_one_longer_than_the_window_is_refused() {
    let options = LoadOptions {
        threads: 1,
        context_length: Some(32),
        ..LoadOptions::default()
    };
    let model = Model::load(
        common::repo_path("models/chaya-tiny-random.safetensors"),
        &options,
    )
    .unwrap();
    let mut session = model.session().unwrap();
    assert_eq!(session.score("").unwrap(), []);
    let error = session.score(LONG_TEXT).unwrap_err();
    assert!(
        matches!(&error, Error::InvalidInput(m) if m.contains("context window (32)")),
        "{error}"
    );
    assert!(session.tokens().is_empty(), "nothing was computed");
}
