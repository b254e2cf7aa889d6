//! The `mcugan` binary itself, run as a user runs it, with bad input: each class of mistake
//! gets an error that names the flag or file and the problem, a non-zero exit, and leaves the
//! output folder as it was. An integration test of the root package (so Cargo builds the
//! binary for it), kept beside the end-to-end tests crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Asserts a failure whose message holds every one of `needles`.
    fn refused(&self, code: i32, needles: &[&str]) {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "the error should mention {needle:?}:\n{}",
                self.stderr
            );
        }
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mcugan_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcugan"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("MCUGAN_WORKSPACE")
        .env_remove("ORT_DYLIB_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the mcugan binary runs");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn mcugan(args: &[&str]) -> Outcome {
    mcugan_in(&workspace(), args, &[])
}

/// Every file under `dir` with its bytes (empty when `dir` does not exist).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.insert(path.clone(), Vec::new());
                todo.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn out_of_range_training_flags_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cases: &[(&[&str], &[&str])] = &[
        (&["--batch", "0"], &["--batch 0", "at least 2"]),
        (&["--batch", "1"], &["--batch 1", "at least 2"]),
        (&["--lr", "0"], &["--lr 0", "(0, 1]"]),
        (&["--lr-g", "0"], &["--lr-g 0", "(0, 1]"]),
        (&["--lr-d", "3"], &["--lr-d 3", "(0, 1]"]),
        (&["--lr", "NaN"], &["--lr NaN"]),
        (&["--beta1", "1"], &["--beta1 1", "[0, 1)"]),
        (&["--beta2", "-0.1"], &["--beta2 -0.1", "[0, 1)"]),
        (&["--ema", "1.5"], &["--ema 1.5", "[0, 1)"]),
        (&["--real-target", "0"], &["--real-target 0", "(0, 1]"]),
        (&["--aux-weight", "-1"], &["--aux-weight -1", "at least 0"]),
        (&["--epochs", "0"], &["--epochs 0", "at least 1"]),
        (&["--minutes", "0"], &["--minutes 0", "more than 0"]),
        (&["--minutes", "inf"], &["--minutes inf"]),
        (&["--minutes", "-2"], &["--minutes -2"]),
        (&["--z-dim", "0"], &["--z-dim 0", "at least 1"]),
        (&["--g-widths", "64,0"], &["--g-widths", "at least 1"]),
        (&["--subset", "10"], &["--subset 10", "one batch"]),
        (&["--late-batch", "1"], &["--late-batch 1", "at least 2"]),
        (
            &["--late-batch-from", "1"],
            &["--late-batch-from 1", "[0, 1)"],
        ),
        (
            &["--subset", "100", "--late-batch", "128"],
            &["--subset 100", "one batch of 128"],
        ),
    ];
    for (flags, needles) in cases {
        let mut args = vec!["train", "--no-eval", "--out", s(&out)];
        args.extend_from_slice(flags);
        let outcome = mcugan(&args);
        eprintln!("{flags:?}: {}", outcome.stderr.trim());
        outcome.refused(1, needles);
        assert!(!out.exists(), "{flags:?} created {}", out.display());
    }
    // Not a number at all: the parser's own error (exit 2), naming the flag.
    let outcome = mcugan(&["train", "--out", s(&out), "--batch", "many"]);
    outcome.refused(2, &["--batch", "many"]);
    let outcome = mcugan(&["train", "--out", s(&out), "--lr-decay", "1"]);
    outcome.refused(2, &["--lr-decay", "[0, 1)"]);
    let outcome = mcugan(&["train", "--out", s(&out), "--late-batch", "big"]);
    outcome.refused(2, &["--late-batch", "big", "`none`"]);
    assert!(!out.exists());
}

#[test]
fn a_generator_too_large_for_the_machine_is_refused_with_the_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let outcome = mcugan(&[
        "train",
        "--no-eval",
        "--out",
        s(&out),
        "--g-widths",
        "100000,100000,100000",
    ]);
    outcome.refused(1, &["needs about", "GiB", "available", "--g-widths"]);
    assert!(!out.exists());
}

#[test]
fn missing_or_damaged_data_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let data = tmp.path().join("mnist");
    let outcome = mcugan(&["train", "--no-eval", "--out", s(&out), "--data", s(&data)]);
    outcome.refused(1, &[s(&data)]);
    assert!(!out.exists());

    // A truncated gzip file where the training images belong.
    std::fs::create_dir_all(&data).unwrap();
    let real = workspace().join("data/mnist");
    for entry in std::fs::read_dir(&real).unwrap().flatten() {
        std::fs::copy(entry.path(), data.join(entry.file_name())).unwrap();
    }
    let images = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("train-images"))
        .expect("the training images");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() / 3]).unwrap();
    let outcome = mcugan(&["data", "--dir", s(&data)]);
    outcome.refused(1, &[s(&images)]);
    let outcome = mcugan(&["train", "--no-eval", "--out", s(&out), "--data", s(&data)]);
    outcome.refused(1, &[s(&images)]);
    assert!(!out.exists());
}

#[test]
fn a_damaged_run_folder_is_refused_and_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::copy(
        workspace().join("models/lm3s6965/config.json"),
        run.join("config.json"),
    )
    .unwrap();
    std::fs::write(
        run.join("checkpoint.safetensors"),
        b"\x08\0\0\0\0\0\0\0{\"a\":",
    )
    .unwrap();
    let before = snapshot(&run);

    let outcome = mcugan(&["train", "--no-eval", "--resume", "--out", s(&run)]);
    outcome.refused(1, &["checkpoint.safetensors"]);
    assert_eq!(snapshot(&run), before, "resume changed the folder");

    // Without --resume the folder holds a run, which a new one must not overwrite.
    let outcome = mcugan(&["train", "--no-eval", "--out", s(&run)]);
    outcome.refused(1, &["already holds a run", "--resume"]);
    assert_eq!(snapshot(&run), before);

    let model = tmp.path().join("model.bin");
    let outcome = mcugan(&[
        "export",
        "--checkpoint",
        s(&run),
        "--out",
        s(&model),
        "--no-classifier",
    ]);
    outcome.refused(1, &["checkpoint.safetensors"]);
    assert!(!model.exists());
    assert_eq!(snapshot(&run), before);

    // Nothing to resume in an empty folder.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let outcome = mcugan(&["train", "--no-eval", "--resume", "--out", s(&empty)]);
    outcome.refused(1, &["nothing to resume"]);
    assert!(snapshot(&empty).is_empty());
}

#[test]
fn a_damaged_blob_is_refused_by_eval_and_sim() {
    let tmp = tempfile::tempdir().unwrap();
    let mut blob = std::fs::read(workspace().join("models/lm3s6965/model.bin")).unwrap();
    let middle = blob.len() / 2;
    blob[middle] ^= 0x10;
    let bad = tmp.path().join("bad.bin");
    std::fs::write(&bad, &blob).unwrap();
    let before = snapshot(tmp.path());

    let outcome = mcugan(&["eval", "--model", s(&bad)]);
    outcome.refused(1, &[s(&bad), "CRC"]);
    assert_eq!(snapshot(tmp.path()), before, "eval wrote something");

    // sim still writes the error screen, as the board would show it, and says so.
    let screen = tmp.path().join("screen.png");
    let outcome = mcugan(&["sim", "--headless", "--model", s(&bad), "--out", s(&screen)]);
    outcome.refused(1, &["refused", "CRC"]);
    assert!(screen.is_file());

    let outcome = mcugan(&["sim", "--headless", "--press", "select jump"]);
    outcome.refused(1, &["`jump`", "select"]);
    let outcome = mcugan(&["sim", "--headless", "--scale", "100000"]);
    outcome.refused(2, &["--scale", "100000"]);
    let outcome = mcugan(&["eval", "--model", s(&bad), "--samples", "1"]);
    outcome.refused(1, &["--samples 1"]);
    let outcome = mcugan(&["export", "--checkpoint", s(tmp.path()), "--samples", "0"]);
    outcome.refused(2, &["--samples", "0"]);
}

#[test]
fn defaults_are_found_from_where_the_tool_runs_not_where_it_was_built() {
    let elsewhere = tempfile::tempdir().unwrap();
    // Outside any workspace the defaults cannot be found, and the error says how to give them.
    let outcome = mcugan_in(elsewhere.path(), &["data"], &[]);
    outcome.refused(1, &["no mcugan workspace", "MCUGAN_WORKSPACE"]);
    let outcome = mcugan_in(elsewhere.path(), &["sim", "--headless"], &[]);
    outcome.refused(1, &["no mcugan workspace", "--model"]);
    // A wrong MCUGAN_WORKSPACE is named.
    let outcome = mcugan_in(
        elsewhere.path(),
        &["data"],
        &[("MCUGAN_WORKSPACE", s(elsewhere.path()))],
    );
    outcome.refused(1, &["MCUGAN_WORKSPACE", "not an mcugan workspace"]);
    // The right one, or explicit paths, work from anywhere.
    let root = workspace();
    let outcome = mcugan_in(
        elsewhere.path(),
        &["data"],
        &[("MCUGAN_WORKSPACE", s(&root))],
    );
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(
        outcome.stdout.contains("60000 images"),
        "{}",
        outcome.stdout
    );
    let data = root.join("data/mnist");
    let outcome = mcugan_in(elsewhere.path(), &["data", "--dir", s(&data)], &[]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    // From a folder inside the workspace, the workspace is found above it.
    let outcome = mcugan_in(&root.join("firmware/src"), &["data"], &[]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
}

#[test]
fn every_flag_of_every_subcommand_has_a_help_line() {
    for sub in ["train", "eval", "export", "data", "sim"] {
        let outcome = mcugan(&["help", sub]);
        assert_eq!(outcome.code, 0, "{}", outcome.stderr);
        let mut lines = outcome.stdout.lines().peekable();
        while let Some(line) = lines.next() {
            let flag = line.trim_start();
            if !flag.starts_with("--") || flag.starts_with("--help") {
                continue;
            }
            // clap puts the help on the same line, or on the next, indented further.
            let same_line = flag.split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
            let next = lines.peek().map(|l| l.trim_start()).unwrap_or("");
            assert!(
                same_line || (!next.is_empty() && !next.starts_with('-')),
                "`mcugan {sub}`: {flag} has no help text"
            );
        }
    }
}

/// Why this machine's NVIDIA driver cannot run CUDA, as the trainer words it (`None`: it can).
fn driver_problem() -> Option<String> {
    trainer::runtime::cuda::probe_driver()
        .err()
        .map(|p| p.to_string())
}

/// A tiny run: 256 images, one epoch, small networks.
fn tiny_run<'a>(out: &'a Path, device: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--device",
        device,
        "--out",
        s(out),
        "--subset",
        "256",
        "--epochs",
        "1",
        "--g-widths",
        "16",
        "--d-widths",
        "16",
    ]
}

#[test]
fn cuda_that_cannot_be_used_is_said_once_and_the_cpu_trains() {
    let Some(problem) = driver_problem() else {
        eprintln!("skipped: this machine's driver runs CUDA");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // With the evaluation: the classifier and the GAN each open an executor.
    let outcome = mcugan(&tiny_run(&out, "cuda"));
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let said = outcome.stderr.matches("CUDA is not available").count();
    assert_eq!(said, 1, "said {said} times:\n{}", outcome.stderr);
    for needle in [
        problem.as_str(),
        "running on the CPU instead",
        "--device cuda!",
    ] {
        assert!(
            outcome.stderr.contains(needle),
            "{needle:?}:\n{}",
            outcome.stderr
        );
    }
    assert!(out.join("checkpoint.safetensors").is_file());
}

#[test]
fn cuda_bang_refuses_naming_the_driver_and_writes_nothing() {
    let Some(problem) = driver_problem() else {
        eprintln!("skipped: this machine's driver runs CUDA");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    for extra in [&["--no-eval"][..], &[]] {
        let mut args = tiny_run(&out, "cuda!");
        args.extend_from_slice(extra);
        let outcome = mcugan(&args);
        outcome.refused(
            1,
            &["CUDA is not available", &problem, "does not fall back"],
        );
        assert!(
            !outcome.stderr.contains("running on the CPU"),
            "{}",
            outcome.stderr
        );
        assert!(!out.exists(), "{extra:?} created {}", out.display());
    }
}

#[test]
fn a_workspace_without_setup_cuda_is_told_to_run_it() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(
        ws.path().join("Cargo.toml"),
        "[package]\nname = \"mcugan\"\n",
    )
    .unwrap();
    let out = ws.path().join("run");
    let data = workspace().join("data/mnist");
    let env = [("MCUGAN_WORKSPACE", s(ws.path()))];
    let cuda_dir = ws.path().join(checkpoint::workspace::ONNX_RUNTIME_CUDA_DIR);
    let mut needles = vec!["CUDA is not available", "cargo xtask setup --cuda"];
    let shown = cuda_dir.display().to_string();
    needles.push(&shown);
    let problem = driver_problem();
    if let Some(p) = &problem {
        // Every missing piece at once: the driver, then the set-up.
        needles.push(p);
    }
    let mut args = tiny_run(&out, "cuda!");
    args.extend(["--no-eval", "--data", s(&data)]);
    let outcome = mcugan_in(ws.path(), &args, &env);
    outcome.refused(1, &needles);
    if let Some(p) = &problem {
        let (d, u) = (outcome.stderr.find(p.as_str()), outcome.stderr.find(&shown));
        assert!(d < u, "the driver first:\n{}", outcome.stderr);
    }

    // Falling back, the CUDA message still comes first, then the CPU library's own (this
    // workspace has had no set-up at all).
    let mut args = tiny_run(&out, "cuda");
    args.extend(["--no-eval", "--data", s(&data)]);
    let outcome = mcugan_in(ws.path(), &args, &env);
    outcome.refused(1, &needles);
    outcome.refused(
        1,
        &[
            "running on the CPU instead",
            "ONNX Runtime library not found",
        ],
    );
    assert_eq!(outcome.stderr.matches("CUDA is not available").count(), 1);
    assert!(!out.exists());
}
