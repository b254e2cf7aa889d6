//! The IDX loader against files written here, each corruption on its own, and against the
//! real MNIST files that `cargo xtask setup` fetches (known counts from the MNIST site).

use flate2::{Compression, write::GzEncoder};
use std::io::Write;
use std::path::{Path, PathBuf};
use trainer::data::{
    DataError, Dataset, EpochOrder, IdxArray, PIXELS, Split, fill_batch, read_idx,
    workspace_mnist_dir,
};

fn images(n: usize) -> IdxArray {
    IdxArray {
        dims: vec![n, 28, 28],
        data: (0..n * PIXELS).map(|i| (i * 7 % 256) as u8).collect(),
    }
}

fn labels(n: usize) -> IdxArray {
    IdxArray {
        dims: vec![n],
        data: (0..n).map(|i| (i % 10) as u8).collect(),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn round_trip_raw_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    let img = images(5);
    let raw = write(dir.path(), "a", &img.to_bytes());
    let gz = write(dir.path(), "a.gz", &gzip(&img.to_bytes()));
    assert_eq!(read_idx(&raw).unwrap(), img);
    assert_eq!(read_idx(&gz).unwrap(), img);
}

#[test]
fn loads_a_folder_in_either_naming_and_fashion_style_gzip() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train-images-idx3-ubyte.gz",
        &gzip(&images(12).to_bytes()),
    );
    write(
        dir.path(),
        "train-labels-idx1-ubyte.gz",
        &gzip(&labels(12).to_bytes()),
    );
    write(dir.path(), "t10k-images.idx3-ubyte", &images(3).to_bytes());
    write(dir.path(), "t10k-labels.idx1-ubyte", &labels(3).to_bytes());
    let train = Dataset::load_dir(dir.path(), Split::Train).unwrap();
    assert_eq!(train.len(), 12);
    assert_eq!(train.labels()[..4], [0, 1, 2, 3]);
    assert_eq!(train.image(1), &images(12).data[PIXELS..2 * PIXELS]);
    assert_eq!(Dataset::load_dir(dir.path(), Split::Test).unwrap().len(), 3);
    let empty = tempfile::tempdir().unwrap();
    let err = Dataset::load_dir(empty.path(), Split::Train).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err}");
    assert!(
        err.to_string().contains("train-images-idx3-ubyte.gz"),
        "{err}"
    );
}

/// Each corruption gives its own error, and the message names the file.
#[test]
fn each_corruption_has_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = images(4).to_bytes();
    let good_labels = write(dir.path(), "labels", &labels(4).to_bytes());

    let check = |name: &str, bytes: &[u8], want: fn(&DataError) -> bool| {
        let path = write(dir.path(), name, bytes);
        let err = Dataset::load_files(&path, &good_labels).unwrap_err();
        assert!(want(&err), "{name}: unexpected error {err:?}");
        assert!(
            err.to_string().contains(name),
            "{name}: message does not name the file: {err}"
        );
    };

    let mut bad_magic = good.clone();
    bad_magic[2] = 0x0D; // float elements
    check("bad-magic", &bad_magic, |e| {
        matches!(e, DataError::BadMagic { found: 0x0D03, .. })
    });
    check(
        "truncated",
        &good[..good.len() - 100],
        |e| matches!(e, DataError::Truncated { expected, actual, .. } if *expected == *actual + 100),
    );
    check("short-header", &good[..10], |e| {
        matches!(
            e,
            DataError::Truncated {
                expected: 16,
                actual: 10,
                ..
            }
        )
    });
    let mut long = good.clone();
    long.extend_from_slice(&[0; 3]);
    check("trailing", &long, |e| {
        matches!(e, DataError::TrailingData { extra: 3, .. })
    });
    check("empty", &[], |e| matches!(e, DataError::Empty { .. }));
    let mut not_gzip = gzip(&good);
    let n = not_gzip.len();
    not_gzip.truncate(n / 2);
    check("broken.gz", &not_gzip, |e| {
        matches!(e, DataError::Gzip { .. })
    });
    let wrong_size = IdxArray {
        dims: vec![2, 32, 32],
        data: vec![0; 2 * 32 * 32],
    }
    .to_bytes();
    check("wrong-size", &wrong_size, |e| {
        matches!(
            e,
            DataError::ImageSize {
                rows: 32,
                cols: 32,
                ..
            }
        )
    });
    let flat = IdxArray {
        dims: vec![4 * PIXELS],
        data: vec![0; 4 * PIXELS],
    }
    .to_bytes();
    check("rank", &flat, |e| {
        matches!(
            e,
            DataError::Rank {
                found: 1,
                expected: 3,
                ..
            }
        )
    });
    check("count", &images(5).to_bytes(), |e| {
        matches!(
            e,
            DataError::CountMismatch {
                n_images: 5,
                n_labels: 4,
                ..
            }
        )
    });

    let img = write(dir.path(), "images", &good);
    let mut bad_labels = labels(4);
    bad_labels.data[2] = 10;
    let bad = write(dir.path(), "label-range", &bad_labels.to_bytes());
    let err = Dataset::load_files(&img, &bad).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelRange {
                index: 2,
                label: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("label-range"));
}

#[test]
fn epoch_order_visits_every_index_once_and_depends_on_seed_and_epoch() {
    let a = EpochOrder::new(1000, 7, 0);
    let mut seen = a.indices().to_vec();
    seen.sort_unstable();
    assert_eq!(seen, (0..1000).collect::<Vec<u32>>());
    assert_eq!(a.indices(), EpochOrder::new(1000, 7, 0).indices());
    assert_ne!(a.indices(), EpochOrder::new(1000, 8, 0).indices());
    assert_ne!(a.indices(), EpochOrder::new(1000, 7, 1).indices());

    let all: Vec<u32> = a.batches(128, false).flatten().copied().collect();
    assert_eq!(all, a.indices());
    assert_eq!(a.batches(128, false).count(), 8);
    assert_eq!(a.batches(128, true).count(), 7);
    // One at a time from an offset: the same batches, and none where fewer remain.
    assert_eq!(a.batch_from(256, 128), a.batches(128, true).nth(2));
    assert_eq!(a.batch_from(896, 128), None);
    assert_eq!(a.batch_from(872, 128).map(<[u32]>::len), Some(128));
    assert!(a.batches(128, true).all(|b| b.len() == 128));
}

#[test]
fn fill_batch_scales_pixels_and_copies_labels() {
    let data = Dataset::from_parts(images(6).data, labels(6).data).unwrap();
    let idx = [4u32, 1];
    let mut px = vec![0f32; 2 * PIXELS];
    let mut lb = [0u8; 2];
    fill_batch(&data, &idx, &mut px, &mut lb);
    assert_eq!(lb, [4, 1]);
    for (p, &s) in px[..PIXELS].iter().zip(data.image(4)) {
        assert_eq!(*p, s as f32 / 255.0);
    }
    assert!(px.iter().all(|p| (0.0..=1.0).contains(p)));
}

/// The real files: sizes and per-class counts as published with MNIST.
#[test]
fn real_mnist_has_the_published_counts() {
    let dir = workspace_mnist_dir();
    let train = Dataset::load_dir(&dir, Split::Train)
        .unwrap_or_else(|e| panic!("MNIST is missing: run `cargo xtask setup` ({e})"));
    let test = Dataset::load_dir(&dir, Split::Test).unwrap();
    assert_eq!(train.len(), 60_000);
    assert_eq!(test.len(), 10_000);
    assert_eq!(
        train.class_counts(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        test.class_counts(),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(train.labels()[..5], [5, 0, 4, 1, 9]);
    assert_eq!(test.labels()[..3], [7, 2, 1]);
}

/// MNIST's training-set class counts, labels in a scrambled order.
fn mnist_like_labels() -> Vec<u8> {
    let counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
    let mut labels: Vec<u8> = (0..10u8)
        .flat_map(|c| std::iter::repeat_n(c, counts[c as usize]))
        .collect();
    // A fixed scramble (a multiplicative permutation of 0..60000).
    let n = labels.len();
    let sorted = labels.clone();
    for (i, l) in labels.iter_mut().enumerate() {
        *l = sorted[(i * 7919) % n];
    }
    labels
}

/// The largest gap, over every batch and class, between a class's count in the batch and its
/// share of the data.
fn worst_batch_imbalance(order: &EpochOrder, labels: &[u8], batch: usize) -> f64 {
    let mut share = [0.0; 10];
    for &l in labels {
        share[l as usize] += batch as f64 / labels.len() as f64;
    }
    let mut worst: f64 = 0.0;
    for b in order.batches(batch, true) {
        let mut count = [0.0; 10];
        for &i in b {
            count[labels[i as usize] as usize] += 1.0;
        }
        for c in 0..10 {
            worst = worst.max((count[c] - share[c]).abs());
        }
    }
    worst
}

#[test]
fn balanced_order_holds_each_class_in_its_share_of_every_batch() {
    let labels = mnist_like_labels();
    let a = EpochOrder::balanced(&labels, 3, 0);
    let mut seen = a.indices().to_vec();
    seen.sort_unstable();
    assert_eq!(seen, (0..labels.len() as u32).collect::<Vec<u32>>());
    assert_eq!(a.indices(), EpochOrder::balanced(&labels, 3, 0).indices());
    assert_ne!(a.indices(), EpochOrder::balanced(&labels, 4, 0).indices());
    assert_ne!(a.indices(), EpochOrder::balanced(&labels, 3, 1).indices());
    for batch in [32, 64, 128] {
        let balanced = worst_batch_imbalance(&a, &labels, batch);
        assert!(
            balanced < 3.0,
            "batch {batch}: a class {balanced} off its share"
        );
        // A plain shuffle strays much further (which is why the balanced order exists).
        let plain = worst_batch_imbalance(&EpochOrder::new(labels.len(), 3, 0), &labels, batch);
        assert!(
            plain >= 5.0,
            "batch {batch}: the plain shuffle only {plain} off"
        );
    }
}
