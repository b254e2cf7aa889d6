//! BatchNorm folding: in eval mode `BN(Wx + b)` is itself affine, so it can be merged into the
//! Linear layer before it and the firmware never sees a BatchNorm.
//!
//! `BN(y) = gamma * (y - mean) / sqrt(var + eps) + beta`, so with `s = gamma / sqrt(var + eps)`
//! the folded layer is `W' = diag(s) W` and `b' = s (b - mean) + beta`.

use thiserror::Error;

/// A dense layer in the trainer's layout: `y = W x + b`, `W` row-major `[out][in]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// BatchNorm1d parameters and running statistics, one entry per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    pub eps: f32,
}

#[derive(Debug, Error, PartialEq)]
pub enum FoldError {
    #[error("weight has {got} values, expected {outputs}×{inputs}")]
    WeightShape {
        got: usize,
        outputs: usize,
        inputs: usize,
    },
    #[error("{what} has {got} channels, the layer has {outputs} outputs")]
    Channels {
        what: &'static str,
        got: usize,
        outputs: usize,
    },
    #[error("channel {channel}: running variance {var} + eps is not positive")]
    Variance { channel: usize, var: f32 },
}

impl Linear {
    /// Evaluates the layer in f64 (for tests and reference checks).
    pub fn forward(&self, x: &[f32]) -> Vec<f64> {
        (0..self.outputs)
            .map(|o| {
                let row = &self.weight[o * self.inputs..(o + 1) * self.inputs];
                self.bias[o] as f64
                    + row
                        .iter()
                        .zip(x)
                        .map(|(&w, &v)| w as f64 * v as f64)
                        .sum::<f64>()
            })
            .collect()
    }

    fn check(&self) -> Result<(), FoldError> {
        if self.weight.len() != self.inputs * self.outputs {
            return Err(FoldError::WeightShape {
                got: self.weight.len(),
                outputs: self.outputs,
                inputs: self.inputs,
            });
        }
        if self.bias.len() != self.outputs {
            return Err(FoldError::Channels {
                what: "bias",
                got: self.bias.len(),
                outputs: self.outputs,
            });
        }
        Ok(())
    }
}

impl BatchNorm {
    /// Applies BatchNorm in eval mode to one vector, in f64.
    pub fn forward(&self, y: &[f64]) -> Vec<f64> {
        y.iter()
            .enumerate()
            .map(|(c, &v)| {
                let inv = 1.0 / (self.running_var[c] as f64 + self.eps as f64).sqrt();
                self.gamma[c] as f64 * (v - self.running_mean[c] as f64) * inv + self.beta[c] as f64
            })
            .collect()
    }
}

/// Folds `bn` into `linear`, returning the single equivalent Linear layer.
pub fn fold_batchnorm(linear: &Linear, bn: &BatchNorm) -> Result<Linear, FoldError> {
    linear.check()?;
    for (what, v) in [
        ("gamma", &bn.gamma),
        ("beta", &bn.beta),
        ("running_mean", &bn.running_mean),
        ("running_var", &bn.running_var),
    ] {
        if v.len() != linear.outputs {
            return Err(FoldError::Channels {
                what,
                got: v.len(),
                outputs: linear.outputs,
            });
        }
    }
    let mut out = linear.clone();
    for o in 0..linear.outputs {
        let denom = bn.running_var[o] as f64 + bn.eps as f64;
        if denom.is_nan() || denom <= 0.0 {
            return Err(FoldError::Variance {
                channel: o,
                var: bn.running_var[o],
            });
        }
        let s = bn.gamma[o] as f64 / denom.sqrt();
        for w in &mut out.weight[o * linear.inputs..(o + 1) * linear.inputs] {
            *w = (*w as f64 * s) as f32;
        }
        out.bias[o] =
            (s * (linear.bias[o] as f64 - bn.running_mean[o] as f64) + bn.beta[o] as f64) as f32;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator of test values (no RNG dependency needed).
    fn values(n: usize, seed: u32, scale: f32, offset: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                offset + scale * ((s as f32 / u32::MAX as f32) - 0.5)
            })
            .collect()
    }

    #[test]
    fn folded_layer_equals_linear_then_batchnorm() {
        let (inputs, outputs) = (13, 7);
        let linear = Linear {
            inputs,
            outputs,
            weight: values(inputs * outputs, 1, 2.0, 0.0),
            bias: values(outputs, 2, 1.0, 0.0),
        };
        let bn = BatchNorm {
            gamma: values(outputs, 3, 1.0, 1.0),
            beta: values(outputs, 4, 0.5, 0.0),
            running_mean: values(outputs, 5, 1.0, 0.0),
            running_var: values(outputs, 6, 0.5, 0.6),
            eps: 1e-5,
        };
        let folded = fold_batchnorm(&linear, &bn).unwrap();
        for seed in 10..20 {
            let x = values(inputs, seed, 3.0, 0.0);
            let want = bn.forward(&linear.forward(&x));
            let got = folded.forward(&x);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn rejects_bad_shapes_and_variances() {
        let linear = Linear {
            inputs: 2,
            outputs: 2,
            weight: vec![1.0; 4],
            bias: vec![0.0; 2],
        };
        let mut bn = BatchNorm {
            gamma: vec![1.0; 2],
            beta: vec![0.0; 2],
            running_mean: vec![0.0; 2],
            running_var: vec![1.0; 2],
            eps: 1e-5,
        };
        bn.running_var[1] = -1.0;
        assert_eq!(
            fold_batchnorm(&linear, &bn),
            Err(FoldError::Variance {
                channel: 1,
                var: -1.0
            })
        );
        bn.gamma.pop();
        assert!(matches!(
            fold_batchnorm(&linear, &bn),
            Err(FoldError::Channels { what: "gamma", .. })
        ));
        let bad = Linear {
            weight: vec![1.0; 3],
            ..linear
        };
        assert!(matches!(
            fold_batchnorm(&bad, &bn),
            Err(FoldError::WeightShape { .. })
        ));
    }
}
