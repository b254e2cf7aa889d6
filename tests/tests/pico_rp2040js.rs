//! End-to-end: the Pico firmware's own image booted in rp2040js (`tests/rp2040/`, Node.js) on
//! simulated time, its button pressed and released at set simulated milliseconds, the SSD1306's
//! picture captured and compared pixel for pixel with the firmware crate's app drawn on the host
//! into a one-bit `MonoFrame`. Needs `cargo xtask setup` (Node.js and the pinned rp2040js).

use anyhow::{Context, Result, ensure};
use firmware::app::Button;
use firmware::format::Model;
use firmware::noise::Choice;
use harness::board::{Variant, model_blob, root};
use harness::expected::HostApp;
use harness::rp2040::{self, CLK_SYS_HZ, Capture, Script, art, differences, host_screen};

/// The n-th press uses seed n, as the host app's [`HostApp`] does.
const SEQUENCE: &str = "sequence-seeds";
const SHORT_MS: u64 = 100;
/// Over the firmware's 600 ms threshold for a long press.
const LONG_MS: u64 = 700;
/// The bus rate `wiring.rs` sets.
const I2C_HZ: f64 = 400e3;

fn assert_screen(got: &Capture, want: &[u8]) {
    assert!(
        got.lit,
        "{}: the display is dark (off or no charge pump)",
        got.name
    );
    let diff = differences(&got.pages, want);
    if let Some(&(x, y)) = diff.first() {
        panic!(
            "{}: {} pixels differ from the host app's, first at ({x}, {y})\ngot:\n{}want:\n{}",
            got.name,
            diff.len(),
            art(&got.pages),
            art(want)
        );
    }
}

/// Boots the board with `variant`, presses short, long, short, and checks every screen against
/// the host app fed the same presses; returns the cycles each generation took and the MACs.
fn presses_match_the_host_app(variant: Variant, committed: &str) -> Result<()> {
    let elf = rp2040::elf_for(&variant)?;
    let blob = model_blob(&elf)?;
    ensure!(
        blob == std::fs::read(root().join(committed))?,
        "the firmware does not hold {committed}"
    );
    let macs = Model::from_bytes(&blob)
        .map_err(|e| anyhow::anyhow!("{}", e.as_str()))?
        .macs();
    let mut script = Script::default();
    script
        .boot()
        .press(SHORT_MS, true, "short")
        .press(LONG_MS, true, "long")
        .press(SHORT_MS, true, "short again");
    let run = rp2040::run(&elf, &script)?;

    let mut host = HostApp::new(&blob);
    assert_screen(run.capture("boot")?, &host_screen(host.app()));
    let presses: [(&str, &[Button]); 3] = [
        ("short", &[Button::Select]),
        ("long", &[Button::Right, Button::Select]),
        ("short again", &[Button::Select]),
    ];
    assert_eq!(run.lit.len(), presses.len(), "LED lit once per press");
    for ((name, buttons), lit) in presses.iter().zip(&run.lit) {
        // The app reads its clock once per button and twice around the generation.
        assert_eq!(
            lit.timer_read_count,
            buttons.len() as u64 + 2,
            "{name}: clock reads {:?}",
            lit.timer_reads
        );
        let us = lit.generation_us().context("generation time")?;
        for &b in *buttons {
            host.press(b, us);
        }
        assert_screen(run.capture(name)?, &host_screen(host.app()));
        // The timer runs on simulated time: the app's measure of the generation is the LED's
        // lit span but for the noise draw before it (about 1 ms for 2 × 64 Gaussian draws).
        let lit_us = (lit.off.ns - lit.on.ns) / 1000;
        assert!(
            u64::from(us) <= lit_us && lit_us < u64::from(us) + 2_000,
            "{name}: generation {us} µs of {lit_us} µs lit"
        );
        eprintln!(
            "{name}: {} cycles lit for {macs} MACs, {:.2} cycles per MAC, {:.1} ms at 125 MHz",
            lit.cycles(),
            lit.cycles() as f64 / f64::from(macs),
            lit.cycles() as f64 / CLK_SYS_HZ * 1e3
        );
    }
    assert_eq!(
        host.app().choice(),
        Choice::Digit(0),
        "the long press chose digit 0"
    );
    assert_eq!(host.app().shown().and_then(|g| g.class), Some(0));
    // One frame at boot and one per press, the whole screen each time.
    assert_eq!(run.frames.len(), 4, "{:?}", run.frames);
    let rate = run.i2c_hz();
    assert!((rate / I2C_HZ - 1.0).abs() < 0.01, "I²C at {rate:.0} Hz");
    eprintln!(
        "{:.1} s simulated in {:.1} s; a frame is {} bus bytes, {:.1} ms at {:.0} kHz",
        run.ns as f64 / 1e9,
        run.wall.as_secs_f64(),
        run.frames[1].bus_bytes,
        run.frames[1].bus_bits() as f64 / rate * 1e3,
        rate / 1e3
    );
    Ok(())
}

#[test]
fn the_seed_size_model_boots_and_draws_what_the_host_app_draws() -> Result<()> {
    presses_match_the_host_app(
        Variant {
            model: None,
            features: vec![SEQUENCE],
        },
        "models/pico/model.bin",
    )
}

#[test]
fn the_lm3s6965_model_boots_and_draws_what_the_host_app_draws() -> Result<()> {
    presses_match_the_host_app(
        Variant {
            model: None,
            features: vec![SEQUENCE, "lm3s6965-model"],
        },
        "models/lm3s6965/model.bin",
    )
}

#[test]
fn a_corrupt_model_shows_the_error_screen_and_presses_change_nothing() -> Result<()> {
    let mut bad = std::fs::read(root().join("models/lm3s6965/model.bin"))?;
    let middle = bad.len() / 2;
    bad[middle] ^= 0x40;
    // A stable path, rewritten only when it differs, so repeated runs reuse the build.
    let path = rp2040::board_dir().join("target/e2e/corrupt-model.bin");
    std::fs::create_dir_all(path.parent().context("parent")?)?;
    if std::fs::read(&path).ok().as_deref() != Some(&bad[..]) {
        std::fs::write(&path, &bad)?;
    }
    let elf = rp2040::elf_for(&Variant {
        model: Some(path),
        features: vec![SEQUENCE],
    })?;
    assert_eq!(
        model_blob(&elf)?,
        bad,
        "the firmware holds the corrupt blob"
    );
    let mut script = Script::default();
    script
        .boot()
        .press(SHORT_MS, false, "after a short press")
        .press(LONG_MS, false, "after a long press");
    let run = rp2040::run(&elf, &script)?;

    let host = HostApp::new(&bad);
    assert!(host.app().model().is_err());
    let want = host_screen(host.app());
    for name in ["boot", "after a short press", "after a long press"] {
        assert_screen(run.capture(name)?, &want);
    }
    // The loop still answers each press (the LED), and nothing is redrawn.
    assert_eq!(run.lit.len(), 2, "{:?}", run.leds);
    assert_eq!(run.frames.len(), 1, "{:?}", run.frames);
    Ok(())
}

#[test]
fn without_a_display_the_led_blinks_as_the_readme_says() -> Result<()> {
    // The image a user flashes: default features.
    let elf = rp2040::elf_for(&Variant::default())?;
    let mut script = Script::default();
    script.display = false;
    script.run_ms(1_600).capture("dark");
    let run = rp2040::run(&elf, &script)?;
    assert!(run.frames.is_empty());
    assert!(!run.capture("dark")?.lit);
    // 100 ms lit, 400 ms dark, again and again (the firmware retries the display in between).
    ensure!(run.lit.len() >= 3, "blinks: {:?}", run.leds);
    for (n, lit) in run.lit.iter().enumerate() {
        let on_ms = (lit.off.ns - lit.on.ns) as f64 / 1e6;
        assert!((99.9..100.1).contains(&on_ms), "blink {n}: lit {on_ms} ms");
        if let Some(next) = run.lit.get(n + 1) {
            let off_ms = (next.on.ns - lit.off.ns) as f64 / 1e6;
            assert!(
                (399.9..401.0).contains(&off_ms),
                "blink {n}: dark {off_ms} ms"
            );
        }
    }
    Ok(())
}

/// The JavaScript harness's own tests (`tests/rp2040/harness.test.js`): each way a run must fail
/// (a time limit, a ROM address or code the stand-in lacks, an unimplemented register, a BKPT,
/// a panic, a display command it does not know) does, and the display model draws as it should.
#[test]
fn the_harness_fails_loudly() -> Result<()> {
    rp2040::check_installed()?;
    let out = std::process::Command::new("node")
        .args(["--test", "harness.test.js"])
        .current_dir(rp2040::harness_dir())
        .output()
        .context("cannot run node")?;
    ensure!(
        out.status.success(),
        "node --test harness.test.js failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
