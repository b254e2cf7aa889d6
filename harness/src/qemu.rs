//! QEMU's model of the LM3S6965 evaluation board, headless: the firmware's semihosting log on
//! stdout, QMP on a unix socket for screen captures and key presses. QEMU is always killed.

use anyhow::{Context, Result, bail};
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use firmware::app::Button;

use crate::qmp::Qmp;
use crate::screen::Screen;

/// What the firmware prints once its first frame is on the screen.
pub const READY: &str = "mcugan: ready";
/// What the firmware prints once its debouncer has seen a button go down, before `=name`.
pub const PRESSED: &str = "mcugan: pressed";
/// What QEMU's SSD0323 model prints for a command it does not know.
pub const OLED_ERROR: &str = "ssd0323: error";

/// The QEMU key (qcode) each of the board's buttons is wired to.
pub fn qcode(button: Button) -> &'static str {
    match button {
        Button::Up => "up",
        Button::Down => "down",
        Button::Left => "left",
        Button::Right => "right",
        Button::Select => "ctrl",
    }
}

/// Under `-icount shift=0` QEMU retires one instruction per virtual nanosecond and the board's
/// SysTick ticks every 80 ns (12.5 MHz): a tick is 80 instructions.
pub const INSTRUCTIONS_PER_TICK: u64 = 80;

/// The LM3S6965's clock, for estimates of time on the real chip (one instruction per cycle).
pub const BOARD_HZ: f64 = 50e6;

#[derive(Clone, Debug)]
pub struct Options {
    /// `-icount shift=N`: count instructions, 2^N ns each, deterministic timing.
    pub icount_shift: Option<u32>,
    /// Bound on every wait: boot, each log line, each QMP reply. Only a hang should reach it:
    /// a loaded CI host has taken over 20 s for one line.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            icount_shift: None,
            timeout: Duration::from_secs(90),
        }
    }
}

pub struct Qemu {
    child: Child,
    qmp: Qmp,
    lines: Receiver<String>,
    /// Every stdout line read so far.
    log: Vec<String>,
    stderr: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
    captures: usize,
    options: Options,
    /// Buttons the firmware's debouncer reads as down (bit i for `Button::ALL[i]`): at boot
    /// QEMU leaves every level low, so a key-down changes nothing until the first release.
    held: u8,
    /// From spawning QEMU to the firmware's ready line.
    pub boot_time: Duration,
}

impl Qemu {
    /// Boots `elf` and waits for the firmware's ready line.
    pub fn boot(elf: &Path, options: Options) -> Result<Self> {
        let started = Instant::now();
        let dir = tempfile::Builder::new().prefix("mcugan-qemu").tempdir()?;
        let socket = dir.path().join("qmp.sock");
        let mut cmd = Command::new("qemu-system-arm");
        cmd.args(["-M", "lm3s6965evb", "-display", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()));
        if let Some(shift) = options.icount_shift {
            cmd.args(["-icount", &format!("shift={shift}")]);
        }
        cmd.arg("-kernel")
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .context("cannot start qemu-system-arm (is QEMU installed? `cargo xtask setup`)")?;

        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                sink.lock().expect("stderr lock").push_str(&text);
            }
        });

        let qmp = match Qmp::connect(&socket, options.timeout) {
            Ok(q) => q,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e.context(format!(
                    "QEMU stderr: {}",
                    stderr.lock().expect("stderr lock")
                )));
            }
        };
        let mut qemu = Qemu {
            child,
            qmp,
            lines,
            log: Vec::new(),
            stderr,
            dir,
            captures: 0,
            options,
            held: 0,
            boot_time: Duration::ZERO,
        };
        let ready = qemu.wait_for(READY)?;
        qemu.held = field(&ready, "held")
            .and_then(|h| u8::try_from(h).ok())
            .with_context(|| format!("no held=<levels> in the ready line: {ready}"))?;
        qemu.boot_time = started.elapsed();
        Ok(qemu)
    }

    /// Waits for the next stdout line containing `pattern` and returns it.
    pub fn wait_for(&mut self, pattern: &str) -> Result<String> {
        let deadline = Instant::now() + self.options.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(pattern) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "no line with {pattern:?} within {:?}\n{}",
                        self.options.timeout,
                        self.transcript()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // QEMU ended; give its stderr reader a moment to finish.
                    std::thread::sleep(Duration::from_millis(50));
                    bail!(
                        "QEMU exited before a line with {pattern:?}\n{}",
                        self.transcript()
                    )
                }
            }
        }
    }

    /// Presses and releases a button (the firmware acts on the release). The key stays down
    /// until the firmware reports the press, so a host that stalls QEMU cannot lose it between
    /// two samples; a button that already reads down only needs its release.
    pub fn press(&mut self, button: Button) -> Result<()> {
        let bit = 1u8
            << Button::ALL
                .iter()
                .position(|&b| b == button)
                .expect("a button");
        self.key(button, true)?;
        if self.held & bit == 0 {
            self.wait_for(&format!("{PRESSED}={}", button.name()))?;
        }
        self.held &= !bit;
        self.key(button, false)
    }

    fn key(&mut self, button: Button, down: bool) -> Result<()> {
        self.qmp.execute(
            "input-send-event",
            json!({ "events": [{
                "type": "key",
                "data": { "down": down, "key": { "type": "qcode", "data": qcode(button) } },
            }] }),
        )?;
        Ok(())
    }

    /// Presses `button` and waits for the firmware's line for it, which it prints once the new
    /// frame is on the screen.
    pub fn press_and_wait(&mut self, button: Button) -> Result<String> {
        self.press(button)?;
        self.wait_for(&format!("button={} ", button.name()))
    }

    /// Captures the OLED as QEMU shows it.
    pub fn capture(&mut self) -> Result<Screen> {
        self.captures += 1;
        let path = self.capture_path(self.captures);
        self.qmp.execute(
            "screendump",
            json!({ "filename": path.to_str().context("capture path")?, "format": "png" }),
        )?;
        Screen::from_capture(&path)
    }

    /// The PNG QEMU wrote for capture number `n` (from 1), kept until QEMU is dropped.
    pub fn capture_path(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("capture-{n}.png"))
    }

    /// QEMU's stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Stdout lines read so far.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// The SysTick ticks and MACs the boot self-test logged for `kernel` (`Fast`, `Reference`).
    pub fn selftest(&self, kernel: &str) -> Result<(u64, u64)> {
        let line = self
            .log
            .iter()
            .find(|l| l.contains(&format!("selftest kernel={kernel} ")))
            .with_context(|| format!("no self-test line for {kernel}"))?;
        Ok((
            field(line, "ticks").context("ticks")?,
            field(line, "macs").context("macs")?,
        ))
    }

    /// Fails when the OLED controller model complained about a command.
    pub fn check_oled_errors(&self) -> Result<()> {
        let stderr = self.stderr();
        if stderr.contains(OLED_ERROR) {
            bail!("QEMU's SSD0323 model reported errors:\n{stderr}");
        }
        Ok(())
    }

    /// Waits for QEMU to exit by itself (the firmware's semihosting exit) within the timeout.
    pub fn wait_exit(&mut self) -> Result<ExitStatus> {
        let deadline = Instant::now() + self.options.timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.log.push(line);
                }
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("QEMU did not exit within {:?}", self.options.timeout);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn transcript(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.log.join("\n"),
            self.stderr()
        )
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number after `key=` in a firmware log line.
pub fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}
