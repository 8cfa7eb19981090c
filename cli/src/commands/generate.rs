//! `chaya generate`: stream a completion, or chat interactively.

use chaya::{GenerateOptions, GenerateSummary, Session};
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Model file.
    #[arg(short, long)]
    model: PathBuf,
    /// Prompt text. Without -p or -f: interactive multi-turn prompt loop.
    #[arg(short, long, conflicts_with = "file")]
    prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(short, long)]
    file: Option<PathBuf>,
    /// Maximum number of new tokens (default 128; 150 with --compat).
    #[arg(short = 'n', long)]
    max_tokens: Option<usize>,
    /// Sampling temperature (0, or below 1e-6, = greedy).
    #[arg(long, allow_negative_numbers = true)]
    temperature: Option<f32>,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, allow_negative_numbers = true)]
    top_p: Option<f32>,
    /// Minimum probability relative to the best token (0 = off).
    #[arg(long, allow_negative_numbers = true)]
    min_p: Option<f32>,
    /// Repetition penalty (1 = off).
    #[arg(long, allow_negative_numbers = true)]
    repeat_penalty: Option<f32>,
    /// Frequency penalty.
    #[arg(long, allow_negative_numbers = true)]
    frequency_penalty: Option<f32>,
    /// Presence penalty.
    #[arg(long, allow_negative_numbers = true)]
    presence_penalty: Option<f32>,
    /// The penalties look at the last N tokens (0 = all since the start; default 64, 0 with --compat).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    penalty_last_n: Option<usize>,
    /// Start from the original CHAYA CLI's settings (sampler order, penalties, top-k/top-p, temperature 0.8).
    #[arg(long)]
    compat: bool,
    /// Random seed (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop before this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Keep going past the end-of-text token.
    #[arg(long)]
    ignore_eos: bool,
    /// Add BIAS to the logit of token ID, as `ID=BIAS` (`ID=-inf` bans it; repeatable).
    #[arg(long, value_parser = parse_logit_bias, allow_hyphen_values = true)]
    logit_bias: Vec<(u32, f32)>,
    /// Stop when the context window is full instead of re-prefilling its last part.
    #[arg(long)]
    no_context_shift: bool,
    #[command(flatten)]
    load: super::LoadArgs,
    /// Print one JSON object (text, token ids, stop reason, timings) instead of
    /// streaming; one per line per prompt in interactive mode.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn options(&self) -> GenerateOptions {
        let base = if self.compat {
            GenerateOptions::compat()
        } else {
            GenerateOptions::default()
        };
        GenerateOptions {
            max_tokens: self.max_tokens.unwrap_or(base.max_tokens),
            temperature: self.temperature.unwrap_or(base.temperature),
            top_k: self.top_k.unwrap_or(base.top_k),
            top_p: self.top_p.unwrap_or(base.top_p),
            min_p: self.min_p.unwrap_or(base.min_p),
            repetition_penalty: self.repeat_penalty.unwrap_or(base.repetition_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(base.frequency_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(base.presence_penalty),
            penalty_last_n: self.penalty_last_n.unwrap_or(base.penalty_last_n),
            seed: self.seed,
            stop_strings: self.stop.clone(),
            stop_at_eos: !self.ignore_eos,
            logit_bias: self.logit_bias.clone(),
            context_shift: !self.no_context_shift,
            ..base
        }
    }
}

/// Parses `ID=BIAS`.
fn parse_logit_bias(s: &str) -> Result<(u32, f32), String> {
    let (id, bias) = s.split_once('=').ok_or("expected ID=BIAS")?;
    let id = id
        .trim()
        .parse()
        .map_err(|e| format!("token id `{id}`: {e}"))?;
    let bias = bias
        .trim()
        .parse()
        .map_err(|e| format!("bias `{bias}`: {e}"))?;
    Ok((id, bias))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let model = args.load.load(&args.model)?;
    let mut session = model.session()?;
    let options = args.options();
    options.validate(model.config().vocab_size)?;
    let prompt = match (&args.prompt, &args.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => super::read_text(f)?,
        (None, None) => return interactive(&mut session, &options, args.json),
    };
    respond(&mut session, &prompt, &options, args.json)
}

/// Generates a reply to `prompt`: streamed with timings on stderr, or as
/// one JSON line.
fn respond(
    session: &mut Session,
    prompt: &str,
    options: &GenerateOptions,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let summary = session.generate(prompt, options, |_| true)?;
        outln!("{}", summary_json(&summary));
    } else {
        let summary = stream(session, prompt, options)?;
        report(&summary);
    }
    Ok(())
}

/// Generates, printing text to stdout as it arrives.
fn stream(
    session: &mut Session,
    prompt: &str,
    options: &GenerateOptions,
) -> anyhow::Result<GenerateSummary> {
    let mut stdout = std::io::stdout().lock();
    let mut write_error = None;
    let summary = session.generate(prompt, options, |piece| {
        let written = stdout
            .write_all(piece.as_bytes())
            .and_then(|()| stdout.flush());
        write_error = written.err();
        write_error.is_none()
    })?;
    match write_error {
        // A closed stdout (e.g. `| head`) just stops generation.
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Some(e) => return Err(anyhow::Error::new(e).context("cannot write to standard output")),
        None => writeln!(stdout)?,
    }
    Ok(summary)
}

/// Prints timings to stderr.
fn report(s: &GenerateSummary) {
    eprintln!(
        "[{} prompt tokens ({} reused), {} generated, stop: {:?}; first token {:.0} ms, prefill {:.1} tok/s, decode {:.1} tok/s]",
        s.prompt_tokens,
        s.reused_tokens,
        s.tokens.len(),
        s.stop_reason,
        s.time_to_first_token.as_secs_f64() * 1e3,
        s.prefill_tokens_per_second,
        s.decode_tokens_per_second
    );
}

fn summary_json(s: &GenerateSummary) -> serde_json::Value {
    serde_json::json!({
        "text": s.text,
        "tokens": s.tokens,
        "stop_reason": format!("{:?}", s.stop_reason),
        "prompt_tokens": s.prompt_tokens,
        "reused_tokens": s.reused_tokens,
        "prefill_tokens": s.prefill_tokens,
        "context_shifts": s.context_shifts,
        "time_to_first_token_ms": s.time_to_first_token.as_secs_f64() * 1e3,
        "prefill_tokens_per_second": s.prefill_tokens_per_second,
        "decode_tokens_per_second": s.decode_tokens_per_second,
    })
}

/// A prompt loop keeping the conversation in the session's cache. Each line
/// starts on a line of its own in the conversation; a turn that fails is
/// reported and the loop goes on.
fn interactive(session: &mut Session, options: &GenerateOptions, json: bool) -> anyhow::Result<()> {
    eprintln!(
        "Interactive mode: type a prompt and press Enter; /reset clears the context, Ctrl-D quits."
    );
    let stdin = std::io::stdin();
    loop {
        eprint!("> ");
        let mut bytes = Vec::new();
        if stdin.lock().read_until(b'\n', &mut bytes)? == 0 {
            return Ok(());
        }
        let Ok(line) = String::from_utf8(bytes) else {
            eprintln!("error: that line is not valid UTF-8; type it again");
            continue;
        };
        let line = line.trim_end_matches(['\n', '\r']);
        if line == "/reset" {
            session.reset();
            continue;
        }
        let transcript = session.transcript();
        let separator = if transcript.is_empty() || transcript.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        // A turn the runtime refuses (e.g. a conversation past a full window
        // without context shift) leaves the session as it was: say why and go
        // on. Failing to write the reply still ends the loop.
        match respond(session, &format!("{separator}{line}\n"), options, json) {
            Err(e) if e.is::<chaya::Error>() => eprintln!("error: {e}"),
            result => result?,
        }
    }
}
