//! `mcugan export`: a trained run, or an ONNX generator from elsewhere → `model.bin` for the
//! firmware, verified against the float generator.

use anyhow::Result;
use clap::Args;
use export::import::ImportOptions;
use export::pipeline::{ExportOptions, Source, Target, Weights};
use std::path::PathBuf;
use trainer::Device;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The run folder written by `mcugan train`.
    #[arg(long, required_unless_present = "onnx", conflicts_with = "onnx")]
    checkpoint: Option<PathBuf>,
    /// A generator trained elsewhere, as ONNX (`torch.onnx.export`, tf2onnx, …): dense layers,
    /// BatchNorm, ReLU, then Sigmoid or Tanh; noise alone, or with a one-hot or integer class.
    #[arg(long)]
    onnx: Option<PathBuf>,
    /// With --onnx and a single input: its last N entries are a one-hot class.
    #[arg(long, value_name = "N", requires = "onnx")]
    classes: Option<usize>,
    /// Where to write the model blob (the report and PNG go beside it).
    #[arg(long, default_value = "model.bin")]
    out: PathBuf,
    /// fast (int4 for the layers holding 90% of the MACs, int8 for the small ones near the
    /// noise: the firmware's fastest), int8 (closest to the float model), int4, or mixed (int4
    /// for the largest layers until the model fits the target).
    #[arg(long, default_value = "fast")]
    weights: Weights,
    /// The board whose flash budget the model must fit, or `none`.
    #[arg(long, default_value = "lm3s6965")]
    target: Target,
    /// Noise vectors the verification compares on (and four times as many calibrate), 1 to
    /// 100,000.
    #[arg(long, default_value_t = 1000, value_parser = samples_in_range)]
    samples: usize,
    /// MNIST folder, for the classifier that checks labels agree [default: data/mnist in the
    /// workspace, or MCUGAN_MNIST_DIR].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Skip the classifier's label agreement.
    #[arg(long)]
    no_classifier: bool,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let source = match (&args.checkpoint, &args.onnx) {
        (Some(dir), _) => Source::Checkpoint(dir.clone()),
        (None, Some(path)) => Source::Onnx(
            path.clone(),
            ImportOptions {
                joined_classes: args.classes,
            },
        ),
        (None, None) => unreachable!("clap requires one of --checkpoint and --onnx"),
    };
    let opts = ExportOptions {
        source,
        out: args.out.clone(),
        weights: args.weights,
        target: args.target,
        samples: args.samples,
    };
    let report = if args.no_classifier {
        export::pipeline::export(&opts, None)?
    } else {
        let (train, test) = trainer::eval::mnist(&crate::data_dir(args.data.as_deref())?)?;
        let cache = crate::workspace_path(
            checkpoint::workspace::CLASSIFIER_CACHE,
            "the classifier cache",
        )?;
        let mut scorer = trainer::eval::classifier(
            &cache,
            &train,
            &test,
            Device::Cpu,
            trainer::eval::MIN_ACCURACY,
            true,
        )?;
        let mut label =
            |images: &[f32]| -> Result<Vec<u8>> { Ok(scorer.classifier.predict(images)?) };
        export::pipeline::export(&opts, Some(&mut label))?
    };
    let f = &report.fidelity;
    println!(
        "wrote {} ({} bytes{})",
        report.model.display(),
        report.bytes,
        report
            .budget
            .map(|b| format!(" of a {b}-byte budget"))
            .unwrap_or_default()
    );
    println!(
        "  layers      {:?} as {:?}",
        report.layer_shapes, report.layer_kinds
    );
    println!("  MACs/digit  {}", report.macs);
    if let Some(r) = &report.recognised {
        println!(
            "  recognised  {} inputs {:?}, class {}, {} {}×{} output ({:?}); float import within {:.1e} of the file in tract",
            report.source.display(),
            r.layout.inputs.iter().map(|i| &i.0).collect::<Vec<_>>(),
            r.class_encoding,
            format!("{:?}", r.output).to_lowercase(),
            r.width,
            r.height,
            r.layers,
            report.import_max_abs_error.unwrap_or(0.0)
        );
    }
    println!("  integer vs float on {} samples:", f.samples);
    println!(
        "    PSNR          {:.2} dB mean, {:.2} dB worst",
        f.psnr_mean_db, f.psnr_min_db
    );
    println!(
        "    pixel error   {:.3} mean, {} max (of 255)",
        f.mean_abs_error, f.max_abs_error
    );
    if let Some(a) = f.label_agreement {
        println!("    same label    {:.2}%", a * 100.0);
    }
    Ok(())
}

fn samples_in_range(text: &str) -> Result<usize, String> {
    let n: usize = text.parse().map_err(|e| format!("{e}"))?;
    if (1..=100_000).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is not in 1..=100000"))
    }
}
