//! `chaya compare`: how closely one model file follows another — typically
//! int8 against f32 of the same weights: greedy agreement on a set of
//! prompts and, given a text, both perplexities and the KL divergence of
//! the second's next-token distributions from the first's.

use crate::progress;
use std::path::PathBuf;

/// The default prompts: 20 everyday openings, one per line.
const PROMPTS: &str = include_str!("prompts.txt");

#[derive(clap::Args)]
pub struct Args {
    /// The reference model (e.g. the f32 file).
    reference: PathBuf,
    /// The model compared with it (e.g. the int8 file).
    candidate: PathBuf,
    /// UTF-8 text to score with both models.
    #[arg(long)]
    text: Option<PathBuf>,
    /// Prompts, one per line (default: 20 built-in prompts).
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Greedy tokens continued per prompt.
    #[arg(short = 'n', long, default_value_t = 32)]
    tokens: usize,
    /// Perplexity window length in tokens.
    #[arg(long, default_value_t = 256)]
    ctx: usize,
    #[command(flatten)]
    load: super::LoadArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn divergence(
    reference: &chaya::Model,
    candidate: &chaya::Model,
    text: &str,
    ctx: usize,
) -> anyhow::Result<chaya::eval::Divergence> {
    let ids = reference.tokenizer().encode(text)?;
    let bar = progress::bar("scoring", "tokens");
    let result = chaya::eval::divergence(
        &mut reference.session()?,
        &mut candidate.session()?,
        &ids,
        ctx,
        progress::updater(&bar),
    )?;
    bar.finish_and_clear();
    Ok(result)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let reference = args.load.load(&args.reference)?;
    let candidate = args.load.load(&args.candidate)?;
    let prompt_text = match &args.prompts {
        Some(path) => super::read_text(path)?,
        None => PROMPTS.to_string(),
    };
    let prompts = prompt_text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| reference.tokenizer().encode(line))
        .collect::<Result<Vec<_>, _>>()?;
    let agreement = chaya::eval::greedy_agreement(&reference, &candidate, &prompts, args.tokens)?;
    let on_text = match &args.text {
        Some(path) => Some(divergence(
            &reference,
            &candidate,
            &super::read_text(path)?,
            args.ctx,
        )?),
        None => None,
    };
    if args.json {
        let mut json = serde_json::json!({ "agreement": agreement });
        if let Some(d) = &on_text {
            json["text"] = serde_json::json!({
                "ctx": args.ctx,
                "relative_change": relative_change(d),
                "divergence": d,
            });
        }
        outln!("{json}");
        return Ok(());
    }
    outln!(
        "greedy agreement over {} prompts × {} tokens: top-1 {:.1}% (teacher-forced), \
         shared prefix {:.1} tokens on average, {} of {} continuations identical",
        agreement.prompts,
        agreement.tokens,
        100.0 * agreement.top1,
        agreement.mean_shared_prefix,
        agreement.identical,
        agreement.prompts
    );
    if let Some(d) = on_text {
        outln!(
            "on the text ({} tokens, windows of {}): perplexity reference {:.4}, candidate {:.4} \
             ({:+.3}%); KL divergence mean {:.3e} nats, 99th percentile {:.3e}, max {:.3e}; \
             same top-1 token {:.2}%",
            d.reference.n_targets,
            args.ctx,
            d.reference.perplexity,
            d.candidate.perplexity,
            100.0 * relative_change(&d),
            d.mean_kl,
            d.p99_kl,
            d.max_kl,
            100.0 * d.top1
        );
    }
    Ok(())
}

/// The candidate's perplexity relative to the reference's, minus one.
fn relative_change(d: &chaya::eval::Divergence) -> f64 {
    d.candidate.perplexity / d.reference.perplexity - 1.0
}
