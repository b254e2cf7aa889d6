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
    pub lr_g: f64,
    pub lr_d: f64,
    pub beta1: f64,
    pub beta2: f64,
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
                lr_g: 1e-5,
                lr_d: 1e-5,
                beta1: 0.9,
                beta2: 0.999,
                seed: 0,
                subset: None,
                epochs: Some(100),
                time_budget_s: None,
                sample_every: 5,
                eval_every: 25,
            },
            // 186,720 generator weights: 182 KiB at int8 with biases and multipliers, so the
            // firmware keeps about 70 KiB of the 256 KiB flash.
            Preset::Lm3s6965 => RunConfig {
                preset,
                z_dim: 32,
                conditional: true,
                // Projection: at equal time the best Fréchet distance and no collapse; AC-GAN
                // reached similar class accuracy but collapsed to one sample per class on seed 1.
                conditioning: Conditioning::Projection,
                aux_weight: 1.0,
                real_target: 0.9,
                g_widths: vec![32, 64, 128, 192],
                d_widths: vec![512, 256, 128],
                batch: 128,
                lr_g: 2e-4,
                lr_d: 2e-4,
                beta1: 0.5,
                beta2: 0.999,
                seed: 0,
                subset: None,
                epochs: None,
                time_budget_s: Some(600.0),
                sample_every: 2,
                eval_every: 0,
            },
            // The seed's noise and generator widths, the lm3s6965 preset's recipe.
            Preset::Pico => RunConfig {
                preset,
                z_dim: 64,
                g_widths: vec![128, 256, 512, 1024],
                ..RunConfig::preset(Preset::Lm3s6965)
            },
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
            seed,
            subset
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lm3s6965_preset_fits_its_flash_budget() {
        let cfg = RunConfig::preset(Preset::Lm3s6965);
        let channels: usize = cfg.g_widths.iter().sum::<usize>() + IMAGE_DIM;
        // int8 weights, plus i32 bias, i32 multiplier and i8 shift per channel.
        let bytes = cfg.generator_weights() + channels * 9;
        assert!(bytes <= 200 * 1024, "{bytes} bytes");
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
