//! The firmware's app in a web page: the same `firmware::app::App` a board runs, compiled to
//! WebAssembly behind a few plain exported functions that `page/main.js` calls.
//!
//! One instance is one board from power-on: the page may stage a model blob
//! ([`mcugan_stage`]), boots once ([`mcugan_boot`]), then presses buttons ([`mcugan_press`])
//! and reads the screen ([`mcugan_screen`]). Another model or board is a new instance, as
//! flashing a board restarts it; so the blob is written once and the app borrows it for good.

use boards::Board;
use firmware::app::{App, Button, Clock, SeedMode};
use firmware::frame::{Frame, HEIGHT, MonoFrame, WIDTH};
use std::cell::RefCell;
use std::fmt::Write;
use std::sync::OnceLock;

/// The committed default model, the one the LM3S6965 firmware embeds.
static DEFAULT_MODEL: &[u8] = include_bytes!("../../models/lm3s6965/model.bin");
/// Activation buffer width, the boards' (`WIDTH` in their `main.rs`): a model wider than this
/// shows the error screen here as it would there.
const BUFFER: usize = 1024;
/// The seeds of the boards' default builds, as in QEMU: the n-th SELECT uses seed n.
const SEEDS: SeedMode = SeedMode::Sequence(0);
/// The boards [`mcugan_boot`] numbers, each with whether its screen is one-bit (the Pico's
/// SSD1306) rather than 16 greys (the LM3S6965's OLED).
const BOARDS: [(&Board, bool); 2] = [(&boards::LM3S6965, false), (&boards::PICO, true)];

#[link(wasm_import_module = "mcugan")]
unsafe extern "C" {
    /// `performance.now()` in microseconds, from the page.
    safe fn now_micros() -> f64;
}

/// The page's clock, so the app times each generation and shows it as a board does.
struct PageClock;

impl Clock for PageClock {
    fn micros(&mut self) -> Option<u32> {
        // Wrapping microseconds, as a board's counter.
        Some(now_micros() as u64 as u32)
    }
}

/// A board that has booted.
struct Running {
    board: &'static Board,
    mono: bool,
    app: Box<App<'static, BUFFER>>,
    /// What the screen shows, row-major, 0–255 per pixel: grey level n as n·17 (as QEMU draws
    /// the OLED), a one-bit pixel as 0 or 255.
    screen: Box<[u8; WIDTH * HEIGHT]>,
}

impl Running {
    fn draw(&mut self) {
        if self.mono {
            let mut frame = MonoFrame::new();
            let Ok(()) = self.app.render(&mut frame);
            for (i, p) in self.screen.iter_mut().enumerate() {
                *p = if frame.is_on(i % WIDTH, i / WIDTH) {
                    255
                } else {
                    0
                };
            }
        } else {
            let mut frame = Frame::new();
            let Ok(()) = self.app.render(&mut frame);
            for (i, p) in self.screen.iter_mut().enumerate() {
                *p = frame.level(i % WIDTH, i / WIDTH) * 17;
            }
        }
    }

    /// One line on the model and the image on screen.
    fn describe(&self, blob: usize) -> String {
        let mut s = format!("{}: ", self.board.name);
        let _ = match self.app.model() {
            Err(e) => write!(s, "model of {blob} bytes refused: {e}"),
            Ok(m) => write!(
                s,
                "model of {blob} bytes, {} layers, {} MACs a digit",
                m.layers().len(),
                m.macs()
            ),
        };
        if let Some(g) = self.app.shown() {
            let _ = write!(s, "; seed {}", self.app.seed());
            if let Some(c) = g.class {
                let _ = write!(s, ", drew {c}");
            }
            let _ = write!(s, ", walk {:+}", self.app.steps());
        }
        s
    }
}

thread_local! {
    static STAGED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static RUNNING: RefCell<Option<Running>> = const { RefCell::new(None) };
    static STATUS: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The blob this instance booted with, written once ("flashed").
static FLASHED: OnceLock<Vec<u8>> = OnceLock::new();

fn set_status(text: String) {
    STATUS.with_borrow_mut(|s| *s = text);
}

/// Makes room for a model blob of `len` bytes and returns where the page writes it (a view
/// of the instance's memory made after this call).
#[unsafe(no_mangle)]
pub extern "C" fn mcugan_stage(len: usize) -> *mut u8 {
    STAGED.with_borrow_mut(|b| {
        *b = vec![0; len];
        b.as_mut_ptr()
    })
}

/// Powers on board `board` (0: LM3S6965, 1: Pico) with the staged blob when `staged` is
/// nonzero, else the built-in model, and draws the first screen. A bad blob boots to the app's
/// error screen, as on the board. Returns 0, with the reason in [`mcugan_status`], when the
/// board cannot boot: a second boot of one instance, an unknown board, or a blob larger than
/// the board's model budget (it could not be flashed).
#[unsafe(no_mangle)]
pub extern "C" fn mcugan_boot(board: u32, staged: u32) -> u32 {
    let Some(&(board, mono)) = BOARDS.get(board as usize) else {
        set_status(format!("no board {board}: 0 is the LM3S6965, 1 the Pico"));
        return 0;
    };
    if RUNNING.with_borrow(Option::is_some) || FLASHED.get().is_some() {
        set_status("this instance has booted already: start a new one".into());
        return 0;
    }
    let blob: &'static [u8] = if staged != 0 {
        let bytes = STAGED.take();
        if bytes.len() > board.model_budget {
            set_status(format!(
                "the model is {} bytes, over the {}'s model budget of {} bytes (its flash \
                 less the firmware): it cannot be flashed",
                bytes.len(),
                board.name,
                board.model_budget
            ));
            return 0;
        }
        FLASHED.get_or_init(|| bytes)
    } else {
        DEFAULT_MODEL
    };
    let mut running = Running {
        board,
        mono,
        app: Box::new(App::new(blob, SEEDS)),
        screen: Box::new([0; WIDTH * HEIGHT]),
    };
    running.draw();
    set_status(running.describe(blob.len()));
    RUNNING.set(Some(running));
    1
}

/// Presses and releases a button (the index in `Button::ALL`: up, down, left, right, select).
/// Returns 1 when the screen changed.
#[unsafe(no_mangle)]
pub extern "C" fn mcugan_press(button: u32) -> u32 {
    let Some(&button) = Button::ALL.get(button as usize) else {
        return 0;
    };
    RUNNING.with_borrow_mut(|running| {
        let Some(r) = running else { return 0 };
        let changed = r.app.handle(button, &mut PageClock);
        if changed {
            r.draw();
        }
        let blob = FLASHED.get().map_or(DEFAULT_MODEL.len(), Vec::len);
        set_status(r.describe(blob));
        changed as u32
    })
}

/// The screen, [`WIDTH`] × [`HEIGHT`] bytes (see `Running::screen`), or null before boot.
#[unsafe(no_mangle)]
pub extern "C" fn mcugan_screen() -> *const u8 {
    RUNNING.with_borrow(|r| r.as_ref().map_or(std::ptr::null(), |r| r.screen.as_ptr()))
}

/// Microseconds the last generation took, as the app measured and shows them; −1 before any.
#[unsafe(no_mangle)]
pub extern "C" fn mcugan_micros() -> i32 {
    RUNNING.with_borrow(|r| {
        r.as_ref()
            .and_then(|r| r.app.micros())
            .map_or(-1, |us| i32::try_from(us).unwrap_or(i32::MAX))
    })
}

/// Where the status line's UTF-8 bytes are; [`mcugan_status_len`] gives their number.
#[unsafe(no_mangle)]
pub extern "C" fn mcugan_status() -> *const u8 {
    STATUS.with_borrow(|s| s.as_ptr())
}

#[unsafe(no_mangle)]
pub extern "C" fn mcugan_status_len() -> usize {
    STATUS.with_borrow(String::len)
}
