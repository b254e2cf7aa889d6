//! Scores of a generator under the project's MNIST classifier: the Fréchet distance between
//! feature distributions, the inception score, class coverage and per-class accuracy.
//!
//! Computed in f64 with nalgebra: the covariances are small (the classifier's penultimate
//! width), and the matrix square root needs a symmetric eigendecomposition.

use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// Mean and covariance of a set of feature vectors.
#[derive(Clone, Debug)]
pub struct Gaussian {
    pub mean: DVector<f64>,
    pub cov: DMatrix<f64>,
}

impl Gaussian {
    /// Fits to `n` rows of `dim` features (row-major); the covariance is the unbiased one,
    /// as in the usual FID code.
    pub fn fit(features: &[f32], dim: usize) -> Gaussian {
        assert!(
            dim > 0 && features.len().is_multiple_of(dim),
            "features are not rows of {dim}"
        );
        let n = features.len() / dim;
        assert!(n >= 2, "need at least two samples");
        let mut mean = DVector::<f64>::zeros(dim);
        for row in features.chunks_exact(dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x as f64;
            }
        }
        mean /= n as f64;
        let mut centered = DMatrix::<f64>::zeros(n, dim);
        for (r, row) in features.chunks_exact(dim).enumerate() {
            for (c, &x) in row.iter().enumerate() {
                centered[(r, c)] = x as f64 - mean[c];
            }
        }
        let cov = centered.transpose() * &centered / (n as f64 - 1.0);
        Gaussian { mean, cov }
    }
}

/// Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues
/// are clamped to zero).
fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (m + m.transpose()) * 0.5;
    let eig = SymmetricEigen::new(sym);
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&roots) * eig.eigenvectors.transpose()
}

/// The Fréchet distance `|μa − μb|² + Tr(Σa + Σb − 2 (Σa Σb)^½)`.
///
/// `Tr((Σa Σb)^½)` is computed as `Tr((Σa^½ Σb Σa^½)^½)`, which is symmetric and so stays
/// real and stable where the product itself is not.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> f64 {
    let diff = &a.mean - &b.mean;
    let ra = sqrt_psd(&a.cov);
    let inner = &ra * &b.cov * &ra;
    let eig = SymmetricEigen::new((&inner + inner.transpose()) * 0.5);
    let tr_sqrt: f64 = eig.eigenvalues.iter().map(|l| l.max(0.0).sqrt()).sum();
    (diff.dot(&diff) + a.cov.trace() + b.cov.trace() - 2.0 * tr_sqrt).max(0.0)
}

/// The inception score `exp(E[KL(p(y|x) || p(y))])` from per-sample class probabilities
/// (rows of `classes`): 1 when every sample looks alike, `classes` at best.
pub fn inception_score(probs: &[f32], classes: usize) -> f64 {
    let n = probs.len() / classes;
    let mut marginal = vec![0f64; classes];
    for row in probs.chunks_exact(classes) {
        for (m, &p) in marginal.iter_mut().zip(row) {
            *m += p as f64 / n as f64;
        }
    }
    let kl: f64 = probs
        .chunks_exact(classes)
        .map(|row| {
            row.iter()
                .zip(&marginal)
                .filter(|(p, _)| **p > 0.0)
                .map(|(&p, &m)| p as f64 * ((p as f64).ln() - m.max(1e-300).ln()))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n as f64;
    kl.exp()
}

/// How many samples were predicted as each class.
pub fn class_histogram(predicted: &[u8], classes: usize) -> Vec<usize> {
    let mut h = vec![0; classes];
    for &p in predicted {
        if (p as usize) < classes {
            h[p as usize] += 1;
        }
    }
    h
}

/// The fraction of classes that receive at least `min_share` of the samples (a uniform
/// generator gets 1.0 for any `min_share` below `1 / classes`).
pub fn class_coverage(predicted: &[u8], classes: usize, min_share: f64) -> f64 {
    let h = class_histogram(predicted, classes);
    let n = predicted.len().max(1) as f64;
    h.iter().filter(|&&c| c as f64 / n >= min_share).count() as f64 / classes as f64
}

/// For each class, the fraction of samples asked for that class that the classifier
/// recognises as it.
pub fn per_class_accuracy(intended: &[u8], predicted: &[u8], classes: usize) -> Vec<f64> {
    let mut hit = vec![0usize; classes];
    let mut total = vec![0usize; classes];
    for (&i, &p) in intended.iter().zip(predicted) {
        total[i as usize] += 1;
        hit[i as usize] += (i == p) as usize;
    }
    hit.iter()
        .zip(&total)
        .map(|(&h, &t)| {
            if t == 0 {
                f64::NAN
            } else {
                h as f64 / t as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal samples by Box–Muller, independent of the code under test.
    fn normal(n: usize, dim: usize, seed: u64, scale: &[f64], shift: &[f64]) -> Vec<f32> {
        let mut s = seed;
        (0..n * dim)
            .map(|i| {
                let (u, v) = (lcg(&mut s).max(1e-12), lcg(&mut s));
                let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                (z * scale[i % dim] + shift[i % dim]) as f32
            })
            .collect()
    }

    #[test]
    fn frechet_distance_matches_the_closed_form_for_diagonal_gaussians() {
        // For diagonal covariances the distance is Σ (μa−μb)² + (σa − σb)².
        let a = Gaussian {
            mean: DVector::from_vec(vec![0.0, 1.0, 2.0]),
            cov: DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 4.0, 0.25])),
        };
        let b = Gaussian {
            mean: DVector::from_vec(vec![1.0, 1.0, 0.0]),
            cov: DMatrix::from_diagonal(&DVector::from_vec(vec![9.0, 1.0, 0.25])),
        };
        let want = 1.0 + 0.0 + 4.0 + (1.0f64 - 3.0).powi(2) + (2.0f64 - 1.0).powi(2) + 0.0;
        assert!((frechet_distance(&a, &b) - want).abs() < 1e-9);
        assert!(frechet_distance(&a, &a).abs() < 1e-9);
    }

    #[test]
    fn frechet_distance_is_rotation_invariant_for_full_covariances() {
        // Rotating both distributions by the same orthogonal matrix keeps the distance.
        let samples = normal(4000, 3, 1, &[1.0, 2.0, 0.5], &[0.0, 0.0, 0.0]);
        let other = normal(4000, 3, 2, &[1.5, 1.0, 1.0], &[0.5, -0.5, 0.0]);
        let (c, s) = (0.6f32, 0.8f32);
        let rot = |v: &[f32]| -> Vec<f32> {
            v.chunks(3)
                .flat_map(|r| [c * r[0] - s * r[1], s * r[0] + c * r[1], r[2]])
                .collect()
        };
        let d1 = frechet_distance(&Gaussian::fit(&samples, 3), &Gaussian::fit(&other, 3));
        let d2 = frechet_distance(
            &Gaussian::fit(&rot(&samples), 3),
            &Gaussian::fit(&rot(&other), 3),
        );
        assert!((d1 - d2).abs() < 1e-6 * d1.max(1.0), "{d1} vs {d2}");
        // And it is near its population value 0.25 + 0.25 + (1.5−1)² + (1−2)² + (1−0.5)² = 2.0.
        assert!((d1 - 2.0).abs() < 0.2, "{d1}");
    }

    #[test]
    fn inception_score_bounds() {
        let one_hot: Vec<f32> = (0..100)
            .flat_map(|i| (0..10).map(move |c| (c == i % 10) as u8 as f32))
            .collect();
        assert!((inception_score(&one_hot, 10) - 10.0).abs() < 1e-9);
        let uniform = vec![0.1f32; 1000];
        assert!((inception_score(&uniform, 10) - 1.0).abs() < 1e-6);
        let collapsed: Vec<f32> = (0..100)
            .flat_map(|_| (0..10).map(|c| (c == 3) as u8 as f32))
            .collect();
        assert!((inception_score(&collapsed, 10) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn coverage_and_per_class_accuracy() {
        let predicted = [0u8, 1, 1, 2, 2, 2, 9, 9];
        assert_eq!(
            class_histogram(&predicted, 10),
            vec![1, 2, 3, 0, 0, 0, 0, 0, 0, 2]
        );
        assert!((class_coverage(&predicted, 10, 0.1) - 0.4).abs() < 1e-12);
        let intended = [0u8, 1, 2, 2, 2, 2, 9, 8];
        let acc = per_class_accuracy(&intended, &predicted, 10);
        assert_eq!(acc[0], 1.0);
        assert_eq!(acc[1], 1.0);
        assert_eq!(acc[2], 0.75);
        assert_eq!(acc[8], 0.0);
        assert!(acc[3].is_nan());
    }
}
