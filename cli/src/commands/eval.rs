//! `chaya eval`: perplexity of a text file.

use crate::progress;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Model file.
    #[arg(short, long)]
    model: PathBuf,
    /// UTF-8 text file to score.
    text: PathBuf,
    /// Window length in tokens.
    #[arg(long, default_value_t = 256)]
    ctx: usize,
    #[command(flatten)]
    load: super::LoadArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let text = super::read_text(&args.text)?;
    let model = args.load.load(&args.model)?;
    let ids = model.tokenizer().encode(&text)?;
    let mut session = model.session()?;
    let bar = progress::bar("scoring", "tokens");
    let result = chaya::eval::perplexity(&mut session, &ids, args.ctx, progress::updater(&bar))?;
    bar.finish_and_clear();
    if args.json {
        let json = serde_json::json!({
            "perplexity": result.perplexity,
            "mean_nll": result.mean_nll,
            "n_targets": result.n_targets,
            "n_tokens": ids.len(),
            "ctx": args.ctx,
        });
        outln!("{json}");
    } else {
        outln!(
            "perplexity {:.4} over {} target tokens ({} tokens, windows of {})",
            result.perplexity,
            result.n_targets,
            ids.len(),
            args.ctx
        );
    }
    Ok(())
}
