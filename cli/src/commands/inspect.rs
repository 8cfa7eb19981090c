//! `chaya inspect`: what a model file holds.

use chaya::model_file::ModelFile;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Model file.
    model: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let file = ModelFile::read_path(&args.model)?;
    let size = std::fs::metadata(&args.model)?.len();
    let tokenizer = chaya::Tokenizer::from_json(&file.tokenizer_json)?;
    let c = &file.config;
    outln!(
        "file:            {} ({:.1} MB)",
        args.model.display(),
        size as f64 / 1e6
    );
    outln!("parameters:      {}", c.parameter_count());
    outln!(
        "architecture:    {} layers, d_model {}, {} heads × {}, ffn {}, embedding {} × {}",
        c.n_layers,
        c.d_model,
        c.n_heads,
        c.head_dim(),
        c.ffn_dim,
        c.vocab_size,
        c.e_dim
    );
    outln!(
        "context:         {} tokens (trained on {})",
        c.context_length,
        c.train_context
    );
    outln!(
        "rope base:       {}, rmsnorm eps {:e}",
        c.rope_base,
        c.norm_eps
    );
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    for (name, dtype) in &file.dtypes {
        *by_type.entry(format!("{dtype:?}")).or_default() += file.tensors[name].len();
    }
    let types: Vec<String> = by_type
        .iter()
        .map(|(t, n)| format!("{t}: {n} params"))
        .collect();
    outln!("weight types:    {}", types.join(", "));
    let special: Vec<String> = tokenizer
        .special_tokens()
        .iter()
        .map(|(s, id)| format!("{s} = {id}"))
        .collect();
    outln!(
        "tokenizer:       {} tokens, special: {}",
        tokenizer.vocab_size(),
        special.join(", ")
    );
    Ok(())
}
