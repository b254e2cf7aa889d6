//! `cargo xtask bench engine`: digits per second of the integer engine (the host engine, which
//! unpacks weights into rows, and the device kernels run on the host) against tract-onnx
//! running the float generator of the same shape (MatMul/Add/Relu chain, Sigmoid), same run.
//! Shapes: the lm3s6965 preset (32 + 10 one-hot → 64 → 128 → 256 → 256 → 784, 310 K weights)
//! and the seed (64 → 128 → 256 → 512 → 1024 → 784, 1.5 M weights).

use criterion::{Criterion, criterion_group};
use export::float_model::FloatGenerator;
use export::host_engine::HostModel;
use export::synth::{quantize_random, random_generator};
use firmware::engine::{Kernel, forward};
use firmware::format::Model;
use firmware::noise::{Choice, draw, model_input};
use prost::Message;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tract_onnx::pb;
use tract_onnx::prelude::*;

struct Shape {
    name: &'static str,
    latent: usize,
    classes: usize,
    widths: &'static [usize],
}

const SHAPES: [Shape; 2] = [
    Shape {
        name: "lm3s6965",
        latent: 32,
        classes: 10,
        widths: &[64, 128, 256, 256, 784],
    },
    Shape {
        name: "seed",
        latent: 64,
        classes: 0,
        widths: &[128, 256, 512, 1024, 784],
    },
];

fn tensor_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            denotation: String::new(),
                            value: Some(Value::DimValue(d)),
                        })
                        .collect(),
                }),
            })),
        }),
        ..Default::default()
    }
}

/// The float generator as serialized ONNX (opset 17): x · Wᵀ + b, ReLU, …, Sigmoid.
fn onnx_bytes(mlp: &FloatGenerator) -> Vec<u8> {
    let (mut nodes, mut inits) = (Vec::new(), Vec::new());
    let mut x = "z".to_string();
    let node = |op: &str, ins: Vec<String>, out: &str| pb::NodeProto {
        input: ins,
        output: vec![out.into()],
        name: out.into(),
        op_type: op.into(),
        ..Default::default()
    };
    for (k, layer) in mlp.layers.iter().enumerate() {
        let (n_in, n_out, w, b) = (&layer.inputs, &layer.outputs, &layer.weight, &layer.bias);
        // MatMul wants [in, out]: transpose the row-major [out, in] weights.
        let wt: Vec<f32> = (0..n_in * n_out)
            .map(|j| w[(j % n_out) * n_in + j / n_out])
            .collect();
        inits.push(pb::TensorProto {
            name: format!("w{k}"),
            dims: vec![*n_in as i64, *n_out as i64],
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: wt,
            ..Default::default()
        });
        inits.push(pb::TensorProto {
            name: format!("b{k}"),
            dims: vec![*n_out as i64],
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: b.clone(),
            ..Default::default()
        });
        nodes.push(node("MatMul", vec![x, format!("w{k}")], &format!("m{k}")));
        nodes.push(node(
            "Add",
            vec![format!("m{k}"), format!("b{k}")],
            &format!("a{k}"),
        ));
        let last = k + 1 == mlp.layers.len();
        let (op, out) = if last {
            ("Sigmoid", "image".to_string())
        } else {
            ("Relu", format!("r{k}"))
        };
        nodes.push(node(op, vec![format!("a{k}")], &out));
        x = out;
    }
    let n_in = (mlp.latent + mlp.classes) as i64;
    let n_out = mlp.layers.last().map_or(0, |l| l.outputs) as i64;
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(pb::GraphProto {
            name: "generator".into(),
            node: nodes,
            initializer: inits,
            input: vec![tensor_info("z", &[1, n_in])],
            output: vec![tensor_info("image", &[1, n_out])],
            ..Default::default()
        }),
        ..Default::default()
    };
    model.encode_to_vec()
}

/// Runs `f` repeatedly for about `budget` and returns calls per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn engine(c: &mut Criterion) {
    let mut summary = Vec::new();
    for shape in &SHAPES {
        let mlp = random_generator(shape.latent, shape.classes, shape.widths, 1);
        let blob = quantize_random(&mlp, &[], 64)
            .expect("quantizes")
            .spec
            .to_bytes()
            .expect("valid");
        let model = Model::from_bytes(&blob).expect("decodes");
        let (mut z, mut dir) = (vec![0; shape.latent], vec![0; shape.latent]);
        let class = draw(7, shape.classes, Choice::Any, &mut z, &mut dir);
        let mut input = vec![0i8; model.input_len()];
        model_input(&model, &z, &dir, 0, class, &mut input).expect("input");
        let w = model.max_width();
        let (mut a, mut b) = (vec![0u8; w], vec![0u8; w]);
        let mut out = vec![0u8; model.pixels()];
        let mut int = |kernel| {
            forward(&model, kernel, black_box(&input), &mut a, &mut b, &mut out).expect("runs");
            for g in out.iter_mut() {
                *g = model.grey(*g);
            }
            black_box(&out);
        };
        let unpacked = HostModel::new(&model);
        let mut host_out = vec![0u8; model.pixels()];
        let mut host = || {
            unpacked
                .forward(black_box(&input), &mut host_out)
                .expect("runs");
            for g in host_out.iter_mut() {
                *g = model.grey(*g);
            }
            black_box(&host_out);
        };

        let plan = tract_onnx::onnx()
            .model_for_read(&mut onnx_bytes(&mlp).as_slice())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .expect("tract loads the generator");
        let real: Vec<f32> = input.iter().map(|&v| v as f32 * 4.0 / 127.0).collect();
        let z_tensor = Tensor::from_shape(&[1, real.len()], &real).expect("tensor");
        let float = || {
            let out = plan
                .run(tvec!(z_tensor.clone().into_tvalue()))
                .expect("tract runs");
            black_box(out);
        };

        let mut group = c.benchmark_group(format!("engine/{}", shape.name));
        group.bench_function("integer host engine", |bench| bench.iter(&mut host));
        group.bench_function("integer fast kernel", |bench| {
            bench.iter(|| int(Kernel::Fast))
        });
        group.bench_function("integer reference kernel", |bench| {
            bench.iter(|| int(Kernel::Reference))
        });
        group.bench_function("tract-onnx float", |bench| bench.iter(float));
        group.finish();

        let budget = Duration::from_secs(2);
        let host_rate = rate(budget, &mut host);
        let fast = rate(budget, || int(Kernel::Fast));
        let reference = rate(budget, || int(Kernel::Reference));
        let tract = rate(budget, float);
        summary.push((shape.name, model.macs(), host_rate, fast, reference, tract));
    }
    println!("\ndigits per second on this host (one thread, batch 1):");
    println!(
        "{:<10} {:>9} {:>10} {:>12} {:>10} {:>10} {:>13}",
        "shape", "MACs", "int host", "int device", "int ref", "tract f32", "host / tract"
    );
    for (name, macs, host, fast, reference, tract) in summary {
        println!(
            "{name:<10} {macs:>9} {host:>10.0} {fast:>12.0} {reference:>10.0} {tract:>10.0} {:>12.2}×",
            host / tract
        );
    }
}

criterion_group!(benches, engine);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
