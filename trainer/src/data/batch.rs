//! Seeded shuffling and batching. The order of an epoch depends only on (seed, epoch), so a
//! resumed run sees exactly the batches an uninterrupted one would.

use super::{Dataset, PIXELS};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The visiting order of one epoch over a dataset.
#[derive(Clone, Debug)]
pub struct EpochOrder {
    order: Vec<u32>,
}

impl EpochOrder {
    /// A permutation of `0..len` determined by `seed` and `epoch` alone.
    pub fn new(len: usize, seed: u64, epoch: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(epoch);
        let mut order: Vec<u32> = (0..len as u32).collect();
        order.shuffle(&mut rng);
        EpochOrder { order }
    }

    /// A permutation of `0..labels.len()` in which every class is spread evenly: the `k`-th
    /// of a class's `n` members (in a shuffled order) sits at `(k + u) / n` of the epoch, `u`
    /// uniform in [0, 1), so any run of consecutive items, a batch above all, holds each class
    /// in its share of the data to within three items. Determined by `seed` and `epoch` alone.
    pub fn balanced(labels: &[u8], seed: u64, epoch: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(epoch);
        let mut classes: Vec<Vec<u32>> = Vec::new();
        for (i, &l) in labels.iter().enumerate() {
            let l = l as usize;
            if classes.len() <= l {
                classes.resize_with(l + 1, Vec::new);
            }
            classes[l].push(i as u32);
        }
        let mut keyed: Vec<(f64, u32)> = Vec::with_capacity(labels.len());
        for members in &mut classes {
            members.shuffle(&mut rng);
            let n = members.len() as f64;
            for (k, &i) in members.iter().enumerate() {
                keyed.push(((k as f64 + rng.random::<f64>()) / n, i));
            }
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        EpochOrder {
            order: keyed.into_iter().map(|(_, i)| i).collect(),
        }
    }

    pub fn indices(&self) -> &[u32] {
        &self.order
    }

    /// The batches of this epoch; with `drop_last` a final short batch is skipped (GAN steps
    /// are compiled for one batch size).
    pub fn batches(&self, batch: usize, drop_last: bool) -> impl Iterator<Item = &[u32]> {
        assert!(batch > 0, "batch size must be positive");
        self.order
            .chunks(batch)
            .filter(move |c| !drop_last || c.len() == batch)
    }

    /// The `batch` indices from `offset` on, or None where fewer remain: a run whose batch
    /// changes size mid-epoch takes its batches one at a time, skipping a short last one.
    pub fn batch_from(&self, offset: usize, batch: usize) -> Option<&[u32]> {
        self.order.get(offset..offset.checked_add(batch)?)
    }
}

/// Writes the images at `indices` as f32 pixels in [0, 1] into `pixels` (row-major,
/// `indices.len() × 784`) and their labels into `labels`.
pub fn fill_batch(data: &Dataset, indices: &[u32], pixels: &mut [f32], labels: &mut [u8]) {
    assert_eq!(pixels.len(), indices.len() * PIXELS, "pixel buffer size");
    assert_eq!(labels.len(), indices.len(), "label buffer size");
    for ((&i, dst), label) in indices
        .iter()
        .zip(pixels.chunks_exact_mut(PIXELS))
        .zip(labels.iter_mut())
    {
        for (d, &s) in dst.iter_mut().zip(data.image(i as usize)) {
            *d = s as f32 / 255.0;
        }
        *label = data.label(i as usize);
    }
}
