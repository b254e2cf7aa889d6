//! Training data: IDX files (MNIST, Fashion-MNIST), validated on load, shuffled and batched.

mod batch;
mod idx;

pub use batch::{EpochOrder, fill_batch};
pub use idx::{IdxArray, read_idx};

use std::path::{Path, PathBuf};

/// The MNIST folder `cargo xtask setup` fills: `MCUGAN_MNIST_DIR` when set, else
/// `checkpoint::workspace::MNIST` in the workspace found at run time.
pub fn default_mnist_dir() -> Result<PathBuf, checkpoint::workspace::WorkspaceError> {
    match std::env::var_os("MCUGAN_MNIST_DIR") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => checkpoint::workspace::path(
            checkpoint::workspace::MNIST,
            "the default MNIST folder (or name it: --data, or --dir for `mcugan data`)",
        ),
    }
}

/// [`default_mnist_dir`] for tests and benchmarks, which always run inside the workspace.
pub fn workspace_mnist_dir() -> PathBuf {
    default_mnist_dir().expect("tests and benchmarks run inside the workspace")
}
use thiserror::Error;

/// Everything that can be wrong with a data file; each error names the file.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: not a valid gzip stream: {source}")]
    Gzip {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: bad IDX magic number {found:#010x} (expected 0x0000080N: unsigned bytes, N dimensions)"
    )]
    BadMagic { path: PathBuf, found: u32 },
    #[error("{path}: {found} dimensions, expected {expected}")]
    Rank {
        path: PathBuf,
        found: usize,
        expected: usize,
    },
    #[error("{path}: truncated: the header promises {expected} bytes, the file has {actual}")]
    Truncated {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{path}: {extra} bytes of trailing data after the {expected} bytes the header describes"
    )]
    TrailingData {
        path: PathBuf,
        expected: u64,
        extra: u64,
    },
    #[error("{path}: images are {rows}×{cols}, expected {SIDE}×{SIDE}")]
    ImageSize {
        path: PathBuf,
        rows: usize,
        cols: usize,
    },
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        images: PathBuf,
        n_images: usize,
        labels: PathBuf,
        n_labels: usize,
    },
    #[error("{path}: label {label} at index {index} is out of range 0..=9")]
    LabelRange {
        path: PathBuf,
        index: usize,
        label: u8,
    },
    #[error("{dir}: no {what} file found (tried {tried})")]
    Missing {
        dir: PathBuf,
        what: String,
        tried: String,
    },
}

/// Which half of an MNIST-format folder to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Classes (digits, or Fashion-MNIST's garment kinds).
pub use checkpoint::CLASSES;
/// Side and pixels of an MNIST image (the run folder's constants, under this module's names).
pub use checkpoint::{IMAGE_DIM as PIXELS, IMAGE_SIDE as SIDE};

/// A validated set of 28×28 u8 images with labels in 0..=9.
#[derive(Clone, Debug)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Dataset {
    /// Builds a dataset from raw parts, checking sizes and labels (used by tests and subsets).
    pub fn from_parts(images: Vec<u8>, labels: Vec<u8>) -> Result<Self, String> {
        if images.len() != labels.len() * PIXELS {
            return Err(format!(
                "{} pixels for {} labels",
                images.len(),
                labels.len()
            ));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| **l as usize >= CLASSES)
        {
            return Err(format!("label {l} at index {i} is out of range"));
        }
        Ok(Dataset { images, labels })
    }

    /// Reads and cross-checks an images file and a labels file (raw or gzipped IDX).
    pub fn load_files(images_path: &Path, labels_path: &Path) -> Result<Self, DataError> {
        let images = read_idx(images_path)?;
        if images.dims.len() != 3 {
            return Err(DataError::Rank {
                path: images_path.into(),
                found: images.dims.len(),
                expected: 3,
            });
        }
        if images.dims[1] != SIDE || images.dims[2] != SIDE {
            return Err(DataError::ImageSize {
                path: images_path.into(),
                rows: images.dims[1],
                cols: images.dims[2],
            });
        }
        let labels = read_idx(labels_path)?;
        if labels.dims.len() != 1 {
            return Err(DataError::Rank {
                path: labels_path.into(),
                found: labels.dims.len(),
                expected: 1,
            });
        }
        if images.dims[0] != labels.dims[0] {
            return Err(DataError::CountMismatch {
                images: images_path.into(),
                n_images: images.dims[0],
                labels: labels_path.into(),
                n_labels: labels.dims[0],
            });
        }
        if let Some((index, &label)) = labels
            .data
            .iter()
            .enumerate()
            .find(|(_, l)| **l as usize >= CLASSES)
        {
            return Err(DataError::LabelRange {
                path: labels_path.into(),
                index,
                label,
            });
        }
        Ok(Dataset {
            images: images.data,
            labels: labels.data,
        })
    }

    /// Reads one split of an MNIST-format folder. Accepts the usual names with or without
    /// `.gz` (`train-images-idx3-ubyte[.gz]`) and the dotted variant (`train-images.idx3-ubyte`),
    /// so MNIST from set-up, a user's download and Debian's Fashion-MNIST all load.
    pub fn load_dir(dir: &Path, split: Split) -> Result<Self, DataError> {
        let images = find_file(dir, split.prefix(), "images", "idx3")?;
        let labels = find_file(dir, split.prefix(), "labels", "idx1")?;
        Self::load_files(&images, &labels)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i` as 784 grey levels, row-major.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * PIXELS..(i + 1) * PIXELS]
    }

    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// How many items of each class.
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The first `n` items (all of them when `n` is larger), for quick runs and tests.
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            images: self.images[..n * PIXELS].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }
}

fn find_file(dir: &Path, prefix: &str, what: &str, kind: &str) -> Result<PathBuf, DataError> {
    let stems = [
        format!("{prefix}-{what}-{kind}-ubyte"),
        format!("{prefix}-{what}.{kind}-ubyte"),
    ];
    let mut tried = Vec::new();
    for stem in &stems {
        for name in [stem.clone(), format!("{stem}.gz")] {
            let path = dir.join(&name);
            if path.is_file() {
                return Ok(path);
            }
            tried.push(name);
        }
    }
    Err(DataError::Missing {
        dir: dir.into(),
        what: format!("{prefix} {what}"),
        tried: tried.join(", "),
    })
}
