//! Hyper-parameters of a CHAYA model, stored in every model file.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The shape of a CHAYA-v1 network. Always read from the model file, never assumed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Number of tokens in the vocabulary (50257 for GPT-2 BPE).
    pub vocab_size: usize,
    /// Width of the factorized token embedding.
    pub e_dim: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Number of attention heads.
    pub n_heads: usize,
    /// Hidden width of the SwiGLU feed-forward block.
    pub ffn_dim: usize,
    /// Longest sequence the runtime attends over (the KV cache capacity).
    pub context_length: usize,
    /// Sequence length the weights were trained on (informational).
    pub train_context: usize,
    /// RoPE frequency base.
    pub rope_base: f32,
    /// RMSNorm epsilon (added inside the square root).
    pub norm_eps: f32,
    /// Token id of `<|endoftext|>`.
    pub eos_token_id: u32,
}

impl Config {
    /// The published CHAYA-v1 62M configuration.
    pub fn chaya_62m() -> Config {
        Config {
            vocab_size: 50257,
            e_dim: 192,
            d_model: 640,
            n_layers: 8,
            n_heads: 8,
            ffn_dim: 2560,
            context_length: 512,
            train_context: 256,
            rope_base: 10000.0,
            norm_eps: 1e-8,
            eos_token_id: 50256,
        }
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Checks that the numbers describe a buildable network.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidModel(format!("bad config: {what}")));
        let dims = [
            ("vocab_size", self.vocab_size),
            ("e_dim", self.e_dim),
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("ffn_dim", self.ffn_dim),
            ("context_length", self.context_length),
        ];
        for (name, value) in dims {
            if value == 0 || value > 1 << 20 {
                return bad(format!("{name} = {value} is out of range"));
            }
        }
        // The KV cache is sized by the context: keep it within LoadOptions' range.
        if self.context_length > 1 << 16 {
            return bad(format!(
                "context_length = {} exceeds 65536",
                self.context_length
            ));
        }
        if !self.d_model.is_multiple_of(self.n_heads) || !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "d_model {} must split into {} heads of even width",
                self.d_model, self.n_heads
            ));
        }
        if (self.eos_token_id as usize) >= self.vocab_size {
            return bad(format!("eos_token_id {} >= vocab_size", self.eos_token_id));
        }
        if !(self.rope_base > 1.0 && self.rope_base.is_finite()) {
            return bad(format!("rope_base {}", self.rope_base));
        }
        if !(self.norm_eps >= 0.0 && self.norm_eps.is_finite()) {
            return bad(format!("norm_eps {}", self.norm_eps));
        }
        Ok(())
    }

    /// Every tensor of the network with its shape, in the checkpoint's naming
    /// (`inv_freq` buffers excluded: they are recomputed).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, f) = (self.d_model, self.ffn_dim);
        let mut shapes = vec![
            (
                "token_embedding.weight".to_string(),
                vec![self.vocab_size, self.e_dim],
            ),
            ("emb_proj.weight".to_string(), vec![d, self.e_dim]),
        ];
        for i in 0..self.n_layers {
            let l = |s: &str| format!("layers.{i}.{s}");
            shapes.extend([
                (l("norm1.scale"), vec![d]),
                (l("attn.qkv.weight"), vec![3 * d, d]),
                (l("attn.out.weight"), vec![d, d]),
                (l("norm2.scale"), vec![d]),
                (l("ffn.w1.weight"), vec![f, d]),
                (l("ffn.w2.weight"), vec![f, d]),
                (l("ffn.w3.weight"), vec![d, f]),
            ]);
        }
        shapes.push(("norm_f.scale".to_string(), vec![d]));
        shapes.push(("out_proj.weight".to_string(), vec![self.e_dim, d]));
        shapes
    }

    /// Number of parameters, the tied embedding counted once.
    pub fn parameter_count(&self) -> usize {
        self.tensor_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_model_has_the_published_parameter_count() {
        assert_eq!(Config::chaya_62m().parameter_count(), 62_334_784);
        assert_eq!(Config::chaya_62m().head_dim(), 80);
    }

    #[test]
    fn odd_head_width_is_rejected() {
        let config = Config {
            d_model: 30,
            n_heads: 2,
            ..Config::chaya_62m()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("heads of even width"), "{err}");
    }
}
