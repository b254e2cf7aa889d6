//! `mcugan export`: a trained run → `model.bin` for the firmware, verified against the float
//! generator.

use anyhow::Result;
use clap::Args;
use export::pipeline::{ExportOptions, Target, Weights};
use std::path::PathBuf;
use trainer::Device;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The run folder written by `mcugan train`.
    #[arg(long)]
    checkpoint: PathBuf,
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
    /// Noise vectors the verification compares on.
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// MNIST folder, for the classifier that checks labels agree.
    #[arg(long, default_value_os_t = crate::workspace_path("data/mnist"))]
    data: PathBuf,
    /// Skip the classifier's label agreement.
    #[arg(long)]
    no_classifier: bool,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let opts = ExportOptions {
        run: args.checkpoint.clone(),
        out: args.out.clone(),
        weights: args.weights,
        target: args.target,
        samples: args.samples,
    };
    let report = if args.no_classifier {
        export::pipeline::export(&opts, None)?
    } else {
        let (train, test) = trainer::eval::mnist(&args.data)?;
        let cache = crate::workspace_path(".cache/classifier");
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
