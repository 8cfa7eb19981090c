//! `chaya`: convert, inspect, evaluate and run CHAYA models from the command line.

/// `println!` that returns a write error (a full disk, a closed pipe) from the
/// enclosing function instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
            .map_err(|e| anyhow::Error::new(e).context("cannot write to standard output"))?
    }};
}

mod commands;
mod progress;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "chaya", version, about = "CHAYA-v1 on-device runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a PyTorch checkpoint (.pt) or safetensors state dict into a CHAYA model file.
    Convert(commands::convert::Args),
    /// Show a model file's hyper-parameters, parameter count, types and tokenizer.
    Inspect(commands::inspect::Args),
    /// Perplexity of a UTF-8 text file.
    Eval(commands::eval::Args),
    /// How closely one model follows another (int8 vs f32): greedy agreement, perplexities.
    Compare(commands::compare::Args),
    /// Generate text from a prompt (streams to stdout), or chat interactively.
    Generate(commands::generate::Args),
    /// Rank candidate continuations of a context by their log-probability.
    Score(commands::score::Args),
    /// Measure load time, first-token latency, prefill and decode speed, peak memory.
    Bench(commands::bench::Args),
}

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let result = match Cli::parse().command {
        Command::Convert(args) => commands::convert::run(args),
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Compare(args) => commands::compare::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Score(args) => commands::score::run(args),
        Command::Bench(args) => commands::bench::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader went away (`chaya inspect m | head -1`): nothing to say.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Whether `e` is a write to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
