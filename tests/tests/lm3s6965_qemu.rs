//! End-to-end: the LM3S6965 firmware in QEMU, seen from the outside as a user would: the OLED
//! captured over QMP, the buttons pressed as keys, the firmware's log on stdout. Every capture
//! is compared pixel for pixel with the firmware crate's app rendered on the host.

use anyhow::{Context, Result};
use embedded_graphics::mono_font::{MonoTextStyle, ascii::FONT_6X10};
use embedded_graphics::pixelcolor::Gray4;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};
use firmware::app::Button;
use firmware::format::Model;
use harness::board::{self, Variant};
use harness::demo;
use harness::expected::HostApp;
use harness::qemu::{INSTRUCTIONS_PER_TICK, Options, Qemu, field};
use harness::screen::Screen;
use mcugan_tests::golden;

fn assert_screen(got: &Screen, want: &Screen, what: &str) {
    if let Some((x, y, g, w)) = got.first_difference(want) {
        panic!(
            "{what}: {} pixels differ, first at ({x}, {y}): got {g}, want {w}\n\
             got:\n{}want:\n{}",
            got.count_differences(want),
            got.to_hex_art(),
            want.to_hex_art()
        );
    }
}

fn ready_line(qemu: &Qemu) -> String {
    qemu.log().last().cloned().unwrap_or_default()
}

#[test]
fn boots_to_the_start_screen_with_a_valid_model() -> Result<()> {
    let elf = board::default_elf()?;
    let blob = board::model_blob(&elf)?;
    let model = Model::from_bytes(&blob).map_err(|e| anyhow::anyhow!("{}", e.as_str()))?;
    let mut qemu = Qemu::boot(&elf, Options::default())?;
    eprintln!("boot to ready: {:?}", qemu.boot_time);
    let ready = ready_line(&qemu);
    assert!(ready.contains("model=ok"), "{ready}");
    assert_eq!(field(&ready, "blob"), Some(blob.len() as u64), "{ready}");
    assert_eq!(
        field(&ready, "macs"),
        Some(u64::from(model.macs())),
        "{ready}"
    );
    assert_eq!(field(&ready, "period_ns"), Some(80), "{ready}");
    let used = field(&ready, "stack_used").context("stack_used")?;
    let capacity = field(&ready, "stack_capacity").context("stack_capacity")?;
    assert!(used > 0 && used < capacity, "{ready}");
    assert_screen(
        &qemu.capture()?,
        &HostApp::new(&blob).screen(),
        "start screen",
    );
    qemu.check_oled_errors()
}

#[test]
fn buttons_choose_generate_and_walk_as_the_host_app_does() -> Result<()> {
    let elf = board::default_elf()?;
    let blob = board::model_blob(&elf)?;
    let macs = Model::from_bytes(&blob)
        .map_err(|e| anyhow::anyhow!("{}", e.as_str()))?
        .macs();
    let mut host = HostApp::new(&blob);
    let mut qemu = Qemu::boot(&elf, Options::default())?;
    // The first press of each key is QEMU's first level change for it; the repeats go through
    // a full press and release in the debouncer. UP before any digit changes nothing.
    let script = [
        Button::Up,
        Button::Select,
        Button::Right,
        Button::Right,
        Button::Select,
        Button::Up,
        Button::Up,
        Button::Down,
        Button::Left,
        Button::Select,
    ];
    let mut frames = 0;
    for (n, button) in script.into_iter().enumerate() {
        let line = qemu.press_and_wait(button)?;
        let us = field(&line, "us").context("us")? as u32;
        let changed = host.press(button, us);
        frames += u64::from(changed);
        let what = format!("press {} ({button:?})", n + 1);
        assert_eq!(field(&line, "frame"), Some(frames), "{what}: {line}");
        assert_eq!(
            field(&line, "seed"),
            Some(u64::from(host.app().seed())),
            "{what}: {line}"
        );
        let generated = changed && matches!(button, Button::Select | Button::Up | Button::Down);
        let want_macs = if generated { u64::from(macs) } else { 0 };
        assert_eq!(field(&line, "macs"), Some(want_macs), "{what}: {line}");
        assert_screen(&qemu.capture()?, &host.screen(), &what);
    }
    assert!(host.app().shown().is_some());
    // The deepest stack use, generation included, stays within the 8 KiB that
    // `cargo xtask size` reserves for the stack on top of the statics.
    let deepest = qemu
        .log()
        .iter()
        .filter_map(|l| field(l, "stack_used"))
        .max()
        .context("stack_used")?;
    assert!(
        deepest > 0 && deepest <= 8 * 1024,
        "stack used: {deepest} B"
    );
    eprintln!("deepest stack use: {deepest} B");
    qemu.check_oled_errors()
}

#[test]
fn a_corrupt_model_shows_the_error_screen_and_the_board_keeps_running() -> Result<()> {
    let good = board::model_blob(&board::default_elf()?)?;
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x40;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("corrupt-model.bin");
    std::fs::write(&path, &bad)?;
    // A stable path, so repeated runs reuse the build: the variant is named after the path.
    let stable = board::board_dir().join("target/e2e/corrupt-model.bin");
    std::fs::create_dir_all(stable.parent().context("parent")?)?;
    std::fs::copy(&path, &stable)?;
    let elf = board::elf_for(&Variant {
        model: Some(stable),
        ..Variant::default()
    })?;
    assert_eq!(
        board::model_blob(&elf)?,
        bad,
        "the firmware holds the corrupt blob"
    );

    let mut qemu = Qemu::boot(&elf, Options::default())?;
    let ready = ready_line(&qemu);
    assert!(ready.contains("model=error"), "{ready}");
    let host = HostApp::new(&bad);
    assert!(host.app().model().is_err());
    let want = host.screen();
    assert_screen(&qemu.capture()?, &want, "error screen");
    // Buttons do nothing, and nothing crashes.
    for button in [Button::Select, Button::Right, Button::Up] {
        let line = qemu.press_and_wait(button)?;
        assert_eq!(field(&line, "frame"), Some(0), "{line}");
    }
    assert_screen(&qemu.capture()?, &want, "error screen after presses");
    assert!(!qemu.log().iter().any(|l| l.contains("panic")));
    qemu.check_oled_errors()
}

/// The board's screens after a fixed press sequence equal the committed captures in
/// `tests/expected/lm3s6965/`: unlike the comparison with the host app, this catches a change
/// in the noise, the engine or the committed model, which would move both sides. Under
/// `-icount` so that the generation time on the screen is the same on every machine.
#[test]
fn screens_after_a_fixed_press_sequence_match_the_committed_captures() -> Result<()> {
    let elf = board::default_elf()?;
    let options = Options {
        icount_shift: Some(0),
        ..Options::default()
    };
    let mut qemu = Qemu::boot(&elf, options)?;
    golden::screen("lm3s6965/0-boot.png", &qemu.capture()?)?;
    let script = [
        Button::Select,
        Button::Right,
        Button::Right,
        Button::Select,
        Button::Up,
        Button::Left,
        Button::Select,
    ];
    for (n, button) in script.into_iter().enumerate() {
        qemu.press_and_wait(button)?;
        let name = format!("lm3s6965/{}-{}.png", n + 1, button.name());
        golden::screen(&name, &qemu.capture()?)?;
    }
    qemu.check_oled_errors()
}

/// A generator trained and exported by PyTorch (`export/tests/fixtures/pytorch/trained-cond`,
/// whose import reproduces PyTorch's own pixels within 1e-7, see `export/tests/pytorch.rs`),
/// through `mcugan export --onnx` onto the board: the board draws what the host app draws
/// from the same blob, and the blob matches the file run in tract.
#[test]
fn a_generator_trained_in_pytorch_runs_on_the_board() -> Result<()> {
    use export::import::ImportOptions;
    use export::pipeline::{ExportOptions, Source, Target, Weights, export};
    let onnx = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../export/tests/fixtures/pytorch/trained-cond.onnx");
    // A stable path, so repeated runs reuse the build (the export is deterministic).
    let blob_path = board::board_dir().join("target/e2e/pytorch/model.bin");
    std::fs::create_dir_all(blob_path.parent().context("parent")?)?;
    let report = export(
        &ExportOptions {
            source: Source::Onnx(onnx, ImportOptions::default()),
            out: blob_path.clone(),
            weights: Weights::Fast,
            target: Target::Lm3s6965,
            samples: 200,
        },
        None,
    )?;
    assert!(
        report.fidelity.psnr_mean_db > 30.0,
        "integer vs the PyTorch model in tract: {:.2} dB",
        report.fidelity.psnr_mean_db
    );
    let elf = board::elf_for(&Variant {
        model: Some(blob_path.clone()),
        ..Variant::default()
    })?;
    let blob = board::model_blob(&elf)?;
    assert_eq!(
        blob,
        std::fs::read(&blob_path)?,
        "the firmware holds the blob"
    );
    let mut host = HostApp::new(&blob);
    let mut qemu = Qemu::boot(&elf, Options::default())?;
    assert!(
        ready_line(&qemu).contains("model=ok"),
        "{}",
        ready_line(&qemu)
    );
    for button in [Button::Right, Button::Right, Button::Select, Button::Select] {
        let line = qemu.press_and_wait(button)?;
        let us = field(&line, "us").context("us")? as u32;
        host.press(button, us);
        assert_screen(&qemu.capture()?, &host.screen(), &format!("{button:?}"));
    }
    qemu.check_oled_errors()
}

/// Under `-icount shift=0` an instruction is 1 ns and a SysTick tick 80 ns: the instruction
/// count of a generation is fixed, its tick count only by where the first tick boundary falls.
#[test]
fn kernels_agree_and_instruction_counts_are_deterministic_under_icount() -> Result<()> {
    let elf = board::default_elf()?;
    let options = Options {
        icount_shift: Some(0),
        ..Options::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut qemu = Qemu::boot(&elf, options.clone())?;
        assert!(
            qemu.log()
                .iter()
                .any(|l| l.contains("selftest kernels_agree=true")),
            "{:?}",
            qemu.log()
        );
        let reference = qemu.selftest("Reference")?;
        let fast = qemu.selftest("Fast")?;
        let line = qemu.press_and_wait(Button::Select)?;
        let app = (
            field(&line, "gen_ticks").context("gen_ticks")?,
            field(&line, "macs").context("macs")?,
        );
        runs.push([reference, fast, app]);
        qemu.check_oled_errors()?;
    }
    for (what, (a, b)) in ["reference kernel", "fast kernel", "app generation"]
        .iter()
        .zip(runs[0].iter().zip(&runs[1]))
    {
        assert_eq!(a.1, b.1, "{what}: same MACs");
        assert!(
            a.0.abs_diff(b.0) <= 1,
            "{what}: same instructions, to one tick: {runs:?}"
        );
        let instructions = a.0 * INSTRUCTIONS_PER_TICK;
        assert!(a.1 > 0 && instructions > a.1, "{what}: {runs:?}");
        eprintln!(
            "{what}: {instructions} ± 80 instructions for {} MACs, {:.2} instructions per MAC",
            a.1,
            instructions as f64 / a.1 as f64
        );
    }
    Ok(())
}

#[test]
fn a_panic_is_shown_on_the_screen_and_ends_the_run_with_a_failure() -> Result<()> {
    let elf = board::elf_for(&Variant {
        features: vec!["panic-selftest"],
        ..Variant::default()
    })?;
    let mut qemu = Qemu::boot(&elf, Options::default())?;
    let logged = qemu.wait_for("mcugan: panic:")?;
    assert!(logged.contains("self-test: the panic screen"), "{logged}");
    // The firmware holds the screen for a second before it exits.
    qemu.wait_for("mcugan: panic screen shown")?;
    let got = qemu.capture()?;
    let mut want = Screen::blank();
    let title = MonoTextStyle::new(&FONT_6X10, Gray4::WHITE);
    let body = MonoTextStyle::new(&FONT_6X10, Gray4::new(12));
    Text::with_baseline("PANIC", Point::zero(), title, Baseline::Top).draw(&mut want)?;
    // The message, wrapped at 21 characters: "self-test: the panic " / "screen @main.rs:…".
    Text::with_baseline(
        "self-test: the panic ",
        Point::new(0, 11),
        body,
        Baseline::Top,
    )
    .draw(&mut want)?;
    let top: Vec<u8> = (0..21 * 128).map(|i| got.get(i % 128, i / 128)).collect();
    let top_want: Vec<u8> = (0..21 * 128).map(|i| want.get(i % 128, i / 128)).collect();
    assert_eq!(
        top, top_want,
        "title and first line of the message\n{got:?}"
    );
    assert!(
        (21..31).any(|y| (0..128).any(|x| got.get(x, y) == 12)),
        "second line of the message\n{got:?}"
    );
    let status = qemu.wait_exit()?;
    assert_eq!(status.code(), Some(1), "semihosting exit with failure");
    qemu.check_oled_errors()
}

#[test]
fn each_digit_in_turn_matches_the_host_and_makes_a_contact_sheet() -> Result<()> {
    let elf = board::default_elf()?;
    let blob = board::model_blob(&elf)?;
    // Two samples per digit: RIGHT, then SELECT twice (two seeds of the sequence).
    let (_qemu, captures) = demo::capture_digits(&elf, Options::default(), 2)?;
    assert_eq!(captures.len(), 20);
    let mut host = HostApp::new(&blob);
    for (i, c) in captures.iter().enumerate() {
        if i % 2 == 0 {
            host.press(Button::Right, 0);
        }
        let us = field(&c.line, "us").context("us")? as u32;
        host.press(Button::Select, us);
        assert_eq!(host.app().shown().and_then(|g| g.class), Some(c.digit));
        assert_screen(&c.screen, &host.screen(), &format!("digit {}", c.digit));
    }
    let sheet = board::board_dir().join("target/e2e/digits.png");
    demo::contact_sheet(&captures, 2, 2, &sheet)?;
    let img = image::open(&sheet)?;
    assert_eq!((img.width(), img.height()), (4 + 2 * 260, 4 + 10 * 132));
    Ok(())
}
