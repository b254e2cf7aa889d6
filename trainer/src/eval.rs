//! `mcugan eval`: scores a generator with the project's own MNIST classifier, trained once by
//! the same engine and cached: Fréchet distance in its penultimate feature space (beside the
//! real-vs-real distance), inception score, class coverage and per-class accuracy.

use crate::classifier::{MlpClassifier, MlpConfig};
use crate::data::{Dataset, EpochOrder, PIXELS, Split, fill_batch};
use crate::gan::GanTrainer;
use crate::metrics::{
    Gaussian, class_coverage, class_histogram, frechet_distance, inception_score,
    per_class_accuracy,
};
use crate::runtime::Device;
use anyhow::{Context, Result, bail};
use checkpoint::{CLASSES, Checkpoint};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;
use std::path::Path;

/// Samples and test images scored (the usual FID-10k).
pub const SAMPLES: usize = 10_000;
/// Images per forward pass.
const CHUNK: usize = 500;
/// The cached classifier must reach this test accuracy.
pub const MIN_ACCURACY: f64 = 0.98;
/// Most epochs spent reaching it.
const MAX_EPOCHS: u64 = 20;

/// The classifier with its measured test accuracy.
pub struct Scorer {
    pub classifier: MlpClassifier,
    pub test_accuracy: f64,
}

/// Trains the MNIST classifier (or loads it from `cache`), stopping at the first epoch whose
/// test accuracy reaches `min_accuracy`; returns it with that accuracy.
pub fn classifier(
    cache: &Path,
    train: &Dataset,
    test: &Dataset,
    device: Device,
    min_accuracy: f64,
    progress: bool,
) -> Result<Scorer> {
    let cfg = MlpConfig::mnist();
    let mut clf = MlpClassifier::new(cfg.clone(), device)?;
    if cache.join(checkpoint::TENSORS_FILE).exists() {
        let ck = checkpoint::load(cache)?;
        let schema = crate::model::schema(cfg.state_specs());
        clf.load_state(&ck.named_tensors(&cache.join(checkpoint::TENSORS_FILE), &schema)?)?;
        let acc = accuracy(&mut clf, test)?;
        if acc >= min_accuracy {
            return Ok(Scorer {
                classifier: clf,
                test_accuracy: acc,
            });
        }
        tracing::warn!(
            "{}: cached classifier has {:.2}% accuracy; retraining",
            cache.display(),
            acc * 100.0
        );
        clf = MlpClassifier::new(cfg.clone(), device)?;
    }
    let bar = if progress {
        ProgressBar::new(MAX_EPOCHS)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("classifier {bar:30} epoch {pos}/{len} {msg}")
            .expect("valid template"),
    );
    let (mut px, mut lb) = (vec![0f32; cfg.batch * PIXELS], vec![0u8; cfg.batch]);
    let mut acc = 0.0;
    for epoch in 0..MAX_EPOCHS {
        for idx in EpochOrder::new(train.len(), cfg.seed, epoch).batches(cfg.batch, true) {
            fill_batch(train, idx, &mut px, &mut lb);
            clf.train_step(&px, &lb)?;
        }
        acc = accuracy(&mut clf, test)?;
        bar.inc(1);
        bar.set_message(format!("test accuracy {:.2}%", acc * 100.0));
        if acc >= min_accuracy {
            break;
        }
    }
    bar.finish_and_clear();
    if acc < min_accuracy {
        bail!(
            "the MNIST classifier reached only {:.2}% test accuracy ({:.0}% needed)",
            acc * 100.0,
            min_accuracy * 100.0
        );
    }
    let mut ck = Checkpoint::default();
    ck.insert_all(clf.state()?);
    ck.metadata.insert("test_accuracy".into(), acc.to_string());
    checkpoint::save(cache, &ck)?;
    Ok(Scorer {
        classifier: clf,
        test_accuracy: acc,
    })
}

/// Fraction of `data` the classifier labels correctly.
pub fn accuracy(clf: &mut MlpClassifier, data: &Dataset) -> Result<f64> {
    let (_, predicted) = features(clf, &images(data, 0..data.len()))?;
    Ok(predicted
        .iter()
        .zip(data.labels())
        .filter(|(p, l)| p == l)
        .count() as f64
        / data.len().max(1) as f64)
}

fn images(data: &Dataset, range: std::ops::Range<usize>) -> Vec<f32> {
    let idx: Vec<u32> = range.map(|i| i as u32).collect();
    let mut px = vec![0f32; idx.len() * PIXELS];
    let mut lb = vec![0u8; idx.len()];
    fill_batch(data, &idx, &mut px, &mut lb);
    px
}

/// Penultimate features and predicted labels (and class probabilities) for many images.
fn features(clf: &mut MlpClassifier, images: &[f32]) -> Result<(Vec<f32>, Vec<u8>)> {
    let (f, _, p) = features_probs(clf, images)?;
    Ok((f, p))
}

fn features_probs(
    clf: &mut MlpClassifier,
    images: &[f32],
) -> Result<(Vec<f32>, Vec<f32>, Vec<u8>)> {
    let k = clf.config().classes;
    let (mut feats, mut probs, mut preds) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in images.chunks(CHUNK * PIXELS) {
        let (f, logits) = clf.forward(chunk)?;
        feats.extend(f);
        for row in logits.chunks(k) {
            let max = row.iter().fold(f32::MIN, |a, &b| a.max(b));
            let e: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            probs.extend(e.iter().map(|v| v / sum));
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
            preds.push(best as u8);
        }
    }
    Ok((feats, probs, preds))
}

/// The reference statistics: the test set's feature distribution, and the distance of 10,000
/// training images to it (what a perfect generator would score).
pub struct RealStats {
    pub test: Gaussian,
    pub real_vs_real: f64,
}

pub fn real_stats(scorer: &mut Scorer, train: &Dataset, test: &Dataset) -> Result<RealStats> {
    let dim = scorer.classifier.config().feature_dim();
    let (ft, _) = features(
        &mut scorer.classifier,
        &images(test, 0..test.len().min(SAMPLES)),
    )?;
    let test_g = Gaussian::fit(&ft, dim);
    let (fr, _) = features(
        &mut scorer.classifier,
        &images(train, 0..train.len().min(SAMPLES)),
    )?;
    let real_vs_real = frechet_distance(&Gaussian::fit(&fr, dim), &test_g);
    Ok(RealStats {
        test: test_g,
        real_vs_real,
    })
}

/// A generator's scores.
#[derive(Clone, Debug, Serialize)]
pub struct Scores {
    pub samples: usize,
    pub fid: f64,
    pub fid_real_vs_real: f64,
    pub inception_score: f64,
    /// Share of the 10 classes that get at least 5% of the samples.
    pub class_coverage: f64,
    pub class_histogram: Vec<usize>,
    /// For a conditional generator: per class, how often the classifier sees the intended digit.
    pub per_class_accuracy: Option<Vec<f64>>,
    pub mean_class_accuracy: Option<f64>,
    pub classifier_test_accuracy: f64,
}

/// A source of samples to score: for sample indices `start..start + n`, the images `[n, 784]`
/// in [0, 1] and the class each was asked for (empty when unconditional).
pub type Sampler<'a> = dyn FnMut(usize, usize) -> Result<(Vec<f32>, Vec<u8>)> + 'a;

/// Scores `gan`'s generator on `n` samples drawn from `seed` (classes in turn when conditional).
pub fn score(
    gan: &mut GanTrainer,
    scorer: &mut Scorer,
    real: &RealStats,
    n: usize,
    seed: u64,
) -> Result<Scores> {
    let cfg = gan.config().clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sample = |start: usize, m: usize| -> Result<(Vec<f32>, Vec<u8>)> {
        let z: Vec<f32> = (0..m * cfg.z_dim)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let labels: Vec<u8> = match cfg.classes {
            Some(k) => (start..start + m).map(|i| (i % k) as u8).collect(),
            None => Vec::new(),
        };
        let images = gan.generate(&z, &labels).context("generating samples")?;
        Ok((images, labels))
    };
    score_samples(&mut sample, cfg.classes, scorer, real, n)
}

/// Scores `n` samples from `sample`, which asks for `classes` classes when conditional.
pub fn score_samples(
    sample: &mut Sampler,
    classes: Option<usize>,
    scorer: &mut Scorer,
    real: &RealStats,
    n: usize,
) -> Result<Scores> {
    if n < 2 {
        bail!("scoring needs at least 2 samples (a covariance), not {n}");
    }
    let (mut feats, mut probs, mut preds, mut intended) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut done = 0;
    while done < n {
        let m = CHUNK.min(n - done);
        let (imgs, labels) = sample(done, m)?;
        if imgs.len() != m * PIXELS || labels.len() != if classes.is_some() { m } else { 0 } {
            bail!(
                "the sampler gave {} values and {} labels for {m} samples of {PIXELS} pixels",
                imgs.len(),
                labels.len()
            );
        }
        let (f, p, pr) = features_probs(&mut scorer.classifier, &imgs)?;
        feats.extend(f);
        probs.extend(p);
        preds.extend(pr);
        intended.extend(labels);
        done += m;
    }
    let dim = scorer.classifier.config().feature_dim();
    let per_class = classes.map(|k| per_class_accuracy(&intended, &preds, k));
    Ok(Scores {
        samples: n,
        fid: frechet_distance(&Gaussian::fit(&feats, dim), &real.test),
        fid_real_vs_real: real.real_vs_real,
        inception_score: inception_score(&probs, CLASSES),
        class_coverage: class_coverage(&preds, CLASSES, 0.05),
        class_histogram: class_histogram(&preds, CLASSES),
        mean_class_accuracy: classes
            .map(|_| preds.iter().zip(&intended).filter(|(p, i)| p == i).count() as f64 / n as f64),
        per_class_accuracy: per_class,
        classifier_test_accuracy: scorer.test_accuracy,
    })
}

impl Scores {
    /// The class the generator draws worst, with its accuracy (conditional generators only).
    pub fn worst_class(&self) -> Option<(usize, f64)> {
        let per = self.per_class_accuracy.as_ref()?;
        per.iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            ("samples", self.samples.to_string()),
            ("Fréchet distance", format!("{:.3}", self.fid)),
            (
                "  real vs real (train/test)",
                format!("{:.3}", self.fid_real_vs_real),
            ),
            (
                "inception score",
                format!("{:.3} (of 10)", self.inception_score),
            ),
            (
                "class coverage (≥5% each)",
                format!("{:.0}%", self.class_coverage * 100.0),
            ),
            ("class histogram", format!("{:?}", self.class_histogram)),
        ];
        if let (Some(acc), Some(per), Some((worst, w))) = (
            self.mean_class_accuracy,
            &self.per_class_accuracy,
            self.worst_class(),
        ) {
            rows.push(("intended class recognised", format!("{:.2}%", acc * 100.0)));
            rows.push(("  worst class", format!("{worst}: {:.1}%", w * 100.0)));
            let per: Vec<String> = per
                .iter()
                .enumerate()
                .map(|(c, a)| format!("{c}:{:.1}", a * 100.0))
                .collect();
            rows.push(("  per class (%)", per.join(" ")));
        }
        rows.push((
            "classifier test accuracy",
            format!("{:.2}%", self.classifier_test_accuracy * 100.0),
        ));
        rows
    }

    /// A table for the terminal.
    pub fn table(&self) -> String {
        self.rows()
            .into_iter()
            .map(|(k, v)| format!("  {k:<28} {v}\n"))
            .collect()
    }

    /// Two evaluations side by side (e.g. the board's and the float model's), each column
    /// under its title; values too long for a column get a line each.
    pub fn beside(&self, title: &str, other: &Scores, other_title: &str) -> String {
        const COLUMN: usize = 24;
        let (a, b) = (self.rows(), other.rows());
        let mut s = format!("  {:<28} {title:<COLUMN$}   {other_title}\n", "");
        for ((k, v), (_, w)) in a.into_iter().zip(b) {
            if v.chars().count() <= COLUMN && w.chars().count() <= COLUMN {
                s.push_str(&format!("  {k:<28} {v:<COLUMN$}   {w}\n"));
            } else {
                s.push_str(&format!("  {k:<28} {title}: {v}\n"));
                s.push_str(&format!("  {:<28} {other_title}: {w}\n", ""));
            }
        }
        s
    }
}

/// Loads both MNIST splits from `dir`.
pub fn mnist(dir: &Path) -> Result<(Dataset, Dataset)> {
    Ok((
        Dataset::load_dir(dir, Split::Train)?,
        Dataset::load_dir(dir, Split::Test)?,
    ))
}
