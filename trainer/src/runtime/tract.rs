//! tract-onnx as an [`Executor`]: pure Rust and independent of ONNX Runtime, used by tests to
//! cross-check results (and for one-off evaluations in f64).

use super::{Executor, GraphHandle, NEXT, RResult, RuntimeError, check_len};
use crate::graph::{DType, Graph, onnx};
use std::collections::HashMap;
use std::sync::Arc;
use tract_onnx::prelude::*;

fn terr(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Tract(format!("{e:#}"))
}

struct TractGraph {
    name: String,
    plan: Arc<TypedRunnableModel>,
    inputs: Vec<(String, Vec<usize>)>,
    outputs: Vec<String>,
}

fn compile(graph: &Graph, name: &str) -> RResult<TractGraph> {
    let proto = onnx::to_model(graph, name);
    let model = tract_onnx::onnx()
        .model_for_proto_model(&proto)
        .map_err(terr)?;
    // tract's optimiser rewrites products by constants with f32 factors: f64 graphs (gradient
    // checks) run unoptimised to keep their precision.
    let plan = match graph.dtype {
        DType::F32 => model.into_optimized().and_then(|m| m.into_runnable()),
        DType::F64 => model.into_typed().and_then(|m| m.into_runnable()),
    }
    .map_err(terr)?;
    let inputs = graph
        .inputs()
        .into_iter()
        .map(|(n, s)| (n, s.iter().map(|&d| d.max(0) as usize).collect()))
        .collect();
    Ok(TractGraph {
        name: name.into(),
        plan,
        inputs,
        outputs: graph.outputs.iter().map(|(n, _)| n.clone()).collect(),
    })
}

/// Runs tract graphs against state held as plain vectors.
#[derive(Default)]
pub struct TractExecutor {
    graphs: Vec<TractGraph>,
    state: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl TractExecutor {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Executor for TractExecutor {
    fn load(&mut self, graph: &Graph, name: &str) -> RResult<GraphHandle> {
        self.graphs.push(compile(graph, name)?);
        Ok(GraphHandle(self.graphs.len() - 1))
    }

    fn set_state(&mut self, name: &str, shape: &[usize], data: &[f32]) -> RResult<()> {
        check_len(name, shape, data.len())?;
        self.state
            .insert(name.into(), (shape.to_vec(), data.to_vec()));
        Ok(())
    }

    fn state(&self, name: &str) -> RResult<(Vec<usize>, Vec<f32>)> {
        self.state
            .get(name)
            .cloned()
            .ok_or_else(|| RuntimeError::UnknownState(name.into()))
    }

    fn run(
        &mut self,
        graph: GraphHandle,
        feeds: &[(&str, &[f32])],
        fetch: &[&str],
    ) -> RResult<Vec<Vec<f32>>> {
        let g = &self.graphs[graph.0];
        let mut inputs = TVec::new();
        for (name, shape) in &g.inputs {
            let t = if let Some((_, data)) = feeds.iter().find(|(n, _)| n == name) {
                check_len(name, shape, data.len())?;
                Tensor::from_shape(shape, data).map_err(terr)?
            } else if let Some((s, data)) = self.state.get(name) {
                Tensor::from_shape(s, data).map_err(terr)?
            } else {
                return Err(RuntimeError::MissingInput {
                    graph: g.name.clone(),
                    input: name.clone(),
                });
            };
            inputs.push(t.into_tvalue());
        }
        let outs = g.plan.run(inputs).map_err(terr)?;
        let mut fetched: Vec<Option<Vec<f32>>> = vec![None; fetch.len()];
        let mut updates = Vec::new();
        for (name, v) in g.outputs.iter().zip(outs.iter()) {
            let data = v
                .try_as_plain_ram()
                .and_then(|p| p.as_slice::<f32>().map(|s| s.to_vec()))
                .map_err(terr)?;
            if let Some(state) = name.strip_prefix(NEXT) {
                updates.push((state.to_string(), v.shape().to_vec(), data));
            } else if let Some(i) = fetch.iter().position(|f| f == name) {
                fetched[i] = Some(data);
            }
        }
        for (name, shape, data) in updates {
            self.state.insert(name, (shape, data));
        }
        fetched
            .into_iter()
            .zip(fetch)
            .map(|(v, n)| {
                v.ok_or_else(|| RuntimeError::Usage(format!("graph has no output `{n}`")))
            })
            .collect()
    }

    fn describe(&self) -> String {
        "tract-onnx (CPU)".into()
    }
}

/// A graph compiled by tract for repeated evaluation in its own dtype (f64 for gradient
/// checks), fed and read as f64.
pub struct TractEval {
    g: TractGraph,
    dtype: DType,
}

impl TractEval {
    pub fn new(graph: &Graph) -> RResult<Self> {
        Ok(TractEval {
            g: compile(graph, "eval")?,
            dtype: graph.dtype,
        })
    }

    /// Runs with the named inputs; returns every output in declaration order.
    pub fn run(&self, inputs: &[(&str, &[f64])]) -> RResult<Vec<Vec<f64>>> {
        let mut tv = TVec::new();
        for (name, shape) in &self.g.inputs {
            let Some((_, data)) = inputs.iter().find(|(n, _)| n == name) else {
                return Err(RuntimeError::MissingInput {
                    graph: self.g.name.clone(),
                    input: name.clone(),
                });
            };
            check_len(name, shape, data.len())?;
            let t = match self.dtype {
                DType::F64 => Tensor::from_shape(shape, data),
                DType::F32 => {
                    let d: Vec<f32> = data.iter().map(|&x| x as f32).collect();
                    Tensor::from_shape(shape, &d)
                }
            }
            .map_err(terr)?;
            tv.push(t.into_tvalue());
        }
        let outs = self.g.plan.run(tv).map_err(terr)?;
        outs.iter()
            .map(|v| {
                let t = v.cast_to::<f64>().map_err(terr)?;
                t.try_as_plain_ram()
                    .and_then(|p| p.as_slice::<f64>().map(|s| s.to_vec()))
                    .map_err(terr)
            })
            .collect()
    }
}
