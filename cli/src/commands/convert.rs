//! `chaya convert`: checkpoint → single-file model.

use crate::progress;
use chaya::import::{convert, ConvertOptions, WeightType};
use std::path::PathBuf;

/// The GPT-2 tokenizer CHAYA was trained with, embedded by default.
const GPT2_TOKENIZER: &str = include_str!("../../../assets/tokenizer.json");

#[derive(clap::Args)]
pub struct Args {
    /// Input checkpoint: a PyTorch `.pt` file or a safetensors state dict.
    input: PathBuf,
    /// Output model file.
    #[arg(short, long)]
    output: PathBuf,
    /// Storage type of the weight matrices.
    #[arg(long, value_enum, default_value = "int8")]
    dtype: DType,
    /// A tokenizer.json to embed instead of the bundled GPT-2 one.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Number of attention heads, for checkpoints that do not record it.
    #[arg(long)]
    n_heads: Option<usize>,
    /// Context length of the converted model.
    #[arg(long)]
    context: Option<usize>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DType {
    F32,
    F16,
    Int8,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let tokenizer = match &args.tokenizer {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read tokenizer {}: {e}", path.display()))?,
        None => GPT2_TOKENIZER.to_string(),
    };
    let weight_type = match args.dtype {
        DType::F32 => WeightType::F32,
        DType::F16 => WeightType::F16,
        DType::Int8 => WeightType::Int8,
    };
    let options = ConvertOptions {
        weight_type,
        n_heads: args.n_heads,
        context_length: args.context,
    };
    // Ctrl-C while the file is written would leave the partial file behind.
    let partial = chaya::model_file::partial_path(&args.output);
    ctrlc::set_handler(move || {
        let _ = std::fs::remove_file(&partial);
        std::process::exit(130);
    })?;
    let bar = progress::bar("reading", "tensors");
    let config = convert(
        &args.input,
        &args.output,
        &tokenizer,
        &options,
        progress::updater(&bar),
    )?;
    bar.finish_and_clear();
    let size = std::fs::metadata(&args.output)?.len();
    eprintln!(
        "wrote {} ({:.1} MB, {} parameters, {} layers, d_model {})",
        args.output.display(),
        size as f64 / 1e6,
        config.parameter_count(),
        config.n_layers,
        config.d_model
    );
    Ok(())
}
