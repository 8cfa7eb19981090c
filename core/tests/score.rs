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
fn scoring_leaves_the_conversation_and_the_next_generation_as_they_were() {
    let model = tiny_model(1);
    let mut session = model.session().unwrap();
    let mut untouched = model.session().unwrap();
    for s in [&mut session, &mut untouched] {
        s.generate("The river", &greedy(12), |_| true).unwrap();
    }
    let transcript = session.transcript().to_string();
    let cached = session.tokens().to_vec();
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
    assert_eq!(session.tokens(), cached, "as many cached tokens as before");
    assert_next_generation_is_the_same(&mut session, &mut untouched);
}

/// The next generation of `scored` equals that of `untouched`, a session
/// given the same calls except the scores.
fn assert_next_generation_is_the_same(scored: &mut Session, untouched: &mut Session) {
    assert_next_generation_from_is_the_same(scored, untouched, " Then");
}

/// [`assert_next_generation_is_the_same`], prompted with `prompt`.
fn assert_next_generation_from_is_the_same(
    scored: &mut Session,
    untouched: &mut Session,
    prompt: &str,
) {
    let next = scored.generate(prompt, &greedy(12), |_| true).unwrap();
    let without_scoring = untouched.generate(prompt, &greedy(12), |_| true).unwrap();
    assert_eq!(next.tokens, without_scoring.tokens);
    assert_eq!(
        (next.reused_tokens, next.prefill_tokens, next.context_shifts),
        (
            without_scoring.reused_tokens,
            without_scoring.prefill_tokens,
            without_scoring.context_shifts
        )
    );
}

/// The tiny model with a 64-token window.
fn tiny_model_64() -> Model {
    let options = LoadOptions {
        threads: 1,
        context_length: Some(64),
        ..LoadOptions::default()
    };
    let path = common::repo_path("models/chaya-tiny-random.safetensors");
    Model::load(path, &options).unwrap()
}

/// A session of [`tiny_model_64`] whose conversation outgrew the window:
/// the cache holds its last tokens, from a window start past 0.
fn overflowed_session(model: &Model) -> Session {
    let mut session = model.session().unwrap();
    let summary = session.generate(LONG_TEXT, &greedy(3), |_| true).unwrap();
    assert_eq!(summary.context_shifts, 1, "precondition: {summary:?}");
    session
}

/// A text of about `n` tokens, with the tokens it encodes to.
fn text_of(model: &Model, n: usize) -> (String, Vec<u32>) {
    let tokenizer = model.tokenizer();
    let text = tokenizer
        .decode(&tokenizer.encode(LONG_TEXT).unwrap()[1..=n])
        .unwrap();
    let ids = tokenizer.encode(&text).unwrap();
    (text, ids)
}

/// Scores `text` (encoding to `ids`) on `session` and checks it against a
/// fresh session's reading of the conversation and the text from the
/// position `window_start` gives for them.
fn check_score_in_window(
    model: &Model,
    session: &mut Session,
    text: &str,
    ids: &[u32],
    window_start: impl Fn(&[u32]) -> usize,
) {
    let conversation = model.tokenizer().encode(session.transcript()).unwrap();
    let context = [conversation, ids.to_vec()].concat();
    let start = window_start(&context);
    let window = &context[start..];
    assert!(window.len() <= 64 && window.len() > ids.len(), "{start}");
    let scores = session.score(text).unwrap();
    assert_close(
        &scores,
        ids,
        &expected_logprobs(model, window, window.len() - ids.len()),
    );
}

#[test]
fn a_text_fitting_the_window_of_an_overflowed_conversation_is_read_in_that_window() {
    let model = tiny_model_64();
    let (mut session, mut untouched) = (overflowed_session(&model), overflowed_session(&model));
    let cached = session.tokens().to_vec();
    let conversation = model.tokenizer().encode(session.transcript()).unwrap();
    // The cached window's start: where the conversation holds its tokens.
    let start = (1..conversation.len())
        .find(|&s| conversation[s..].starts_with(&cached))
        .expect("the cache holds a window of the conversation");
    let (text, ids) = text_of(&model, 5);
    assert!(conversation.len() + ids.len() - start <= 64, "precondition");
    check_score_in_window(&model, &mut session, &text, &ids, |_| start);
    assert_eq!(session.tokens(), cached);
    assert_next_generation_is_the_same(&mut session, &mut untouched);
}

#[test]
fn a_text_not_fitting_the_window_is_read_after_the_last_three_quarters_leaving_the_cache() {
    let model = tiny_model_64();
    let (mut session, mut untouched) = (overflowed_session(&model), overflowed_session(&model));
    let (cached, transcript) = (session.tokens().to_vec(), session.transcript().to_string());
    let (text, ids) = text_of(&model, 20);
    check_score_in_window(&model, &mut session, &text, &ids, |context| {
        context.len() - 48
    });
    assert_eq!(session.tokens(), cached, "the session's cache is not moved");
    assert_eq!(session.transcript(), transcript);
    assert_next_generation_is_the_same(&mut session, &mut untouched);

    // A text longer than three quarters of the window: all of it, and one token before.
    let (text, ids) = text_of(&model, 55);
    check_score_in_window(&model, &mut session, &text, &ids, |context| {
        context.len() - ids.len() - 1
    });
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

#[test]
fn a_context_read_without_generating_is_what_a_score_continues() {
    let model = tiny_model(1);
    let mut session = model.session().unwrap();
    session
        .generate("The weather today is", &greedy(0), |_| true)
        .unwrap();
    let context = model.tokenizer().encode("The weather today is").unwrap();
    for candidate in [" sunny", " cold and wet"] {
        let ids = model.tokenizer().encode(candidate).unwrap();
        let all = [context.clone(), ids.clone()].concat();
        let scores = session.score(candidate).unwrap();
        assert_close(
            &scores,
            &ids,
            &expected_logprobs(&model, &all, context.len()),
        );
        assert_eq!(session.tokens(), context, "the context stays cached");
    }
}

#[test]
fn a_cache_holding_tokens_the_transcript_does_not_is_left_as_it_was() {
    let model = tiny_model_64();
    let tokenizer = model.tokenizer();
    let byte = |b| tokenizer.byte_token(b).unwrap();
    let forcing = |b| GenerateOptions {
        logit_bias: vec![(byte(b), 100.0)],
        ..greedy(1)
    };
    let mut twins = [model.session().unwrap(), model.session().unwrap()];
    for session in &mut twins {
        let context = format!("{LONG_TEXT} keep");
        session.generate(&context, &greedy(0), |_| true).unwrap();
        // The first two bytes of "だ" (E3 81 A0): a cut character, held back.
        session.generate("", &forcing(0xE3), |_| true).unwrap();
        session.generate("", &forcing(0x81), |_| true).unwrap();
    }
    let [scored, untouched] = &mut twins;
    let cached = scored.tokens().to_vec();
    assert_eq!(cached.last(), Some(&byte(0xE3)), "precondition");
    scored.score(" x").unwrap();
    assert_eq!(scored.tokens(), cached);
    // " keep" + "er" re-encode as one token: the twin's cache no longer agrees.
    assert_next_generation_from_is_the_same(scored, untouched, "er");
}
