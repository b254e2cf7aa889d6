//! What the board's screen must show, computed on the host by the firmware crate's own `App`
//! fed the same blob and presses, drawn into a [`Screen`] without the board's framebuffer,
//! display driver or QEMU in the way.

use firmware::app::{App, Button, Clock, SeedMode};

use crate::screen::Screen;

/// The board's seeds with its default `sequence-seeds` feature: the n-th SELECT uses seed n.
pub const BOARD_SEEDS: SeedMode = SeedMode::Sequence(0);
/// The board's activation buffer width (`WIDTH` in its main.rs).
pub const BOARD_WIDTH: usize = 1024;

pub struct HostApp<'b> {
    app: Box<App<'b, BOARD_WIDTH>>,
}

impl<'b> HostApp<'b> {
    pub fn new(blob: &'b [u8]) -> Self {
        HostApp {
            app: Box::new(App::new(blob, BOARD_SEEDS)),
        }
    }

    /// Applies a press whose generation (if any) the board timed at `us` microseconds, as its
    /// log says, so the time on screen matches too. Returns whether the screen changed.
    pub fn press(&mut self, button: Button, us: u32) -> bool {
        self.app.handle(button, &mut Replay { calls: 0, us })
    }

    pub fn app(&self) -> &App<'b, BOARD_WIDTH> {
        &self.app
    }

    pub fn screen(&self) -> Screen {
        let mut s = Screen::blank();
        let Ok(()) = self.app.render(&mut s);
        s
    }
}

/// A clock that makes the app's measured generation time come out as `us`: the app reads the
/// clock once per press, then just before and just after generating.
struct Replay {
    calls: u32,
    us: u32,
}

impl Clock for Replay {
    fn micros(&mut self) -> Option<u32> {
        self.calls += 1;
        Some(if self.calls >= 3 { self.us } else { 0 })
    }
}
