//! The GAN's step graphs: the two models' forward passes, their losses, Adam on each, and
//! generation.

use super::GanConfig;
use crate::graph::{DType, GResult, Graph, Id};
use crate::model::{ParamSpec, Updated, declare, emit_adam};
use crate::ops::{
    batch_norm_eval, batch_norm_train, bce_with_logits, linear, softmax_cross_entropy,
};
use crate::optim::{Adam, Fusion, moving_average};
use crate::runtime::NEXT;
use checkpoint::run::{
    BATCH_NORM_TENSORS, OUTPUT_LINEAR, block_batch_norm, block_linear, ema_name,
};
use std::collections::HashMap;

/// The generator forward pass; in training mode also the updated running statistics, with
/// BatchNorm in the form `fusion` asks for.
pub(super) fn generator(
    g: &mut Graph,
    cfg: &GanConfig,
    p: &HashMap<String, Id>,
    z: Id,
    onehot: Option<Id>,
    train: Option<Fusion>,
) -> GResult<(Id, Vec<(String, Id)>)> {
    let mut x = match onehot {
        Some(c) => g.concat(&[z, c], 1)?,
        None => z,
    };
    let mut stats = Vec::new();
    for i in 0..cfg.g_widths.len() {
        let l = block_linear(i);
        let h = linear(g, x, p[&format!("{l}.weight")], p[&format!("{l}.bias")])?;
        let bn = block_batch_norm(i);
        let [gamma, beta, rm, rv] = BATCH_NORM_TENSORS.map(|n| p[&format!("{bn}.{n}")]);
        let y = if let Some(fusion) = train {
            let out = batch_norm_train(g, h, gamma, beta, rm, rv, fusion)?;
            stats.push((format!("{bn}.running_mean"), out.running_mean));
            stats.push((format!("{bn}.running_var"), out.running_var));
            out.y
        } else {
            batch_norm_eval(g, h, gamma, beta, rm, rv)?
        };
        x = g.relu(y);
    }
    let logits = linear(
        g,
        x,
        p[&format!("{OUTPUT_LINEAR}.weight")],
        p[&format!("{OUTPUT_LINEAR}.bias")],
    )?;
    Ok((g.sigmoid(logits), stats))
}

/// The discriminator's logits: real/fake `[N, 1]`, and class logits `[N, K]` when it has an
/// auxiliary head.
fn discriminator(
    g: &mut Graph,
    cfg: &GanConfig,
    p: &HashMap<String, Id>,
    x: Id,
    onehot: Option<Id>,
) -> GResult<(Id, Option<Id>)> {
    let mut x = match onehot {
        Some(c) if cfg.d_class_dim() > 0 => g.concat(&[x, c], 1)?,
        _ => x,
    };
    for i in 0..cfg.d_widths.len() {
        let l = format!("d.block{i}.linear");
        let h = linear(g, x, p[&format!("{l}.weight")], p[&format!("{l}.bias")])?;
        x = g.leaky_relu(h, cfg.leaky_slope);
    }
    let out = linear(g, x, p["d.out.weight"], p["d.out.bias"])?;
    if let (true, Some(c)) = (cfg.projected_classes() > 0, onehot) {
        // ⟨embed(y), φ(x)⟩ per sample: onehot [N, K] · E [K, H] → [N, H], ⊙ φ, Σ over H.
        let e = g.gemm(c, p["d.embed.weight"], None, false, false)?;
        let ef = g.mul(e, x)?;
        let proj = g.reduce_sum(ef, &[1], true);
        return Ok((g.add(out, proj)?, None));
    }
    let k = cfg.aux_classes() as i64;
    if k == 0 {
        return Ok((out, None));
    }
    let adv = g.slice(out, 1, 0, 1);
    let cls = g.slice(out, 1, 1, 1 + k);
    Ok((adv, Some(cls)))
}

/// `loss + aux_weight · CE(class_logits, onehot)` when D has an auxiliary head.
fn add_aux_loss(
    g: &mut Graph,
    cfg: &GanConfig,
    loss: Id,
    class_logits: Option<Id>,
    onehot: Option<Id>,
) -> GResult<Id> {
    match (class_logits, onehot) {
        (Some(cls), Some(c)) => {
            let ce = softmax_cross_entropy(g, cls, c)?;
            let weighted = g.mul_scalar(ce, cfg.aux_weight)?;
            g.add(loss, weighted)
        }
        _ => Ok(loss),
    }
}

fn inputs(g: &mut Graph, cfg: &GanConfig, n: i64) -> (Id, Option<Id>) {
    let z = g.input("z", &[n, cfg.z_dim as i64]);
    let c = cfg.classes.map(|k| g.input("onehot", &[n, k as i64]));
    (z, c)
}

/// A loss graph before its optimiser: the loss, the parameter inputs, the generator's inputs,
/// the BatchNorm statistics it updates and its extra outputs. Gradient checks differentiate it
/// directly.
pub struct LossGraph {
    pub graph: Graph,
    pub loss: Id,
    pub params: HashMap<String, Id>,
    pub z: Id,
    pub onehot: Option<Id>,
    pub stats: Vec<(String, Id)>,
    pub extra: Vec<(String, Id)>,
}

/// The discriminator's loss, `(BCE(D(G(z)), 0) + BCE(D(real), t)) / 2` with `t` the real
/// target, plus the auxiliary classifier's cross-entropy on the real images when D has that
/// head; inputs `real` `[B, D]`, `z` and (`onehot`, the real images' classes, which the fakes
/// take too); extra outputs `d_real`, `d_fake` (D's mean probability on each half).
pub fn d_loss_graph(cfg: &GanConfig, dtype: DType, fusion: Fusion) -> GResult<LossGraph> {
    let mut g = Graph::new(dtype);
    let b = cfg.batch as i64;
    let (gs, ds) = (cfg.generator_specs(), cfg.discriminator_specs());
    let mut p = declare(&mut g, &gs);
    p.extend(declare(&mut g, &ds));
    let real = g.input("real", &[b, cfg.image_dim as i64]);
    let (z, onehot) = inputs(&mut g, cfg, b);
    let (fake, stats) = generator(&mut g, cfg, &p, z, onehot, Some(fusion))?;
    // One pass of D over [fake; real] (D has no batch statistics, so this equals two passes).
    let x = g.concat(&[fake, real], 0)?;
    let c2 = match onehot {
        Some(c) => Some(g.concat(&[c, c], 0)?),
        None => None,
    };
    let (logits, cls) = discriminator(&mut g, cfg, &p, x, c2)?;
    let targets: Vec<f64> = (0..2 * b)
        .map(|i| if i < b { 0.0 } else { cfg.real_target })
        .collect();
    let t = g.constant(targets, &[2 * b, 1]);
    // (BCE(fake, 0) + BCE(real, t)) / 2 over equal halves = the mean over both.
    let loss = bce_with_logits(&mut g, logits, t, fusion)?;
    // The classifier head learns from real images only: fakes would teach it G's mistakes.
    let cls_real = cls.map(|c| g.slice(c, 0, b, 2 * b));
    let loss = add_aux_loss(&mut g, cfg, loss, cls_real, onehot)?;
    let prob = g.sigmoid(logits);
    let pf = g.slice(prob, 0, 0, b);
    let pr = g.slice(prob, 0, b, 2 * b);
    let d_fake = g.mean_all(pf);
    let d_real = g.mean_all(pr);
    Ok(LossGraph {
        graph: g,
        loss,
        params: p,
        z,
        onehot,
        stats,
        extra: vec![("d_real".into(), d_real), ("d_fake".into(), d_fake)],
    })
}

/// The generator's loss `BCE(D(G(z)), 1)`, plus the auxiliary cross-entropy of D's class
/// prediction against the intended class when D has that head; inputs `z` and (`onehot`).
pub fn g_loss_graph(cfg: &GanConfig, dtype: DType, fusion: Fusion) -> GResult<LossGraph> {
    let mut g = Graph::new(dtype);
    let b = cfg.batch as i64;
    let (gs, ds) = (cfg.generator_specs(), cfg.discriminator_specs());
    let mut p = declare(&mut g, &gs);
    p.extend(declare(&mut g, &ds));
    let (z, onehot) = inputs(&mut g, cfg, b);
    let (fake, stats) = generator(&mut g, cfg, &p, z, onehot, Some(fusion))?;
    let (logits, cls) = discriminator(&mut g, cfg, &p, fake, onehot)?;
    let ones = g.constant(vec![1.0], &[1, 1]);
    let loss = bce_with_logits(&mut g, logits, ones, fusion)?;
    let loss = add_aux_loss(&mut g, cfg, loss, cls, onehot)?;
    Ok(LossGraph {
        graph: g,
        loss,
        params: p,
        z,
        onehot,
        stats,
        extra: vec![],
    })
}

/// Adds Adam for `specs` (model `model`) and the outputs to a loss graph; returns the graph
/// and what the update left in it.
fn step_graph(
    mut lg: LossGraph,
    model: &str,
    specs: &[ParamSpec],
    adam: &Adam,
    loss_name: &str,
    fusion: Fusion,
) -> GResult<(LossGraph, Updated)> {
    let g = &mut lg.graph;
    let updated = emit_adam(g, model, specs, &lg.params, lg.loss, adam, true, fusion)?;
    for (name, id) in &lg.stats {
        lg.graph.output(&format!("{NEXT}{name}"), *id)?;
    }
    lg.graph.output(loss_name, lg.loss)?;
    for (name, id) in &lg.extra {
        lg.graph.output(name, *id)?;
    }
    Ok((lg, updated))
}

/// Moves G's averages toward the parameters just updated: `avg' = new + d·(avg − new)` with
/// `d = min(β, (1 + t)/(10 + t))` at step `t`. The averages' BatchNorm statistics are not
/// averaged but measured on the averaged generator itself, a forward pass on this step's
/// noise in training mode: statistics of the trained weights would not match it.
fn emit_averages(
    lg: &mut LossGraph,
    cfg: &GanConfig,
    updated: &Updated,
    fusion: Fusion,
) -> GResult<()> {
    let g = &mut lg.graph;
    let t1 = g.add_scalar(updated.step, 1.0)?;
    let t10 = g.add_scalar(updated.step, 10.0)?;
    let warm = g.div(t1, t10)?;
    let beta = g.scalar(cfg.ema);
    let above = g.greater(warm, beta)?;
    let d = g.where_(above, beta, warm)?;
    let mut averaged = HashMap::new();
    let mut pairs = Vec::new();
    for s in cfg.generator_specs() {
        let avg = g.input(&ema_name(&s.name), &s.shape_i64());
        match updated.params.get(&s.name) {
            Some(&new) => pairs.push((s.name, avg, new)),
            // A running statistic: measured below.
            None => {
                averaged.insert(s.name, avg);
            }
        }
    }
    let ids: Vec<(Id, Id)> = pairs.iter().map(|&(_, avg, new)| (avg, new)).collect();
    for ((name, _, _), next) in pairs.into_iter().zip(moving_average(g, d, &ids, fusion)?) {
        g.output(&format!("{NEXT}{}", ema_name(&name)), next)?;
        averaged.insert(name, next);
    }
    let (_, stats) = generator(g, cfg, &averaged, lg.z, lg.onehot, Some(fusion))?;
    for (name, id) in stats {
        g.output(&format!("{NEXT}{}", ema_name(&name)), id)?;
    }
    Ok(())
}

/// Discriminator step: the D loss, Adam on D only (the fakes are detached), and G's running
/// statistics updated by its forward pass; outputs `d_loss`, `d_real`, `d_fake`.
pub fn d_step_graph(cfg: &GanConfig, dtype: DType, fusion: Fusion) -> GResult<Graph> {
    step_graph(
        d_loss_graph(cfg, dtype, fusion)?,
        "d",
        &cfg.discriminator_specs(),
        &cfg.d_adam,
        "d_loss",
        fusion,
    )
    .map(|(lg, _)| lg.graph)
}

/// Generator step: the G loss, gradients through D, Adam on G only, then G's moving averages
/// when the configuration keeps them; outputs `g_loss`.
pub fn g_step_graph(cfg: &GanConfig, dtype: DType, fusion: Fusion) -> GResult<Graph> {
    let (mut lg, updated) = step_graph(
        g_loss_graph(cfg, dtype, fusion)?,
        "g",
        &cfg.generator_specs(),
        &cfg.g_adam,
        "g_loss",
        fusion,
    )?;
    if cfg.ema > 0.0 {
        emit_averages(&mut lg, cfg, &updated, fusion)?;
    }
    Ok(lg.graph)
}

/// Generation: `z` `[n, z_dim]`, (`onehot`) → `image` `[n, D]` from the sampled tensors
/// ([`GanConfig::sampled_specs`]), BatchNorm in eval mode (or with batch statistics when
/// `train_mode`, leaving the running statistics alone).
pub fn generate_graph(cfg: &GanConfig, n: i64, train_mode: bool, dtype: DType) -> GResult<Graph> {
    let mut g = Graph::new(dtype);
    let sampled = declare(&mut g, &cfg.sampled_specs());
    // Keyed by the plain names, which the forward pass looks up.
    let p = cfg
        .generator_specs()
        .iter()
        .zip(cfg.sampled_specs())
        .map(|(plain, s)| (plain.name.clone(), sampled[&s.name]))
        .collect();
    let (z, onehot) = inputs(&mut g, cfg, n);
    let (img, _) = generator(
        &mut g,
        cfg,
        &p,
        z,
        onehot,
        train_mode.then_some(Fusion::Standard),
    )?;
    g.output("image", img)?;
    Ok(g)
}
