//! Builds CHAYA's forward pass as tract graphs, read top to bottom like the spec.
//!
//! Two graphs: the *body* maps `ids [T]` at absolute position `pos` to the final
//! hidden states projected to the embedding width `[T, e_dim]`, keeping a KV
//! cache per layer ([`CachedAttention`]); the *head* maps `[N, e_dim]` to logits
//! `[N, vocab]` through the tied embedding. Splitting them lets generation run
//! the 50257-wide head on the last position only.

use crate::attention::{CachedAttention, KvPrecision};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::int8::{Int8Embedding, Int8GatedLinear, Int8Linear};
use crate::model_file::Weight;
use crate::rope::ChayaRope;
use std::collections::HashMap;
use tract_core::internal::*;
use tract_core::ops::array::Gather;
use tract_core::ops::einsum::EinSum;
use tract_core::ops::nn::RmsNorm;
use tract_linalg::multithread::Executor;

/// A runnable, optimized tract plan.
pub type Plan = Arc<TypedRunnableModel>;

/// Incrementally wires the CHAYA graph into a [`TypedModel`].
struct GraphBuilder<'w> {
    model: TypedModel,
    tensors: &'w HashMap<String, Weight>,
    eps: f32,
}

impl GraphBuilder<'_> {
    fn stored(&self, name: &str) -> Result<&Weight> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::InvalidModel(format!("missing tensor `{name}`")))
    }

    /// A tensor stored in a float type, as a tract tensor.
    fn weight(&self, name: &str) -> Result<Arc<Tensor>> {
        match self.stored(name)? {
            Weight::Dense(t) => Ok(t.clone()),
            Weight::Int8(_) => Err(Error::InvalidModel(format!(
                "tensor `{name}` must be stored as a float type, not int8"
            ))),
        }
    }

    /// `x · Wᵀ` with `W` stored `[out, in]` as in PyTorch.
    fn linear(&mut self, name: &str, x: OutletId) -> Result<OutletId> {
        let node = format!("{name}.matmul");
        if let Weight::Int8(weight) = self.stored(name)? {
            let op = Int8Linear {
                weight: weight.clone(),
            };
            return Ok(self.model.wire_node(node, op, &[x])?[0]);
        }
        let w = self.model.add_const(name, self.weight(name)?)?;
        let op = EinSum::new("tk,nk->tn".parse()?, f32::datum_type());
        Ok(self.model.wire_node(node, op, &[x, w])?[0])
    }

    /// SwiGLU's gated product `silu(x · W1ᵀ) ⊙ (x · W2ᵀ)`: one op for int8
    /// weights, else two products, SiLU and a product.
    fn gated_linear(&mut self, gate: &str, up: &str, x: OutletId) -> Result<OutletId> {
        if let (Weight::Int8(gate_w), Weight::Int8(up_w)) = (self.stored(gate)?, self.stored(up)?) {
            let op = Int8GatedLinear {
                gate: gate_w.clone(),
                up: up_w.clone(),
            };
            return Ok(self.model.wire_node(format!("{gate}.gated"), op, &[x])?[0]);
        }
        let gated = self.linear(gate, x)?;
        let gated = self.model.wire_node(
            format!("{gate}.silu"),
            tract_core::ops::nn::silu::silu(),
            &[gated],
        )?[0];
        let up_x = self.linear(up, x)?;
        Ok(self.model.wire_node(
            format!("{gate}.gate"),
            tract_core::ops::math::mul(),
            &[gated, up_x],
        )?[0])
    }

    /// Rows `ids` of the token-embedding table.
    fn embed(&mut self, ids: OutletId) -> Result<OutletId> {
        const NAME: &str = "token_embedding.weight";
        if let Weight::Int8(table) = self.stored(NAME)? {
            let op = Int8Embedding {
                table: table.clone(),
            };
            return Ok(self.model.wire_node("embed", op, &[ids])?[0]);
        }
        let table = self.model.add_const(NAME, self.weight(NAME)?)?;
        let op = Gather {
            axis: 0,
            output_type: None,
        };
        Ok(self.model.wire_node("embed", op, &[table, ids])?[0])
    }

    /// `g · x / sqrt(mean(x²) + eps)` over the last axis.
    fn rmsnorm(&mut self, name: &str, x: OutletId) -> Result<OutletId> {
        let op = RmsNorm {
            axis: 1,
            eps: rctensor0(self.eps),
        };
        let normed = self.model.wire_node(format!("{name}.rms"), op, &[x])?[0];
        let scale = self.weight(name)?;
        let len = scale.len();
        let scale = self
            .model
            .add_const(name, (*scale).clone().into_shape(&[1, len])?)?;
        Ok(self.model.wire_node(
            format!("{name}.mul"),
            tract_core::ops::math::mul(),
            &[normed, scale],
        )?[0])
    }

    fn add(&mut self, name: &str, a: OutletId, b: OutletId) -> Result<OutletId> {
        Ok(self
            .model
            .wire_node(name, tract_core::ops::math::add(), &[a, b])?[0])
    }
}

/// Builds and optimizes the body graph (inputs `ids`, `pos`; output `[T, e_dim]`).
pub fn build_body(config: &Config, tensors: &HashMap<String, Weight>) -> Result<TypedModel> {
    let mut g = GraphBuilder {
        model: TypedModel::default(),
        tensors,
        eps: config.norm_eps,
    };
    let t = g.model.symbols.sym("T");
    // Sessions never run an empty batch. Knowing it lets tract prove that
    // `[T, d]` tensors are big enough for its vectorized elementwise kernels
    // (the residual adds otherwise ran one element per call).
    g.model.symbols.add_assertion("T >= 1")?;
    let ids = g.model.add_source("ids", i64::fact(tvec![t.to_dim()]))?;
    let pos = g.model.add_source("pos", i64::scalar_fact())?;
    let rope = Arc::new(ChayaRope::new(
        config.head_dim(),
        config.rope_base,
        config.context_length,
    ));

    let e = g.embed(ids)?;
    let mut x = g.linear("emb_proj.weight", e)?;
    for i in 0..config.n_layers {
        let l = |s: &str| format!("layers.{i}.{s}");
        let h = g.rmsnorm(&l("norm1.scale"), x)?;
        let qkv = g.linear(&l("attn.qkv.weight"), h)?;
        // An int8 model keeps its cache in f16 (its weights round more than
        // that already); an f32 model computes exactly what the reference does.
        let precision = match g.stored(&l("attn.qkv.weight"))? {
            Weight::Int8(_) => KvPrecision::F16,
            Weight::Dense(_) => KvPrecision::F32,
        };
        let attention = CachedAttention {
            n_heads: config.n_heads,
            head_dim: config.head_dim(),
            rope: rope.clone(),
            precision,
        };
        let a = g.model.wire_node(l("attn.sdpa"), attention, &[qkv, pos])?[0];
        let a = g.linear(&l("attn.out.weight"), a)?;
        x = g.add(&l("attn.residual"), x, a)?;

        let h = g.rmsnorm(&l("norm2.scale"), x)?;
        let hidden = g.gated_linear(&l("ffn.w1.weight"), &l("ffn.w2.weight"), h)?;
        let down = g.linear(&l("ffn.w3.weight"), hidden)?;
        x = g.add(&l("ffn.residual"), x, down)?;
    }
    let x = g.rmsnorm("norm_f.scale", x)?;
    let out = g.linear("out_proj.weight", x)?;
    g.model.select_output_outlets(&[out])?;
    Ok(g.model)
}

/// Builds the tied output head (input `hidden [N, e_dim]`, output logits `[N, vocab]`).
pub fn build_head(config: &Config, tensors: &HashMap<String, Weight>) -> Result<TypedModel> {
    let mut g = GraphBuilder {
        model: TypedModel::default(),
        tensors,
        eps: config.norm_eps,
    };
    let n = g.model.symbols.sym("N");
    let hidden = g.model.add_source(
        "hidden",
        f32::fact(tvec![n.to_dim(), config.e_dim.to_dim()]),
    )?;
    let logits = g.linear("token_embedding.weight", hidden)?;
    g.model.select_output_outlets(&[logits])?;
    Ok(g.model)
}

/// Optimizes a graph and makes it runnable on `executor` (shared by a model's plans).
pub fn into_plan(model: TypedModel, executor: &Executor) -> Result<Plan> {
    let model = model.into_optimized()?;
    let options = RunOptions {
        executor: Some(executor.clone()),
        ..RunOptions::default()
    };
    Ok(model.into_runnable_with_options(&options)?)
}
