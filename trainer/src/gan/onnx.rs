//! The trained generator as a standalone ONNX model, the reference export verifies against.

use super::GanConfig;
use super::graphs::generator;
use crate::graph::{DType, Graph};
use crate::model::{NamedTensor, check_state};
use crate::runtime::RResult;
use std::collections::HashMap;

/// The float generator in eval mode as a standalone ONNX model: input `z` `[N, z_dim]` (and
/// `class_onehot` `[N, classes]` when conditional), output `image` `[N, image_dim]`, the
/// parameters (from [`GanTrainer::generator_state`]) stored as initializers.
pub fn generator_onnx(cfg: &GanConfig, params: &[NamedTensor]) -> RResult<Vec<u8>> {
    let specs = cfg.generator_specs();
    check_state(&specs, params)?;
    let mut g = Graph::new(DType::F32);
    let mut p = HashMap::new();
    for s in &specs {
        let t = params.iter().find(|t| t.name == s.name).expect("checked");
        let id = g.constant(t.data.iter().map(|&x| x as f64).collect(), &s.shape_i64());
        p.insert(s.name.clone(), id);
    }
    let z = g.input("z", &[-1, cfg.z_dim as i64]);
    let c = cfg
        .classes
        .map(|k| g.input("class_onehot", &[-1, k as i64]));
    let (img, _) = generator(&mut g, cfg, &p, z, c, None)?;
    g.output("image", img)?;
    let mut model = crate::graph::onnx::to_model(&g, "generator");
    // Name the initializers after the parameters, for viewers and for the exporter.
    if let Some(graph) = model.graph.as_mut() {
        let renames: HashMap<String, String> = specs
            .iter()
            .map(|s| (format!("t{}", p[&s.name].0), s.name.clone()))
            .collect();
        for init in &mut graph.initializer {
            if let Some(n) = renames.get(&init.name) {
                init.name = n.clone();
            }
        }
        for node in &mut graph.node {
            for i in &mut node.input {
                if let Some(n) = renames.get(i) {
                    *i = n.clone();
                }
            }
        }
    }
    Ok(prost::Message::encode_to_vec(&model))
}
