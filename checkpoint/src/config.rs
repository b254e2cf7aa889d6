//! What a training run is: the presets and every choice a flag can override, saved with each
//! checkpoint so a run can be resumed, compared and reproduced.

use serde::{Deserialize, Serialize};

/// Side of an MNIST image, in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Pixels per MNIST image: what the generator draws and the discriminator reads.
pub const IMAGE_DIM: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Classes of a conditional model: the digits 0–9.
pub const CLASSES: usize = 10;

/// BatchNorm's epsilon (PyTorch's BatchNorm1d default): in training, in eval mode, and when
/// export folds it into the Linear layers.
pub const BN_EPS: f64 = 1e-5;

/// The learning rates' share left at the end of a decaying schedule (Adam divides by the
/// rate, so it stays positive).
pub const LR_FLOOR: f64 = 0.01;

/// How a conditional GAN's discriminator learns the class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conditioning {
    /// The one-hot class is joined to D's input: D judges (image, class) pairs.
    #[default]
    Concat,
    /// AC-GAN: D sees the image alone and a second head classifies it (trained on real
    /// images only); G is also rewarded when D reads its sample as the intended class.
    Auxiliary,
    /// Projection discriminator (Miyato & Koyama 2018): D's logit gains the inner product of
    /// its last hidden features with a learned embedding of the class.
    Projection,
}

impl std::str::FromStr for Conditioning {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "concat" => Ok(Conditioning::Concat),
            "auxiliary" | "acgan" => Ok(Conditioning::Auxiliary),
            "projection" => Ok(Conditioning::Projection),
            _ => Err(format!(
                "unknown conditioning `{s}`: expected `projection`, `auxiliary` or `concat`"
            )),
        }
    }
}

/// A named starting point for a run's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Exactly the seed course's GAN and recipe, for comparison with the original.
    Seed,
    /// A conditional generator whose int8 export fits the LM3S6965's flash with the firmware.
    Lm3s6965,
    /// The seed's generator size (1.5 M weights, 1.5 MB at int8) for the Pico's 2 MB of flash,
    /// trained with the `lm3s6965` recipe.
    Pico,
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "seed" => Ok(Preset::Seed),
            "lm3s6965" => Ok(Preset::Lm3s6965),
            "pico" => Ok(Preset::Pico),
            _ => Err(format!(
                "unknown preset `{s}`: expected `seed`, `lm3s6965` or `pico`"
            )),
        }
    }
}

/// The whole configuration of a run. Fields that shape the model, the data or the random
/// streams must agree when a run is resumed; Adam's hyper-parameters (to fine-tune at a lower
/// rate), the stopping rule and the reporting cadence may change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub preset: Preset,
    pub z_dim: usize,
    pub conditional: bool,
    /// How D learns the class of a conditional model.
    #[serde(default)]
    pub conditioning: Conditioning,
    /// Weight of the auxiliary classification loss (AC-GAN only).
    #[serde(default = "one")]
    pub aux_weight: f64,
    /// D's target for real images (below 1: one-sided label smoothing).
    #[serde(default = "one")]
    pub real_target: f64,
    pub g_widths: Vec<usize>,
    pub d_widths: Vec<usize>,
    pub batch: usize,
    /// Batches that hold each class in its share of the data (`false`: a plain shuffle, whose
    /// batches stray from it by several images per class).
    #[serde(default)]
    pub class_balanced: bool,
    pub lr_g: f64,
    pub lr_d: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Decay of the moving average of the generator's weights that samples, evaluation and
    /// export use (0: none, they use the trained weights).
    #[serde(default)]
    pub ema: f64,
    /// From this fraction of the run on (of its epochs or its time budget, whichever ends it
    /// first), both learning rates fall linearly to [`LR_FLOOR`] of their value at its end
    /// (None: constant).
    #[serde(default)]
    pub lr_decay: Option<f64>,
    /// From [`RunConfig::late_batch_from`] of the run on, batches of this size (None: `batch`
    /// throughout): small batches buy many steps early, large ones a less noisy gradient late.
    #[serde(default)]
    pub late_batch: Option<usize>,
    /// The fraction of the run (as for `lr_decay`) where `late_batch` takes over.
    #[serde(default = "half")]
    pub late_batch_from: f64,
    pub seed: u64,
    /// Use only the first `n` training images (quick runs, tests).
    pub subset: Option<usize>,
    /// Stop after this many epochs...
    pub epochs: Option<u64>,
    /// ...or after this many seconds of training, whichever comes first.
    pub time_budget_s: Option<f64>,
    /// Write samples, the loss plot and metrics every this many epochs.
    pub sample_every: u64,
    /// Run the classifier-based evaluation every this many epochs (0: only at the end).
    pub eval_every: u64,
}

fn one() -> f64 {
    1.0
}

fn half() -> f64 {
    0.5
}

impl RunConfig {
    pub fn preset(preset: Preset) -> RunConfig {
        match preset {
            Preset::Seed => RunConfig {
                preset,
                z_dim: 64,
                conditional: false,
                conditioning: Conditioning::Concat,
                aux_weight: 1.0,
                real_target: 1.0,
                g_widths: vec![128, 256, 512, 1024],
                d_widths: vec![512, 256, 128],
                batch: 128,
                class_balanced: false,
                lr_g: 1e-5,
                lr_d: 1e-5,
                beta1: 0.9,
                beta2: 0.999,
                ema: 0.0,
                lr_decay: None,
                late_batch: None,
                late_batch_from: 0.5,
                seed: 0,
                subset: None,
                epochs: Some(100),
                time_budget_s: None,
                sample_every: 5,
                eval_every: 25,
            },
            // 309,888 generator weights: 174,164 bytes with export's default `--weights fast`
            // (int4 for the largest layers), within the 204,800 the firmware leaves the model.
            Preset::Lm3s6965 => RunConfig {
                preset,
                z_dim: 32,
                conditional: true,
                // Projection: at equal time the best Fréchet distance and no collapse; AC-GAN
                // reached similar class accuracy but collapsed to one sample per class on seed 1.
                conditioning: Conditioning::Projection,
                aux_weight: 1.0,
                real_target: 0.9,
                // At 10 minutes on 2 cores, seed 0, on the board (README, Figures): G 64-128-256-256
                // gave Fréchet distance 7.1 (40,596 steps) against 32-64-128-192's 10.0 (43,158);
                // D's share of the step is most of it, so the wider G costs few steps.
                g_widths: vec![64, 128, 256, 256],
                d_widths: vec![512, 256, 128],
                // At 3 minutes on 2 cores, seed 0, on the board (README, Figures): batch 32
                // reached 13,133 steps and Fréchet distance 10.9; 64 8,273 and 14.1; 128 5,698
                // and 18.0; 16 14,803 and 12.7 (the step's fixed costs dominate there).
                batch: 32,
                // Balanced batches (batch 64, seed 0): 18.9 against 14.1, the worst digit 97.4%
                // against 96.8%; not worth it.
                class_balanced: false,
                // Measured at 3 minutes on 2 cores, seed 0 (README, Figures): at batch 128,
                // 6e-4 falling from half-way beat 2e-4 constant (Fréchet distance 17.8 against
                // 25.2 on the board); unequal rates (either way) did worse. At batch 32, 8e-4
                // gave 10.4, 6e-4 10.9 and 4e-4 15.1.
                lr_g: 8e-4,
                lr_d: 8e-4,
                beta1: 0.5,
                beta2: 0.999,
                // Samples, evaluation and export use the average: the intended digit 91% →
                // 98%, the worst digit 68% → 93% at 3 minutes.
                ema: 0.999,
                lr_decay: Some(0.5),
                // Small batches buy steps while the rate is high; as it falls, batches of 128
                // (a less noisy gradient) took 10 minutes of seed 0 from 7.1 to 3.4 on the board.
                // From 60% rather than half-way: seed 2's intended digit after 10 minutes
                // 98.99% → 99.26%, its Fréchet distance 3.7 → 3.4 (README, Figures).
                late_batch: Some(128),
                late_batch_from: 0.6,
                seed: 0,
                subset: None,
                epochs: None,
                time_budget_s: Some(600.0),
                sample_every: 2,
                eval_every: 0,
            },
            // The seed's noise and generator widths, the lm3s6965 preset's recipe at the batch
            // its committed model was trained with (60 epochs of 128).
            Preset::Pico => RunConfig {
                preset,
                z_dim: 64,
                g_widths: vec![128, 256, 512, 1024],
                batch: 128,
                late_batch: None,
                ..RunConfig::preset(Preset::Lm3s6965)
            },
        }
    }

    /// Refuses what no run can train, naming the command-line flag, the value and the range;
    /// nothing is built or written before this passes.
    pub fn validate(&self) -> Result<(), String> {
        fn range(flag: &str, v: f64, ok: bool, allowed: &str) -> Result<(), String> {
            if ok && v.is_finite() {
                Ok(())
            } else {
                Err(format!("--{flag} {v}: must be {allowed}"))
            }
        }
        let positive = |flag: &str, v: usize| {
            if v == 0 {
                Err(format!("--{flag} 0: must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive("z-dim", self.z_dim)?;
        let batch = |flag: &str, b: usize| {
            if b < 2 {
                Err(format!(
                    "--{flag} {b}: must be at least 2 (BatchNorm needs a variance)"
                ))
            } else {
                Ok(())
            }
        };
        batch("batch", self.batch)?;
        if let Some(b) = self.late_batch {
            batch("late-batch", b)?;
        }
        for (flag, widths) in [("g-widths", &self.g_widths), ("d-widths", &self.d_widths)] {
            if widths.is_empty() || widths.contains(&0) {
                return Err(format!(
                    "--{flag} {widths:?}: needs at least one layer, every width at least 1"
                ));
            }
        }
        for (flag, v) in [("lr-g", self.lr_g), ("lr-d", self.lr_d)] {
            range(flag, v, v > 0.0 && v <= 1.0, "in (0, 1]")?;
        }
        range(
            "beta1",
            self.beta1,
            (0.0..1.0).contains(&self.beta1),
            "in [0, 1)",
        )?;
        range(
            "beta2",
            self.beta2,
            (0.0..1.0).contains(&self.beta2),
            "in [0, 1)",
        )?;
        range(
            "ema",
            self.ema,
            (0.0..1.0).contains(&self.ema),
            "in [0, 1) (0: none)",
        )?;
        range(
            "real-target",
            self.real_target,
            self.real_target > 0.0 && self.real_target <= 1.0,
            "in (0, 1]",
        )?;
        range(
            "aux-weight",
            self.aux_weight,
            self.aux_weight >= 0.0,
            "at least 0",
        )?;
        if let Some(d) = self.lr_decay {
            range(
                "lr-decay",
                d,
                (0.0..1.0).contains(&d),
                "in [0, 1) or `none`",
            )?;
        }
        if self.epochs == Some(0) {
            return Err("--epochs 0: must be at least 1".into());
        }
        if let Some(b) = self.time_budget_s {
            range("minutes", b / 60.0, b > 0.0, "more than 0")?;
        }
        range(
            "late-batch-from",
            self.late_batch_from,
            (0.0..1.0).contains(&self.late_batch_from),
            "in [0, 1)",
        )?;
        if let Some(n) = self.subset.filter(|&n| n < self.largest_batch()) {
            return Err(format!(
                "--subset {n}: fewer images than one batch of {}",
                self.largest_batch()
            ));
        }
        Ok(())
    }

    /// Images per step at `fraction` (0 to 1) of the run.
    pub fn batch_at(&self, fraction: f64) -> usize {
        match self.late_batch {
            Some(b) if fraction >= self.late_batch_from => b,
            _ => self.batch,
        }
    }

    /// The largest batch the run takes (what its memory must hold).
    pub fn largest_batch(&self) -> usize {
        self.batch.max(self.late_batch.unwrap_or(0))
    }

    /// The learning rates' multiplier at `fraction` (0 to 1) of the run, by [`RunConfig::lr_decay`].
    pub fn lr_scale(&self, fraction: f64) -> f64 {
        match self.lr_decay {
            Some(start) if fraction > start && start < 1.0 => {
                let left = ((1.0 - fraction) / (1.0 - start)).clamp(0.0, 1.0);
                LR_FLOOR + (1.0 - LR_FLOOR) * left
            }
            _ => 1.0,
        }
    }

    /// Classes of the generator's one-hot input: [`CLASSES`] when conditional, else 0.
    pub fn classes(&self) -> usize {
        if self.conditional { CLASSES } else { 0 }
    }

    /// Number of generator weights (what the int8 export stores, one byte each).
    pub fn generator_weights(&self) -> usize {
        let mut inputs = self.z_dim + self.classes();
        let mut total = 0;
        for &w in self.g_widths.iter().chain(std::iter::once(&IMAGE_DIM)) {
            total += inputs * w;
            inputs = w;
        }
        total
    }

    /// The first field that differs in a way a resumed run cannot accept, as
    /// (name, checkpoint value, requested value).
    pub fn resume_conflict(&self, requested: &RunConfig) -> Option<(&'static str, String, String)> {
        macro_rules! same {
            ($($f:ident),*) => {$(
                if self.$f != requested.$f {
                    return Some((stringify!($f), format!("{:?}", self.$f), format!("{:?}", requested.$f)));
                }
            )*};
        }
        same!(
            z_dim,
            conditional,
            conditioning,
            g_widths,
            d_widths,
            batch,
            class_balanced,
            seed,
            subset
        );
        // The averages are state tensors: a run cannot gain or lose them (their decay may change).
        if (self.ema > 0.0) != (requested.ema > 0.0) {
            return Some(("ema", self.ema.to_string(), requested.ema.to_string()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_weights_count_every_layer() {
        // (Whether the lm3s6965 preset fits its board is export's test: the blob's size.)
        assert_eq!(
            RunConfig::preset(Preset::Seed).generator_weights(),
            64 * 128 + 128 * 256 + 256 * 512 + 512 * 1024 + 1024 * 784
        );
        // The pico preset is the seed's generator plus the one-hot's ten inputs.
        assert_eq!(
            RunConfig::preset(Preset::Pico).generator_weights(),
            RunConfig::preset(Preset::Seed).generator_weights() + CLASSES * 128
        );
    }

    #[test]
    fn the_learning_rate_falls_linearly_from_the_decay_start_to_the_floor() {
        let mut cfg = RunConfig::preset(Preset::Lm3s6965);
        cfg.lr_decay = None;
        assert_eq!(cfg.lr_scale(0.9), 1.0);
        cfg.lr_decay = Some(0.5);
        for (fraction, scale) in [
            (0.0, 1.0),
            (0.5, 1.0),
            (0.75, 0.505),
            (1.0, 0.01),
            (1.2, 0.01),
        ] {
            assert!(
                (cfg.lr_scale(fraction) - scale).abs() < 1e-12,
                "at {fraction}: {} not {scale}",
                cfg.lr_scale(fraction)
            );
        }
    }

    #[test]
    fn bad_values_are_refused_naming_the_flag() {
        let good = RunConfig::preset(Preset::Lm3s6965);
        assert_eq!(good.validate(), Ok(()));
        assert_eq!(RunConfig::preset(Preset::Seed).validate(), Ok(()));
        type Spoil = fn(&mut RunConfig);
        let cases: [(&str, Spoil); 12] = [
            ("--batch 0", |c| c.batch = 0),
            ("--batch 1", |c| c.batch = 1),
            ("--z-dim 0", |c| c.z_dim = 0),
            ("--g-widths [32, 0]", |c| c.g_widths = vec![32, 0]),
            ("--d-widths []", |c| c.d_widths = vec![]),
            ("--lr-g 0", |c| c.lr_g = 0.0),
            ("--lr-d NaN", |c| c.lr_d = f64::NAN),
            ("--beta1 1", |c| c.beta1 = 1.0),
            ("--ema 1", |c| c.ema = 1.0),
            ("--real-target 0", |c| c.real_target = 0.0),
            ("--epochs 0", |c| c.epochs = Some(0)),
            ("--subset 10", |c| c.subset = Some(10)),
        ];
        for (flag, spoil) in cases {
            let mut c = good.clone();
            spoil(&mut c);
            let err = c.validate().unwrap_err();
            assert!(err.starts_with(flag), "{flag}: {err}");
        }
        let mut c = good.clone();
        c.time_budget_s = Some(-60.0);
        assert!(c.validate().unwrap_err().starts_with("--minutes -1"));
    }

    #[test]
    fn resume_conflicts_name_the_field() {
        let a = RunConfig::preset(Preset::Lm3s6965);
        let mut b = a.clone();
        b.epochs = Some(3);
        b.time_budget_s = None;
        assert_eq!(a.resume_conflict(&b), None);
        b.g_widths[0] = 33;
        assert_eq!(a.resume_conflict(&b).unwrap().0, "g_widths");
    }
}
