//! The Pico firmware run in rp2040js, an RP2040 emulator in JavaScript (`tests/rp2040/`, run by
//! Node.js), on simulated time only: build the Pico's ELF with a given model, hand the
//! JavaScript harness a [`Script`] of button presses and captures, and read back what the board
//! did: the LED's edges (with the cycle count at each), the display's frames and screens.

use anyhow::{Context, Result, bail, ensure};
use firmware::frame::{HEIGHT, MonoFrame, WIDTH};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::board::{Variant, root};

/// The JavaScript harness's folder (its `package-lock.json` pins rp2040js).
pub const HARNESS_DIR: &str = "tests/rp2040";
/// The emulator package the harness runs on.
pub const EMULATOR: &str = "rp2040js";
/// The Pico's system clock, which rp2040js also assumes: a cycle is 8 ns.
pub const CLK_SYS_HZ: f64 = 125e6;
/// Bytes of one frame: 128 columns × 8 pages.
pub const FRAME_BYTES: usize = WIDTH * HEIGHT / 8;
/// Simulated time the first frame may take: the boot validates the whole model (a CRC over
/// 1.5 MB for the seed-size model, about 0.6 s).
pub const BOOT_MS: u64 = 2_000;
/// A press whose generation has not finished this long after the LED lit has hung.
const GENERATION_MS: u64 = 2_000;
/// Wall-clock bound on one run of the emulator (it simulates about 10 M cycles a second).
const WALL_TIMEOUT: Duration = Duration::from_secs(900);

pub fn harness_dir() -> PathBuf {
    root().join(HARNESS_DIR)
}

/// Fails, saying to run set-up, unless Node.js runs and the pinned rp2040js is installed.
pub fn check_installed() -> Result<()> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        bail!(
            "Node.js (`node`) does not run; it runs the RP2040 emulator for the Pico's tests: run `cargo xtask setup`"
        );
    }
    let dir = harness_dir();
    match crate::node::package_versions(&dir, EMULATOR)? {
        (pinned, Some(installed)) if pinned == installed => Ok(()),
        (pinned, installed) => bail!(
            "{EMULATOR} {pinned} is not installed in {} (found {}): run `cargo xtask setup`",
            dir.join("node_modules").display(),
            installed.as_deref().unwrap_or("none")
        ),
    }
}

/// The Pico board crate's folder.
pub fn board_dir() -> PathBuf {
    crate::board::folder(&boards::PICO)
}

/// Builds the Pico firmware for `variant` (see [`crate::board::build_elf`]).
pub fn elf_for(variant: &Variant) -> Result<PathBuf> {
    crate::board::build_elf(&boards::PICO, variant)
}

/// What the harness waits for.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    LedOn,
    LedOff,
    /// The display's next complete frame (the whole window the firmware set, written).
    Frame,
}

/// A run of the board: steps on simulated time, executed in order by `tests/rp2040/run.js`.
#[derive(Clone, Debug)]
pub struct Script {
    /// Whether an SSD1306 answers at 0x3C.
    pub display: bool,
    steps: Vec<Value>,
    /// The simulated time the steps add up to, at most (each `until` counted in full).
    limit_ms: u64,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            display: true,
            steps: Vec::new(),
            limit_ms: 0,
        }
    }
}

impl Script {
    pub fn run_ms(&mut self, ms: u64) -> &mut Self {
        self.limit_ms += ms;
        self.steps.push(json!({ "run_ms": ms }));
        self
    }

    /// Presses (`true`: GP15 to ground) or releases the button.
    pub fn button(&mut self, down: bool) -> &mut Self {
        self.steps
            .push(json!({ "button": if down { "down" } else { "up" } }));
        self
    }

    /// Runs until `what` happens; the run fails if it has not within `within_ms`.
    pub fn until(&mut self, what: Until, within_ms: u64) -> &mut Self {
        let what = match what {
            Until::LedOn => "led_on",
            Until::LedOff => "led_off",
            Until::Frame => "frame",
        };
        self.limit_ms += within_ms;
        self.steps
            .push(json!({ "until": what, "within_ms": within_ms }));
        self
    }

    pub fn capture(&mut self, name: &str) -> &mut Self {
        self.steps.push(json!({ "capture": name }));
        self
    }

    /// Boot: the first frame, captured as `boot`.
    pub fn boot(&mut self) -> &mut Self {
        self.until(Until::Frame, BOOT_MS).capture("boot")
    }

    /// A press held `hold_ms` after 50 ms of rest; then the generation (the LED lit and dark
    /// again) and, when `redraws`, the new frame, captured as `name`.
    pub fn press(&mut self, hold_ms: u64, redraws: bool, name: &str) -> &mut Self {
        self.run_ms(50)
            .button(true)
            .run_ms(hold_ms)
            .button(false)
            // Four stable samples 5 ms apart make the release count.
            .until(Until::LedOn, 100)
            .until(Until::LedOff, GENERATION_MS);
        if redraws {
            self.until(Until::Frame, 500);
        } else {
            self.run_ms(100);
        }
        self.capture(name)
    }

    fn to_json(&self, elf: &Path) -> Value {
        json!({
            "elf": elf,
            "display": self.display,
            "limit_ms": self.limit_ms + 1,
            "steps": self.steps,
        })
    }
}

/// One LED edge.
#[derive(Clone, Debug)]
pub struct Led {
    pub on: bool,
    pub ns: u64,
    pub cycles: u64,
}

/// The LED lit and dark again: the firmware handling one press.
#[derive(Clone, Debug)]
pub struct Lit {
    pub on: Led,
    pub off: Led,
    /// The timer values (µs) the firmware read while the LED was lit (the app's clock), the
    /// first 64 of them.
    pub timer_reads: Vec<u32>,
    /// How many times it read the timer (a delay loop reads it thousands of times).
    pub timer_read_count: u64,
    /// Bytes the ROM's memcpy/memset moved while it was lit.
    pub rom_bytes: u64,
}

impl Lit {
    pub fn cycles(&self) -> u64 {
        self.off.cycles - self.on.cycles
    }

    /// The generation time the app measured and shows: its last two clock reads.
    pub fn generation_us(&self) -> Option<u32> {
        if self.timer_read_count != self.timer_reads.len() as u64 {
            return None;
        }
        match self.timer_reads[..] {
            [.., start, end] => Some(end.wrapping_sub(start)),
            _ => None,
        }
    }
}

/// A frame the display received.
#[derive(Clone, Debug)]
pub struct Frame {
    pub ns: u64,
    pub cycles: u64,
    /// Bytes on the bus since the previous frame, address bytes included.
    pub bus_bytes: u64,
    /// I²C transactions (start, address, data, stop) since the previous frame.
    pub transactions: u64,
}

impl Frame {
    /// Bits on the wire: nine per byte (eight and the acknowledge), a start and a stop per
    /// transaction.
    pub fn bus_bits(&self) -> u64 {
        self.bus_bytes * 9 + self.transactions * 2
    }
}

/// What the display showed at a capture.
#[derive(Clone, Debug)]
pub struct Capture {
    pub name: String,
    /// Whether the panel was lit at all (display on, charge pump on).
    pub lit: bool,
    /// The picture in the SSD1306's page layout, as [`MonoFrame::as_bytes`].
    pub pages: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
pub struct Run {
    pub leds: Vec<Led>,
    pub lit: Vec<Lit>,
    pub frames: Vec<Frame>,
    pub captures: Vec<Capture>,
    /// Simulated time and cycles at the end.
    pub ns: u64,
    pub cycles: u64,
    /// The I²C block's fast-mode SCL high and low counts (in system clock cycles).
    pub i2c_counts: (u64, u64),
    pub clk_sys: f64,
    /// Wall-clock time the emulator took.
    pub wall: Duration,
}

impl Run {
    pub fn capture(&self, name: &str) -> Result<&Capture> {
        self.captures
            .iter()
            .find(|c| c.name == name)
            .with_context(|| format!("no capture named {name}"))
    }

    /// The SCL rate the firmware set up: one bit per high plus low count.
    pub fn i2c_hz(&self) -> f64 {
        self.clk_sys / (self.i2c_counts.0 + self.i2c_counts.1) as f64
    }
}

/// Runs `script` against `elf` in rp2040js. A failure of the run (the emulator's warning, a
/// panic, a fault, an unknown ROM call or display command, a time limit) is an error with the
/// harness's message and the simulated time and PC where it happened.
pub fn run(elf: &Path, script: &Script) -> Result<Run> {
    check_installed()?;
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(harness_dir().join("run.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start node: run `cargo xtask setup`")?;
    let input = serde_json::to_vec(&script.to_json(elf))?;
    child.stdin.take().context("stdin")?.write_all(&input)?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let Some(status) = crate::node::wait_or_kill(&mut child, WALL_TIMEOUT)? else {
        bail!(
            "the RP2040 emulator ran longer than {WALL_TIMEOUT:?} on {}",
            elf.display()
        );
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    let mut run =
        parse(&out).with_context(|| format!("reading the harness's output\n{out}\n{err}"))?;
    run.wall = started.elapsed();
    if !status.success() {
        let last = out.lines().last().unwrap_or_default();
        bail!("the Pico firmware failed in rp2040js ({status}): {last}\n--- stderr ---\n{err}");
    }
    Ok(run)
}

fn parse(out: &str) -> Result<Run> {
    let mut run = Run::default();
    let mut pending: Option<Led> = None;
    let u = |v: &Value, key: &str| -> Result<u64> {
        v[key]
            .as_f64()
            .map(|f| f as u64)
            .with_context(|| format!("no {key} in {v}"))
    };
    for line in out.lines() {
        let v: Value = serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        match v["event"].as_str() {
            Some("led") => {
                let led = Led {
                    on: v["on"].as_bool().context("on")?,
                    ns: u(&v, "ns")?,
                    cycles: u(&v, "cycles")?,
                };
                if led.on {
                    pending = Some(led.clone());
                } else if let Some(on) = pending.take() {
                    let timer_reads = v["timer_reads"]
                        .as_array()
                        .context("timer_reads")?
                        .iter()
                        .map(|t| t.as_u64().map(|t| t as u32))
                        .collect::<Option<_>>()
                        .context("timer_reads")?;
                    run.lit.push(Lit {
                        on,
                        off: led.clone(),
                        timer_reads,
                        timer_read_count: u(&v, "timer_read_count")?,
                        rom_bytes: u(&v, "rom_bytes")?,
                    });
                }
                run.leds.push(led);
            }
            Some("frame") => run.frames.push(Frame {
                ns: u(&v, "ns")?,
                cycles: u(&v, "cycles")?,
                bus_bytes: u(&v, "bus_bytes")?,
                transactions: u(&v, "transactions")?,
            }),
            Some("screen") => {
                let pages = v["pages"]
                    .as_array()
                    .context("pages")?
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .context("pages")?;
                ensure!(
                    pages.len() == FRAME_BYTES,
                    "a capture of {} bytes",
                    pages.len()
                );
                run.captures.push(Capture {
                    name: v["name"].as_str().context("name")?.to_owned(),
                    lit: v["lit"].as_bool().context("lit")?,
                    pages,
                });
            }
            Some("end") => {
                run.ns = u(&v, "ns")?;
                run.cycles = u(&v, "cycles")?;
                run.clk_sys = v["clk_sys"].as_f64().context("clk_sys")?;
                run.i2c_counts = (u(&v, "i2c_fs_hcnt")?, u(&v, "i2c_fs_lcnt")?);
            }
            Some("error") => {}
            _ => bail!("unknown event: {line}"),
        }
    }
    Ok(run)
}

/// The one-bit screen the host app draws, in the page layout the display model reports.
pub fn host_screen<const W: usize>(app: &firmware::app::App<'_, W>) -> Vec<u8> {
    let mut frame = MonoFrame::new();
    let Ok(()) = app.render(&mut frame);
    frame.as_bytes().to_vec()
}

/// Text art of a page-layout screen, `#` for a lit pixel: for failure messages.
pub fn art(pages: &[u8]) -> String {
    let mut s = String::with_capacity((WIDTH + 1) * HEIGHT);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let on = pages[y / 8 * WIDTH + x] & (1 << (y % 8)) != 0;
            s.push(if on { '#' } else { '.' });
        }
        s.push('\n');
    }
    s
}

/// The pixels where two page-layout screens differ, as (x, y).
pub fn differences(a: &[u8], b: &[u8]) -> Vec<(usize, usize)> {
    (0..HEIGHT)
        .flat_map(|y| (0..WIDTH).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let bit = 1 << (y % 8);
            a[y / 8 * WIDTH + x] & bit != b[y / 8 * WIDTH + x] & bit
        })
        .collect()
}
