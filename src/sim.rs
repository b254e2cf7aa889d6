//! `mcugan sim`: the firmware's own `app` on the host, in a window (feature `window`, needs
//! SDL2: `apt-get install libsdl2-dev`, then `cargo run --features window -- sim …`) or
//! headless for scripts and tests.
//!
//! Headless output is the screen itself: a grey PNG of 128×64 pixels, level n written as n·17
//! (as QEMU's OLED screendump does), each pixel repeated `--scale` times in x and y (QEMU's
//! screendump is scale 4). `--mono` shows the one-bit screen of the SSD1306 boards instead
//! (the app's ordered dithering; pixels 0 or 255).

use anyhow::{Context, Result, bail};
use embedded_graphics::prelude::DrawTarget;
use firmware::app::{App, Button, NoClock, SeedMode, Shade};
use firmware::frame::{Frame, HEIGHT, MonoFrame, WIDTH};
use std::path::{Path, PathBuf};

/// Where the model comes from.
pub enum Source {
    File(PathBuf),
    /// A random model of the `lm3s6965` preset's shape, built on the fly.
    Random(u64),
}

/// The random model's shape: a small conditional generator that fits the LM3S6965 even at int8,
/// latent 32 + 10 classes → 32 → 64 → 128 → 192 → 784 (the default preset's before it widened).
pub fn random_blob(seed: u64) -> Result<Vec<u8>> {
    export::synth::random_model(
        seed,
        32,
        checkpoint::CLASSES,
        &[32, 64, 128, 192, checkpoint::IMAGE_DIM],
    )
    .map_err(|e| anyhow::anyhow!("random model {seed}: {e}"))
}

pub fn load(source: &Source) -> Result<Vec<u8>> {
    match source {
        Source::File(path) => {
            std::fs::read(path).with_context(|| format!("reading model {}", path.display()))
        }
        Source::Random(seed) => random_blob(*seed),
    }
}

/// Parses "select right select" into buttons.
pub fn parse_presses(script: &str) -> Result<Vec<Button>> {
    script
        .split_whitespace()
        .map(|name| {
            Button::from_name(&name.to_ascii_lowercase()).with_context(|| {
                format!("unknown button `{name}`: expected up, down, left, right or select")
            })
        })
        .collect()
}

/// A screen the simulator can write: grey (the LM3S6965's OLED) or one-bit (SSD1306).
pub trait Screen: Default {
    /// Pixel (x, y) as a PNG grey value 0–255.
    fn grey(&self, x: usize, y: usize) -> u8;
}

impl Screen for Frame {
    fn grey(&self, x: usize, y: usize) -> u8 {
        self.level(x, y) * 17
    }
}

impl Screen for MonoFrame {
    fn grey(&self, x: usize, y: usize) -> u8 {
        if self.is_on(x, y) { 255 } else { 0 }
    }
}

/// The app after the presses, with the reproducible seed sequence from `seed` and no clock (so
/// no time is shown and the result depends on nothing else).
pub fn run<'b>(blob: &'b [u8], seed: u32, presses: &[Button]) -> App<'b> {
    let mut app: App<'_> = App::new(blob, SeedMode::Sequence(seed));
    for &b in presses {
        app.handle(b, &mut NoClock);
    }
    app
}

/// What the app's screen shows, grey ([`Frame`]) or one-bit ([`MonoFrame`]).
pub fn screen<S, C>(app: &App<'_>) -> S
where
    S: Screen + DrawTarget<Color = C, Error = core::convert::Infallible>,
    C: Shade,
{
    let mut screen = S::default();
    let Ok(()) = app.render(&mut screen);
    screen
}

/// Writes the screen as a grey PNG, each pixel `scale` × `scale`.
pub fn write_png(screen: &impl Screen, scale: u32, path: &Path) -> Result<()> {
    if scale == 0 {
        bail!("--scale must be at least 1");
    }
    let image = image::GrayImage::from_fn(WIDTH as u32 * scale, HEIGHT as u32 * scale, |x, y| {
        image::Luma([screen.grey((x / scale) as usize, (y / scale) as usize)])
    });
    image
        .save(path)
        .with_context(|| format!("writing {}", path.display()))
}

/// What the app reports (seed, class, MACs), so scripts can log it.
pub fn describe(app: &App<'_>) -> String {
    match (app.model(), app.shown()) {
        (Err(e), _) => format!("model refused: {e}"),
        (Ok(m), None) => format!(
            "model: {} layers, {} MACs per image; no image yet",
            m.layers().len(),
            m.macs()
        ),
        (Ok(_), Some(g)) => format!(
            "seed {:#010x}, class {:?}, walk {}, {} MACs",
            app.seed(),
            g.class,
            app.steps(),
            g.macs
        ),
    }
}

/// The interactive window: arrow keys and Enter are the board's buttons.
#[cfg(feature = "window")]
pub fn window(blob: &[u8], seed: Option<u32>, mono: bool) -> Result<()> {
    use embedded_graphics::pixelcolor::{BinaryColor, Gray4};
    use embedded_graphics_simulator::{BinaryColorTheme, OutputSettingsBuilder};
    if mono {
        let settings = OutputSettingsBuilder::new()
            .scale(4)
            .theme(BinaryColorTheme::OledWhite)
            .build();
        window_of::<BinaryColor>(blob, seed, settings)
    } else {
        window_of::<Gray4>(blob, seed, OutputSettingsBuilder::new().scale(4).build())
    }
}

#[cfg(feature = "window")]
fn window_of<C>(
    blob: &[u8],
    seed: Option<u32>,
    settings: embedded_graphics_simulator::OutputSettings,
) -> Result<()>
where
    C: Shade
        + From<embedded_graphics::pixelcolor::BinaryColor>
        + From<embedded_graphics::pixelcolor::Rgb888>
        + Into<embedded_graphics::pixelcolor::Rgb888>,
{
    use embedded_graphics::prelude::Size;
    use embedded_graphics_simulator::{SimulatorDisplay, SimulatorEvent, Window, sdl2::Keycode};
    use firmware::app::Clock;

    struct HostClock(std::time::Instant);
    impl Clock for HostClock {
        fn micros(&mut self) -> Option<u32> {
            Some(self.0.elapsed().as_micros() as u32)
        }
    }
    let mode = match seed {
        Some(s) => SeedMode::Sequence(s),
        None => SeedMode::Entropy(std::process::id()),
    };
    let mut app: App<'_> = App::new(blob, mode);
    let mut clock = HostClock(std::time::Instant::now());
    let mut display = SimulatorDisplay::<C>::new(Size::new(WIDTH as u32, HEIGHT as u32));
    let mut window = Window::new("mcugan: arrows and Enter", &settings);
    let Ok(()) = app.render(&mut display);
    loop {
        window.update(&display);
        for event in window.events() {
            let button = match event {
                SimulatorEvent::Quit => return Ok(()),
                SimulatorEvent::KeyDown {
                    keycode,
                    repeat: false,
                    ..
                } => match keycode {
                    Keycode::Up => Button::Up,
                    Keycode::Down => Button::Down,
                    Keycode::Left => Button::Left,
                    Keycode::Right => Button::Right,
                    Keycode::Return | Keycode::KpEnter | Keycode::Space => Button::Select,
                    _ => continue,
                },
                _ => continue,
            };
            if app.handle(button, &mut clock) {
                let Ok(()) = app.render(&mut display);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(15));
    }
}

#[cfg(not(feature = "window"))]
pub fn window(_blob: &[u8], _seed: Option<u32>, _mono: bool) -> Result<()> {
    bail!(
        "this mcugan was built without the simulator window; use --headless, or install SDL2 \
         (apt-get install libsdl2-dev) and run `cargo run --release --features window -- sim …`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The app driven directly, as a board does, drawn into a grey or a one-bit frame.
    fn reference<S, C>(blob: &[u8], seed: u32, presses: &[Button]) -> S
    where
        S: Default + DrawTarget<Color = C, Error = core::convert::Infallible>,
        C: Shade,
    {
        let mut app: App<'_> = App::new(blob, SeedMode::Sequence(seed));
        for &b in presses {
            app.handle(b, &mut NoClock);
        }
        let mut f = S::default();
        let Ok(()) = app.render(&mut f);
        f
    }

    #[test]
    fn headless_png_is_the_app_framebuffer_pixel_for_pixel() {
        let blob = random_blob(3).unwrap();
        let presses = parse_presses("right right select up").unwrap();
        let expected: Frame = reference(&blob, 77, &presses);
        let dir = std::env::temp_dir().join(format!("mcugan-sim-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for scale in [1u32, 4] {
            let path = dir.join(format!("screen-{scale}.png"));
            let app = run(&blob, 77, &presses);
            write_png(&screen::<Frame, _>(&app), scale, &path).unwrap();
            let png = image::open(&path).unwrap().to_luma8();
            assert_eq!(png.dimensions(), (128 * scale, 64 * scale));
            let mut distinct = std::collections::BTreeSet::new();
            for (x, y, p) in png.enumerate_pixels() {
                let level = expected.level((x / scale) as usize, (y / scale) as usize);
                assert_eq!(p.0[0], level * 17, "pixel ({x}, {y}) at scale {scale}");
                distinct.insert(level);
            }
            assert!(distinct.len() > 4, "a real screen: {distinct:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mono_png_is_the_one_bit_framebuffer_pixel_for_pixel() {
        let blob = random_blob(3).unwrap();
        let presses = parse_presses("right select").unwrap();
        let expected: MonoFrame = reference(&blob, 5, &presses);
        let grey: Frame = reference(&blob, 5, &presses);
        let dir = std::env::temp_dir().join(format!("mcugan-sim-mono-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mono.png");
        write_png(&screen::<MonoFrame, _>(&run(&blob, 5, &presses)), 2, &path).unwrap();
        let png = image::open(&path).unwrap().to_luma8();
        assert_eq!(png.dimensions(), (256, 128));
        let (mut lit, mut differs) = (0, 0);
        for (x, y, p) in png.enumerate_pixels() {
            let (sx, sy) = ((x / 2) as usize, (y / 2) as usize);
            let on = expected.is_on(sx, sy);
            assert_eq!(p.0[0], if on { 255 } else { 0 }, "pixel ({x}, {y})");
            lit += on as u32;
            // Dithering: grey pixels are not simply "lit if not black".
            differs += (on != (grey.level(sx, sy) > 0)) as u32;
        }
        assert!(lit > 400 && differs > 100, "lit {lit}, dithered {differs}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn presses_parse_and_refuse_unknown_names() {
        assert_eq!(
            parse_presses(" select  RIGHT up").unwrap(),
            vec![Button::Select, Button::Right, Button::Up]
        );
        assert!(parse_presses("select jump").is_err());
    }

    #[test]
    fn a_bad_model_file_still_gives_a_screen() {
        let frame: Frame = screen(&run(b"not a model at all", 1, &[Button::Select]));
        assert!((0..64).any(|y| (0..128).any(|x| frame.level(x, y) == 15)));
        assert!(describe(&run(b"not a model at all", 1, &[])).contains("magic"));
    }
}
