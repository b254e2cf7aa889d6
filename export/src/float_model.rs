//! The float generator after BatchNorm folding: Linear+ReLU layers, then a Linear layer and the
//! output function ([`Output`]). It is the reference the integer model is calibrated on and
//! compared against.

use crate::fold::Linear;

/// A folded generator: input is the noise followed (conditional models) by a one-hot class.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatGenerator {
    pub latent: usize,
    pub classes: usize,
    /// Every layer but the last is followed by ReLU; the last by [`FloatGenerator::output`].
    pub layers: Vec<Linear>,
    pub output: Output,
}

/// What turns the last layer's values into pixels; the firmware applies it through the blob's
/// 256-entry grey table, so any monotone function costs the same on the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// Pixels in [0, 1]: ours, and the course's.
    Sigmoid,
    /// Values in [−1, 1], shown as `(t + 1) / 2`: the DCGAN convention.
    Tanh,
}

impl Output {
    /// The pixel in [0, 1] for a last-layer value.
    pub fn pixel(self, logit: f32) -> f32 {
        match self {
            Output::Sigmoid => sigmoid(logit),
            Output::Tanh => (logit.tanh() + 1.0) / 2.0,
        }
    }

    /// The pixel in [0, 1] for a value of the model's own output range.
    pub fn pixel_of_output(self, value: f32) -> f32 {
        match self {
            Output::Sigmoid => value,
            Output::Tanh => (value + 1.0) / 2.0,
        }
    }

    /// Beyond this magnitude the function is within 1/255 of its limit: no int8 resolution
    /// is spent past it (sigmoid: ln 255 ≈ 5.5; tanh: atanh(1 − 2/255) ≈ 2.8).
    pub fn saturation(self) -> f64 {
        match self {
            Output::Sigmoid => 8.0,
            Output::Tanh => 4.0,
        }
    }
}

impl FloatGenerator {
    pub fn input_len(&self) -> usize {
        self.latent + self.classes
    }

    /// The network input for noise `z` and, for a conditional model, `class`.
    pub fn input(&self, z: &[f32], class: Option<usize>) -> Vec<f32> {
        let mut x = z.to_vec();
        x.resize(self.input_len(), 0.0);
        if let Some(c) = class.filter(|&c| c < self.classes) {
            x[self.latent + c] = 1.0;
        }
        x
    }

    /// Every layer's output for input `x`: post-ReLU activations, and the last layer's logits.
    pub fn activations(&self, x: &[f32]) -> Vec<Vec<f32>> {
        let mut outs = Vec::with_capacity(self.layers.len());
        let mut cur = x.to_vec();
        for (k, layer) in self.layers.iter().enumerate() {
            let mut y: Vec<f32> = layer.forward(&cur).into_iter().map(|v| v as f32).collect();
            if k + 1 < self.layers.len() {
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            outs.push(y.clone());
            cur = y;
        }
        outs
    }

    /// Pixels in [0, 1].
    pub fn image(&self, x: &[f32]) -> Vec<f32> {
        let logits = self.activations(x).pop().unwrap_or_default();
        logits.iter().map(|&l| self.output.pixel(l)).collect()
    }
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
