//! The adapter driven from Rust: the same calls the foreign bindings make.

use crate::{
    ChayaError, GenerateOptions, LoadOptions, Model, Session, StopReason, TokenSink, TokenSinkError,
};
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

fn model() -> Arc<Model> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/chaya-tiny-random.safetensors"
    );
    Model::from_path(
        path.into(),
        LoadOptions {
            threads: 1,
            context_length: None,
            prefill_chunk: None,
        },
    )
    .unwrap()
}

fn options(max_tokens: u32) -> GenerateOptions {
    GenerateOptions {
        max_tokens,
        seed: Some(3),
        stop_at_eos: false,
        ..crate::default_generate_options()
    }
}

/// Keeps every piece.
#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl TokenSink for Collect {
    fn on_token(&self, text: String) -> Result<bool, TokenSinkError> {
        self.0.lock().unwrap().push(text);
        Ok(true)
    }
}

#[test]
fn streams_the_summary_text() {
    let sink = Arc::new(Collect::default());
    let summary = model()
        .new_session()
        .unwrap()
        .generate("Once".into(), options(12), sink.clone(), None)
        .unwrap();
    assert_eq!(summary.stop_reason, StopReason::Length);
    assert_eq!(summary.text, sink.0.lock().unwrap().concat());
}

#[test]
fn a_failing_sink_is_a_callback_error() {
    struct Fail;
    impl TokenSink for Fail {
        fn on_token(&self, _: String) -> Result<bool, TokenSinkError> {
            Err(TokenSinkError::Failed {
                reason: "full".into(),
            })
        }
    }
    let error = model()
        .new_session()
        .unwrap()
        .generate("Once".into(), options(12), Arc::new(Fail), None)
        .unwrap_err();
    assert!(matches!(error, ChayaError::Callback { .. }), "{error:?}");
    assert!(error.to_string().contains("full"), "{error}");
}

#[test]
fn scoring_while_a_generation_runs_is_busy_and_afterwards_leaves_the_transcript() {
    /// Tries to score from inside the sink of a generation on the same session.
    struct ScoreInside(Mutex<Option<Arc<Session>>>, Mutex<Vec<ChayaError>>);
    impl TokenSink for ScoreInside {
        fn on_token(&self, _: String) -> Result<bool, TokenSinkError> {
            let session = self.0.lock().unwrap().clone().unwrap();
            let error = session.score(" the sea".into()).unwrap_err();
            self.1.lock().unwrap().push(error);
            Ok(false)
        }
    }
    let session = model().new_session().unwrap();
    let sink = Arc::new(ScoreInside(
        Mutex::new(Some(session.clone())),
        Mutex::default(),
    ));
    session
        .generate("Once".into(), options(4), sink.clone(), None)
        .unwrap();
    let errors = std::mem::take(&mut *sink.1.lock().unwrap());
    *sink.0.lock().unwrap() = None;
    assert!(
        matches!(&errors[..], [ChayaError::Busy { message }] if message.contains("score")),
        "{errors:?}"
    );

    let transcript = session.transcript().unwrap();
    let scores = session.score(" the sea".into()).unwrap();
    assert_eq!(session.transcript().unwrap(), transcript);
    let ids: Vec<u32> = scores.iter().map(|s| s.token).collect();
    assert_eq!(ids, model().encode(" the sea".into()).unwrap());
    assert!(scores.iter().all(|s| s.logprob < 0.0), "{scores:?}");
}

thread_local! {
    static HELD: RefCell<Option<Arc<Session>>> = const { RefCell::new(None) };
}

/// A session released by a thread-local destructor, after the thread's other
/// thread-locals (tract's scratch space among them) are gone, as Swift does
/// when a `Thread` whose closure holds the session is freed. Without the
/// adapter's care this aborts the process.
#[test]
fn a_session_released_during_thread_exit_is_dropped_safely() {
    let model = model();
    std::thread::spawn(move || {
        let session = model.new_session().unwrap();
        HELD.with(|held| *held.borrow_mut() = Some(session.clone()));
        session
            .generate(
                "Once".into(),
                options(4),
                Arc::new(Collect::default()),
                None,
            )
            .unwrap();
    })
    .join()
    .unwrap();
}
