//! `chaya score`: how likely the model finds each candidate continuation of
//! a context, ranked (e.g. a keyboard's suggestions).

use anyhow::Context as _;
use chaya::{GenerateOptions, TokenLogprob};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Model file.
    #[arg(short, long)]
    model: PathBuf,
    /// The text the candidates continue (empty: they start a text). Put the
    /// space between it and a candidate in the candidate (" sunny"): GPT-2's
    /// tokens begin with their space.
    #[arg(short, long, default_value = "", allow_hyphen_values = true)]
    context: String,
    /// Candidate continuations, each scored on its own after the context
    /// (after `--` when one begins with '-').
    #[arg(required = true)]
    candidates: Vec<String>,
    #[command(flatten)]
    load: super::LoadArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// A candidate with the sum of its tokens' log-probabilities.
struct Scored {
    text: String,
    tokens: Vec<TokenLogprob>,
    logprob: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.candidates.iter().any(String::is_empty) {
        anyhow::bail!("an empty candidate has no tokens to score");
    }
    let model = args.load.load(&args.model)?;
    let mut session = model.session()?;
    if !args.context.is_empty() {
        // Read the context into the conversation without generating.
        let read = GenerateOptions {
            max_tokens: 0,
            ..GenerateOptions::default()
        };
        session.generate(&args.context, &read, |_| true)?;
    }
    let mut ranked = Vec::new();
    for text in args.candidates {
        let tokens = session
            .score(&text)
            .with_context(|| format!("cannot score the candidate {text:?}"))?;
        let logprob = tokens.iter().map(|t| f64::from(t.logprob)).sum();
        ranked.push(Scored {
            text,
            tokens,
            logprob,
        });
    }
    ranked.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
    if args.json {
        let candidates: Vec<_> = ranked
            .iter()
            .map(|c| {
                serde_json::json!({
                    "text": c.text,
                    "logprob": c.logprob,
                    "tokens": c.tokens.iter().map(|t| t.token).collect::<Vec<_>>(),
                    "token_logprobs": c.tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({ "context": args.context, "candidates": candidates })
        );
    } else {
        for c in &ranked {
            let unit = if c.tokens.len() == 1 {
                "token"
            } else {
                "tokens"
            };
            outln!(
                "{:>10.4}  {:>3} {unit:<6}  {:?}",
                c.logprob,
                c.tokens.len(),
                c.text
            );
        }
    }
    Ok(())
}
