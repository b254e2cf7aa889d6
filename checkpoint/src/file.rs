//! Checkpoints: named f32 tensors in safetensors plus string metadata (the run's configuration
//! as JSON, the step, RNG state), written atomically so the last good checkpoint always
//! survives a crash, a Ctrl-C or a full disk.
//!
//! The configuration lives in the safetensors metadata, so tensors and configuration cannot
//! drift apart; `config.json` beside it is a copy for people and tools.

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// File name of the tensors inside a run folder.
pub const TENSORS_FILE: &str = "checkpoint.safetensors";
/// File name of the human-readable configuration copy.
pub const CONFIG_FILE: &str = "config.json";
/// Metadata key and value naming this format; bumped on incompatible changes.
const FORMAT_KEY: &str = "format";
const FORMAT: &str = "mcugan-checkpoint/1";

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable checkpoint (corrupt or truncated): {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: not an mcugan checkpoint (format {found:?}, expected {FORMAT:?})")]
    Format {
        path: PathBuf,
        found: Option<String>,
    },
    #[error("{path}: the configuration in its metadata is not valid: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path}: metadata `{key}` is missing")]
    MissingMetadata { path: PathBuf, key: String },
    #[error("{path}: tensor `{name}` has dtype {dtype}, expected F32")]
    DType {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error("{path}: no images to draw")]
    NoImages { path: PathBuf },
    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
}

/// One f32 tensor, as a checkpoint's map holds it under its name.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A tensor with its name, as lists of them pass between the checkpoint, the trainer's state
/// and export: parameters, statistics, optimiser moments, step counts.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The contents of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    pub tensors: BTreeMap<String, Tensor>,
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// A metadata entry, or an error naming the file and key.
    pub fn meta(&self, path: &Path, key: &str) -> Result<&str, CheckpointError> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| CheckpointError::MissingMetadata {
                path: path.into(),
                key: key.into(),
            })
    }

    /// A tensor with the expected shape, or an error naming the file and tensor.
    pub fn tensor(
        &self,
        path: &Path,
        name: &str,
        shape: &[usize],
    ) -> Result<&Tensor, CheckpointError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| CheckpointError::MissingTensor {
                path: path.into(),
                name: name.into(),
            })?;
        if t.shape != shape {
            return Err(CheckpointError::Shape {
                path: path.into(),
                name: name.into(),
                expected: shape.to_vec(),
                found: t.shape.clone(),
            });
        }
        Ok(t)
    }
}

impl Checkpoint {
    /// Adds (or replaces) tensors under their names.
    pub fn insert_all(&mut self, tensors: impl IntoIterator<Item = NamedTensor>) {
        for t in tensors {
            self.tensors.insert(
                t.name,
                Tensor {
                    shape: t.shape,
                    data: t.data,
                },
            );
        }
    }

    /// The tensors `schema` names, in its order, each checked against its shape; `path` is the
    /// file they came from, for the errors.
    pub fn named_tensors(
        &self,
        path: &Path,
        schema: &[(String, Vec<usize>)],
    ) -> Result<Vec<NamedTensor>, CheckpointError> {
        schema
            .iter()
            .map(|(name, shape)| {
                let t = self.tensor(path, name, shape)?;
                Ok(NamedTensor {
                    name: name.clone(),
                    shape: t.shape.clone(),
                    data: t.data.clone(),
                })
            })
            .collect()
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder, synced before the
/// rename, so readers see either the old file or the complete new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.into(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    // Temporary files are private (0600); results are ordinary files, readable by others.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(0o644);
        tmp.as_file().set_permissions(mode).map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Saves `ck` into the run folder `dir` (tensors, then the configuration copy).
pub fn save(dir: &Path, ck: &Checkpoint) -> Result<PathBuf, CheckpointError> {
    let path = dir.join(TENSORS_FILE);
    let mut metadata = ck.metadata.clone();
    metadata.insert(FORMAT_KEY.into(), FORMAT.into());
    let bytes_of: Vec<(String, Vec<u8>, &Tensor)> = ck
        .tensors
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                t,
            )
        })
        .collect();
    let views = bytes_of
        .iter()
        .map(|(name, bytes, t)| {
            TensorView::new(Dtype::F32, t.shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| CheckpointError::Corrupt {
                    path: path.clone(),
                    reason: format!("tensor `{name}`: {e}"),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes =
        safetensors::serialize(views, Some(metadata.into_iter().collect())).map_err(|e| {
            CheckpointError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            }
        })?;
    write_atomic(&path, &bytes)?;
    if let Some(config) = ck.metadata.get("config") {
        write_atomic(&dir.join(CONFIG_FILE), config.as_bytes())?;
    }
    Ok(path)
}

/// Loads the checkpoint in the run folder `dir`, validating every tensor's size.
pub fn load(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    let path = dir.join(TENSORS_FILE);
    let bytes = std::fs::read(&path).map_err(|source| CheckpointError::Io {
        path: path.clone(),
        source,
    })?;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.clone(),
        reason,
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    let found = metadata.get(FORMAT_KEY);
    if found.map(String::as_str) != Some(FORMAT) {
        return Err(CheckpointError::Format {
            path,
            found: found.cloned(),
        });
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(CheckpointError::DType {
                path,
                name,
                dtype: format!("{:?}", view.dtype()),
            });
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(
            name,
            Tensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(Checkpoint { tensors, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let mut ck = Checkpoint::default();
        ck.tensors.insert(
            "g.w0".into(),
            Tensor {
                shape: vec![3, 2],
                data: vec![1.0, -2.5, 3.0, 0.0, f32::MIN_POSITIVE, 7.0],
            },
        );
        ck.tensors.insert(
            "step".into(),
            Tensor {
                shape: vec![1],
                data: vec![12.0],
            },
        );
        ck.metadata.insert("config".into(), r#"{"z_dim":8}"#.into());
        ck.metadata.insert("step".into(), "12".into());
        ck
    }

    #[test]
    fn round_trip_and_config_copy() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &sample()).unwrap();
        let back = load(dir.path()).unwrap();
        assert_eq!(back.tensors, sample().tensors);
        assert_eq!(back.meta(dir.path(), "step").unwrap(), "12");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap(),
            r#"{"z_dim":8}"#
        );
        assert!(back.tensor(dir.path(), "g.w0", &[3, 2]).is_ok());
        assert!(matches!(
            back.tensor(dir.path(), "g.w0", &[2, 3]),
            Err(CheckpointError::Shape { .. })
        ));
        assert!(matches!(
            back.tensor(dir.path(), "g.w9", &[1]),
            Err(CheckpointError::MissingTensor { .. })
        ));
        assert!(matches!(
            back.meta(dir.path(), "rng"),
            Err(CheckpointError::MissingMetadata { .. })
        ));
    }

    #[test]
    fn truncated_or_corrupt_files_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = save(dir.path(), &sample()).unwrap();
        let good = std::fs::read(&path).unwrap();
        for cut in [0, 7, 8, 20, good.len() / 2, good.len() - 1] {
            std::fs::write(&path, &good[..cut]).unwrap();
            let err = load(dir.path()).unwrap_err();
            assert!(
                matches!(err, CheckpointError::Corrupt { .. }),
                "cut {cut}: {err:?}"
            );
            assert!(err.to_string().contains(TENSORS_FILE));
        }
        let mut garbage = good.clone();
        garbage[10] ^= 0xFF; // inside the JSON header
        std::fs::write(&path, &garbage).unwrap();
        assert!(load(dir.path()).is_err());
    }

    #[test]
    fn a_foreign_safetensors_file_is_not_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let data = [0u8; 8];
        let view = TensorView::new(Dtype::F32, vec![2], &data).unwrap();
        let bytes = safetensors::serialize([("x", view)], None).unwrap();
        std::fs::write(dir.path().join(TENSORS_FILE), bytes).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(CheckpointError::Format { found: None, .. })
        ));
    }

    #[test]
    fn a_failed_write_keeps_the_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &sample()).unwrap();
        let mut bad = sample();
        // A tensor whose data does not match its shape cannot be serialized: nothing is written.
        bad.tensors.insert(
            "broken".into(),
            Tensor {
                shape: vec![5],
                data: vec![1.0],
            },
        );
        assert!(save(dir.path(), &bad).is_err());
        assert_eq!(load(dir.path()).unwrap().tensors, sample().tensors);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    }
}
