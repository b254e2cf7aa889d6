//! The device's behaviour, the same on every board and in the simulator: buttons change an
//! [`App`]'s state ([`App::handle`]), and [`App::render`] draws that state, a pure function of
//! it, so a board, the simulator and the tests draw identical pixels.
//!
//! A board's loop: `let mut app = App::<1024>::new(MODEL, SeedMode::…)`, draw once, then for
//! each button release `app.handle(button, &mut clock)` and, when it returns true,
//! `app.render(&mut display)` and flush. `App<W>` holds two W-byte activation buffers (W at least
//! the model's widest layer) and about 2 KB more; put it in a static or on `main`'s stack.
//!
//! Screen (128×64): the image 2× scaled at [`DIGIT_ORIGIN`] inside a grey frame; to its right,
//! the chosen class, the class drawn, the seed, the latent walk position, and the generation
//! time when the board has a clock. A model that fails to load shows an error screen instead.

use crate::engine::{Kernel, forward};
use crate::format::{Error, MAX_CLASSES, MAX_LATENT, MAX_SIDE, Model};
use crate::noise::{Choice, SplitMix64, draw, model_input};
use core::fmt::Write;
use embedded_graphics::mono_font::{MonoTextStyle, ascii::FONT_6X10};
use embedded_graphics::pixelcolor::{BinaryColor, Gray4};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

/// The five buttons of the board (the simulator maps arrow keys and Enter to them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Button {
    Up,
    Down,
    Left,
    Right,
    Select,
}

impl Button {
    /// Every button, in the order of their names.
    pub const ALL: [Button; 5] = [
        Button::Up,
        Button::Down,
        Button::Left,
        Button::Right,
        Button::Select,
    ];

    /// The name boards log, and the simulator and tests take: `up down left right select`.
    pub const fn name(self) -> &'static str {
        match self {
            Button::Up => "up",
            Button::Down => "down",
            Button::Left => "left",
            Button::Right => "right",
            Button::Select => "select",
        }
    }

    /// The button [`Button::name`] gives `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// Microseconds since some start, if the board can tell.
pub trait Clock {
    fn micros(&mut self) -> Option<u32>;
}

/// A board (or test) without a clock: no time shown, seeds do not depend on time.
pub struct NoClock;

impl Clock for NoClock {
    fn micros(&mut self) -> Option<u32> {
        None
    }
}

/// Where seeds come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedMode {
    /// The n-th SELECT (from 0) uses seed `base + n`: reproducible, for tests and the demo.
    Sequence(u32),
    /// Each SELECT mixes the previous seed with the time since the previous button press.
    Entropy(u32),
}

/// Top-left corner of the scaled image.
pub const DIGIT_ORIGIN: Point = Point::new(4, 4);
/// Each image pixel is a SCALE × SCALE square on the screen.
pub const SCALE: u32 = 2;
const TEXT_X: i32 = 66;

/// A colour the app can draw with: a grey level 0–15 at a screen position (so a one-bit
/// display can dither by position).
pub trait Shade: PixelColor {
    fn shade(level: u8, x: i32, y: i32) -> Self;
}

impl Shade for Gray4 {
    fn shade(level: u8, _: i32, _: i32) -> Self {
        Gray4::new(level.min(15))
    }
}

/// 4×4 ordered (Bayer) dithering of the 16 levels.
impl Shade for BinaryColor {
    fn shade(level: u8, x: i32, y: i32) -> Self {
        const BAYER: [[u8; 4]; 4] = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]];
        let threshold = BAYER[(y & 3) as usize][(x & 3) as usize] as u32;
        (level as u32 * 17 > threshold * 16 + 8).into()
    }
}

/// One generated image: grey levels 0–255 from the model's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digit {
    pub width: usize,
    pub height: usize,
    grey: [u8; MAX_SIDE * MAX_SIDE],
}

impl Digit {
    /// Grey 0–255 of pixel (x, y).
    pub fn grey(&self, x: usize, y: usize) -> u8 {
        self.grey.get(y * self.width + x).copied().unwrap_or(0)
    }

    /// The 16-grey level the screen shows for pixel (x, y): round(grey · 15 / 255).
    pub fn level(&self, x: usize, y: usize) -> u8 {
        ((self.grey(x, y) as u32 * 15 + 127) / 255) as u8
    }

    /// The screen area the image covers: [`SCALE`] × [`SCALE`] points per pixel from
    /// [`DIGIT_ORIGIN`].
    pub fn area(&self) -> Rectangle {
        Rectangle::new(
            DIGIT_ORIGIN,
            Size::new(self.width as u32 * SCALE, self.height as u32 * SCALE),
        )
    }

    /// The colour the screen shows at point `p` of [`Digit::area`]: its pixel's level, shaded
    /// at `p` (so a one-bit screen dithers by position).
    pub fn shade_at<C: Shade>(&self, p: Point) -> C {
        let x = ((p.x - DIGIT_ORIGIN.x) as u32 / SCALE) as usize;
        let y = ((p.y - DIGIT_ORIGIN.y) as u32 / SCALE) as usize;
        C::shade(self.level(x, y), p.x, p.y)
    }
}

/// What one generation produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    pub digit: Digit,
    /// The class the model was given (None for an unconditional model).
    pub class: Option<u8>,
    /// Dense multiply-accumulates it took.
    pub macs: u32,
}

/// The image the app shows after SELECT with `seed` for `choice`, walked `steps` with UP/DOWN:
/// the host's way to know what a board's screen must show. `a`, `b`: activation buffers.
pub fn generate(
    model: &Model<'_>,
    seed: u32,
    choice: Choice,
    steps: i32,
    a: &mut [u8],
    b: &mut [u8],
) -> Result<Generated, Error> {
    let latent = model.header.latent as usize;
    let (mut z, mut dir) = ([0i32; MAX_LATENT], [0i32; MAX_LATENT]);
    let class = draw(
        seed,
        model.header.classes as usize,
        choice,
        z.get_mut(..latent).ok_or(Error::Input)?,
        dir.get_mut(..latent).ok_or(Error::Input)?,
    );
    generate_from(model, &z, &dir, steps, class, a, b)
}

fn generate_from(
    model: &Model<'_>,
    z: &[i32],
    dir: &[i32],
    steps: i32,
    class: Option<u8>,
    a: &mut [u8],
    b: &mut [u8],
) -> Result<Generated, Error> {
    let mut input = [0i8; MAX_LATENT + MAX_CLASSES];
    let input = input.get_mut(..model.input_len()).ok_or(Error::Input)?;
    model_input(model, z, dir, steps, class, input)?;
    let mut digit = Digit {
        width: model.header.width as usize,
        height: model.header.height as usize,
        grey: [0; MAX_SIDE * MAX_SIDE],
    };
    let out = digit.grey.get_mut(..model.pixels()).ok_or(Error::Image)?;
    let stats = forward(model, Kernel::Fast, input, a, b, out)?;
    for g in out.iter_mut() {
        *g = model.grey(*g);
    }
    Ok(Generated {
        digit,
        class,
        macs: stats.macs,
    })
}

/// The device's state; see the module doc for how a board drives it.
pub struct App<'m, const W: usize = 1024> {
    model: Result<Model<'m>, Error>,
    mode: SeedMode,
    choice: Choice,
    selects: u32,
    seed: u32,
    steps: i32,
    z: [i32; MAX_LATENT],
    dir: [i32; MAX_LATENT],
    shown: Option<Generated>,
    micros: Option<u32>,
    last_press: Option<u32>,
    a: [u8; W],
    b: [u8; W],
}

impl<'m, const W: usize> App<'m, W> {
    /// Decodes `blob`; a bad blob (or one wider than W) leaves the app on its error screen.
    pub fn new(blob: &'m [u8], mode: SeedMode) -> Self {
        let model = Model::from_bytes(blob).and_then(|m| {
            if m.max_width() <= W {
                Ok(m)
            } else {
                Err(Error::BufferTooSmall)
            }
        });
        let seed = match mode {
            SeedMode::Sequence(s) | SeedMode::Entropy(s) => s,
        };
        App {
            model,
            mode,
            choice: Choice::Any,
            selects: 0,
            seed,
            steps: 0,
            z: [0; MAX_LATENT],
            dir: [0; MAX_LATENT],
            shown: None,
            micros: None,
            last_press: None,
            a: [0; W],
            b: [0; W],
        }
    }

    /// The model, or why it was refused.
    pub fn model(&self) -> Result<&Model<'m>, Error> {
        self.model.as_ref().map_err(|e| *e)
    }

    pub fn choice(&self) -> Choice {
        self.choice
    }

    /// Seed of the image on screen (the last SELECT's).
    pub fn seed(&self) -> u32 {
        self.seed
    }

    /// UP presses minus DOWN presses since the last SELECT.
    pub fn steps(&self) -> i32 {
        self.steps
    }

    /// The image on screen, if any yet.
    pub fn shown(&self) -> Option<&Generated> {
        self.shown.as_ref()
    }

    /// Microseconds the last generation took, when the clock gives them.
    pub fn micros(&self) -> Option<u32> {
        self.micros
    }

    /// Applies one button press; returns whether the screen changed.
    pub fn handle(&mut self, button: Button, clock: &mut impl Clock) -> bool {
        let now = clock.micros();
        let since = match (now, self.last_press) {
            (Some(n), Some(l)) => n.wrapping_sub(l),
            (Some(n), None) => n,
            _ => 0,
        };
        if now.is_some() {
            self.last_press = now;
        }
        let Ok(model) = &self.model else {
            return false;
        };
        let classes = model.header.classes;
        match button {
            Button::Left | Button::Right if classes > 0 => {
                // The choices in order: any, 0, 1, …, classes − 1, wrapping around.
                let n = classes as i32 + 1;
                let index = match self.choice {
                    Choice::Any => 0,
                    Choice::Digit(c) => c as i32 + 1,
                };
                let step = if button == Button::Right { 1 } else { -1 };
                self.choice = match (index + step).rem_euclid(n) {
                    0 => Choice::Any,
                    i => Choice::Digit((i - 1) as u8),
                };
                true
            }
            Button::Select => {
                self.seed = match self.mode {
                    SeedMode::Sequence(base) => base.wrapping_add(self.selects),
                    SeedMode::Entropy(_) => {
                        SplitMix64::new(((self.seed as u64) << 32) | since as u64).next_u32()
                    }
                };
                self.selects = self.selects.wrapping_add(1);
                self.steps = 0;
                let latent = model.header.latent as usize;
                let (z, dir) = (&mut self.z[..latent], &mut self.dir[..latent]);
                let class = draw(self.seed, classes as usize, self.choice, z, dir);
                self.regenerate(class, clock)
            }
            Button::Up | Button::Down if self.shown.is_some() => {
                self.steps += if button == Button::Up { 1 } else { -1 };
                let class = self.shown.as_ref().and_then(|g| g.class);
                self.regenerate(class, clock)
            }
            _ => false,
        }
    }

    fn regenerate(&mut self, class: Option<u8>, clock: &mut impl Clock) -> bool {
        let Ok(model) = &self.model else {
            return false;
        };
        let start = clock.micros();
        let result = generate_from(
            model,
            &self.z,
            &self.dir,
            self.steps,
            class,
            &mut self.a,
            &mut self.b,
        );
        self.micros = match (start, clock.micros()) {
            (Some(s), Some(e)) => Some(e.wrapping_sub(s)),
            _ => None,
        };
        match result {
            Ok(g) => self.shown = Some(g),
            Err(e) => self.model = Err(e),
        }
        true
    }

    /// Draws the whole screen from the state alone.
    pub fn render<D, C>(&self, display: &mut D) -> Result<(), D::Error>
    where
        D: DrawTarget<Color = C>,
        C: Shade,
    {
        display.clear(C::shade(0, 0, 0))?;
        let text = MonoTextStyle::new(&FONT_6X10, C::shade(15, 0, 0));
        let line = |row: i32| Point::new(TEXT_X, 2 + 12 * row);
        let model = match &self.model {
            Ok(m) => m,
            Err(e) => {
                let lines = [
                    "MODEL ERROR",
                    e.as_str(),
                    "",
                    "rebuild the firmware",
                    "with a good model",
                ];
                for (row, words) in lines.iter().enumerate() {
                    let at = Point::new(4, 4 + 11 * row as i32);
                    Text::with_baseline(words, at, text, Baseline::Top).draw(display)?;
                }
                return Ok(());
            }
        };
        let (w, h) = (model.header.width as u32, model.header.height as u32);
        Rectangle::new(
            DIGIT_ORIGIN - Point::new(1, 1),
            Size::new(w * SCALE + 2, h * SCALE + 2),
        )
        .into_styled(PrimitiveStyle::with_stroke(C::shade(4, 0, 0), 1))
        .draw(display)?;
        let mut s: heapless::String<24> = heapless::String::new();
        match &self.shown {
            Some(g) => {
                let area = g.digit.area();
                display.fill_contiguous(&area, area.points().map(|p| g.digit.shade_at(p)))?;
            }
            None => {
                for (row, word) in ["press", "SELECT"].iter().enumerate() {
                    let y = DIGIT_ORIGIN.y + (h * SCALE) as i32 / 2 - 10 + 12 * row as i32;
                    Text::with_baseline(
                        word,
                        Point::new(DIGIT_ORIGIN.x + 4, y),
                        text,
                        Baseline::Top,
                    )
                    .draw(display)?;
                }
            }
        }
        let mut row = 0;
        let mut put = |s: &str, display: &mut D| -> Result<(), D::Error> {
            Text::with_baseline(s, line(row), text, Baseline::Top).draw(display)?;
            row += 1;
            Ok(())
        };
        if model.header.classes > 0 {
            let _ = match self.choice {
                Choice::Any => write!(s, "< any >"),
                Choice::Digit(c) => write!(s, "<  {c}  >"),
            };
        } else {
            let _ = write!(s, "no class");
        }
        put(&s, display)?;
        if let Some(g) = &self.shown {
            s.clear();
            if let Some(c) = g.class {
                let _ = write!(s, "drew {c}");
            }
            put(&s, display)?;
            s.clear();
            let _ = write!(s, "#{:08X}", self.seed);
            put(&s, display)?;
            s.clear();
            let _ = write!(s, "walk {:+}", self.steps);
            put(&s, display)?;
            if let Some(us) = self.micros {
                s.clear();
                let _ = write!(s, "{}.{} ms", us / 1000, us % 1000 / 100);
                put(&s, display)?;
            }
        }
        Ok(())
    }
}
