//! `cargo xtask web`: the firmware's app compiled to WebAssembly (`web/`, a crate outside the
//! workspace like the boards) with its static page, built into `out/web/` and served on
//! loopback; and the browser test `cargo xtask test` runs, which drives that same page in
//! headless Chromium and compares its canvas with the host app's screen, pixel for pixel.

use anyhow::{Context, Result, bail, ensure};
use firmware::app::Button;
use firmware::frame::{Frame, HEIGHT, MonoFrame, WIDTH};
use harness::expected::HostApp;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::util::{self, step};

/// The web crate and page, under the workspace root.
pub const FOLDER: &str = "web";
/// Debian's Chromium, which the browser test drives.
pub const CHROMIUM: &str = "chromium";
/// The npm package that drives it, pinned by `web/package-lock.json`.
pub const PLAYWRIGHT: &str = "playwright-core";
const TARGET: &str = "wasm32-unknown-unknown";
/// What the crate builds, and its name in the page's folder.
const WASM_BUILT: &str = "mcugan_web.wasm";
pub const WASM: &str = "mcugan.wasm";
/// The page's own files, from `web/page/`.
const PAGE: [&str; 3] = ["index.html", "main.js", "style.css"];
/// The Pico's committed model, which the test gives the page through its file input.
const PICO_MODEL: &str = "models/pico/model.bin";
/// The longest the browser test may take, start to end.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(clap::Args)]
pub struct WebArgs {
    /// Loopback port to serve on (0: any free one).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Build `out/web/` and stop, without serving it.
    #[arg(long)]
    no_serve: bool,
    /// Run the browser test alone (part of `cargo xtask test`) instead of serving.
    #[arg(long, conflicts_with_all = ["port", "no_serve"])]
    test: bool,
}

fn dir() -> PathBuf {
    crate::root().join(FOLDER)
}

/// Runs cargo in `web/` with its own target folder, whatever CARGO_TARGET_DIR the caller has.
fn cargo(args: &[&str]) -> Result<()> {
    let dir = dir();
    util::run(
        util::cargo_command(&dir)
            .args(args)
            .env("CARGO_TARGET_DIR", dir.join("target")),
    )
}

/// Builds the WebAssembly module (release) and returns its path.
pub fn build_wasm() -> Result<PathBuf> {
    step(&format!("web page: the app for {TARGET} (release)"));
    cargo(&["build", "--release", "--quiet"])?;
    let wasm = dir()
        .join("target")
        .join(TARGET)
        .join("release")
        .join(WASM_BUILT);
    ensure!(wasm.is_file(), "the build left no {}", wasm.display());
    Ok(wasm)
}

/// The page and its module in `dest`, which is emptied first: the folder as it is published.
pub fn build_site(dest: &Path) -> Result<()> {
    let wasm = build_wasm()?;
    if dest.exists() {
        std::fs::remove_dir_all(dest)
            .with_context(|| format!("cannot empty {}", dest.display()))?;
    }
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let page = dir().join("page");
    for name in PAGE {
        let from = page.join(name);
        std::fs::copy(&from, dest.join(name))
            .with_context(|| format!("cannot copy {} into {}", from.display(), dest.display()))?;
    }
    std::fs::copy(&wasm, dest.join(WASM))
        .with_context(|| format!("cannot copy {} into {}", wasm.display(), dest.display()))?;
    Ok(())
}

/// The model the page has built in (`web/src/lib.rs` includes it): the committed default.
fn default_model() -> PathBuf {
    crate::root()
        .join(checkpoint::workspace::DEFAULT_MODEL_DIR)
        .join("model.bin")
}

/// Bytes of the model the page has built in.
pub fn default_model_len() -> Result<u64> {
    let path = default_model();
    Ok(std::fs::metadata(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len())
}

/// fmt and clippy on the web crate for its own target, warnings as errors.
pub fn lint() -> Result<()> {
    step("web crate: cargo fmt --check, clippy (warnings are errors)");
    cargo(&["fmt", "--", "--check"])?;
    cargo(&["clippy", "--release", "--quiet", "--", "-D", "warnings"])
}

/// `cargo xtask web`.
pub fn run(args: WebArgs) -> Result<()> {
    if args.test {
        return test();
    }
    let out = crate::root().join("out/web");
    build_site(&out)?;
    step(&format!("web page: {}", out.display()));
    if args.no_serve {
        return Ok(());
    }
    let server = Server::start(&out, args.port)?;
    step(&format!(
        "serving on http://{}/ (loopback only); Ctrl-C stops",
        server.addr
    ));
    loop {
        std::thread::park();
    }
}

/// A static file server on loopback for one folder's files, read when it starts; anything
/// else is a 404, so no path can reach outside the folder.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(site: &Path, port: u16) -> Result<Self> {
        let mut files = HashMap::new();
        for entry in
            std::fs::read_dir(site).with_context(|| format!("cannot read {}", site.display()))?
        {
            let path = entry?.path();
            if let (true, Some(name)) = (path.is_file(), path.file_name().and_then(|n| n.to_str()))
            {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                files.insert(format!("/{name}"), bytes);
            }
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .with_context(|| format!("cannot listen on 127.0.0.1:{port} (--port)"))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (files, flag) = (Arc::new(files), Arc::clone(&stop));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let files = Arc::clone(&files);
                std::thread::spawn(move || {
                    let _ = serve(stream, &files);
                });
            }
        });
        Ok(Server { addr, stop })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Answers one request (GET or HEAD) and closes the connection.
fn serve(stream: TcpStream, files: &HashMap<String, Vec<u8>>) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?.take(16 * 1024));
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers: read and ignored.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut words = request.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split(['?', '#']).next().unwrap_or("");
    let path = if path == "/" { "/index.html" } else { path };
    let (status, body, kind): (&str, &[u8], &str) = match (method, files.get(path)) {
        ("GET" | "HEAD", Some(body)) => ("200 OK", body, content_type(path)),
        ("GET" | "HEAD", None) => ("404 Not Found", b"not found\n", "text/plain"),
        _ => (
            "405 Method Not Allowed",
            b"GET or HEAD only\n",
            "text/plain",
        ),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        out.write_all(body)?;
    }
    out.flush()?;
    Ok(())
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// One browser session of the test: a fresh page, which board and model to boot, the presses.
struct Scenario {
    name: &'static str,
    /// 0: LM3S6965 (16 greys), 1: Pico (one bit), as the page's board switch numbers them.
    board: u32,
    /// A model file given to the page's file input; None for the built-in model.
    model: Option<PathBuf>,
    /// The model the page must end up running (differs when the page refuses `model`).
    runs: PathBuf,
    /// The board's screen is one-bit.
    mono: bool,
    /// Each press, and whether it goes through the keyboard or a click on the on-screen button.
    presses: Vec<(Button, bool)>,
    /// Text the page's status or notice must contain at the end.
    says: String,
}

fn presses(script: &str) -> Vec<(Button, bool)> {
    script
        .split_whitespace()
        .map(|word| {
            let (name, key) = match word.strip_prefix("key:") {
                Some(name) => (name, true),
                None => (word, false),
            };
            (Button::from_name(name).expect("a button name"), key)
        })
        .collect()
}

/// What the browser test does: the committed model on both screens, by clicks and by keys; the
/// Pico's model and a corrupt one through the file input; and a model too big for the board.
fn scenarios(work: &Path) -> Result<Vec<Scenario>> {
    let default_model = default_model();
    let pico = crate::root().join(PICO_MODEL);
    // The committed model with one bit flipped half-way: its CRC no longer matches.
    let corrupt = work.join("corrupt-model.bin");
    let mut bytes = std::fs::read(&default_model)
        .with_context(|| format!("cannot read {}", default_model.display()))?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    ensure!(
        firmware::format::Model::from_bytes(&bytes).is_err(),
        "the corrupted model still decodes"
    );
    std::fs::write(&corrupt, &bytes)
        .with_context(|| format!("cannot write {}", corrupt.display()))?;
    Ok(vec![
        Scenario {
            name: "lm3s6965-right-select",
            board: 0,
            model: None,
            runs: default_model.clone(),
            mono: false,
            presses: presses("right select"),
            says: "MACs a digit".into(),
        },
        Scenario {
            name: "lm3s6965-keys-walk",
            board: 0,
            model: None,
            runs: default_model.clone(),
            mono: false,
            presses: presses(
                "key:right key:right key:right key:select key:up key:up up down key:left \
                 select key:select",
            ),
            says: "seed 2, drew 1, walk +0".into(),
        },
        Scenario {
            name: "pico-one-bit",
            board: 1,
            model: None,
            runs: default_model.clone(),
            mono: true,
            presses: presses("key:right key:right key:right key:right key:select up select"),
            says: "Pico".into(),
        },
        Scenario {
            name: "pico-own-model",
            board: 1,
            model: Some(pico.clone()),
            runs: pico.clone(),
            mono: true,
            presses: presses("right right key:select key:down"),
            // The page names the size of the model it was given.
            says: format!("{} bytes", std::fs::metadata(&pico)?.len()),
        },
        Scenario {
            name: "corrupt-model",
            board: 0,
            model: Some(corrupt.clone()),
            runs: corrupt,
            mono: false,
            presses: presses("select key:right"),
            says: "model CRC mismatch".into(),
        },
        Scenario {
            name: "over-budget-model",
            board: 0,
            model: Some(pico),
            runs: default_model,
            mono: false,
            presses: presses("key:select"),
            says: "over the LM3S6965's model budget".into(),
        },
    ])
}

/// Serves `site` and runs the driver on `scenarios`; returns what it wrote.
fn drive_browser(site: &Path, scenarios: &[Scenario], work: &Path) -> Result<serde_json::Value> {
    let plan: Vec<serde_json::Value> = scenarios
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "board": s.board,
                "model": s.model,
                "presses": s.presses.iter().map(|(b, key)| {
                    serde_json::json!({ "button": b.name(), "key": key })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let plan_path = work.join("plan.json");
    let results_path = work.join("results.json");
    std::fs::write(&plan_path, serde_json::to_string_pretty(&plan)?)?;
    let _ = std::fs::remove_file(&results_path);

    let server = Server::start(site, 0)?;
    let url = format!("http://{}/", server.addr);
    step(&format!(
        "web page: browser test in headless {CHROMIUM}, {} scenarios, at {url}",
        scenarios.len()
    ));
    let driver = dir().join("test/browser.mjs");
    let chromium = find_program(CHROMIUM)
        .with_context(|| format!("{CHROMIUM} is not on PATH; `cargo xtask setup` installs it"))?;
    let mut child = Command::new("node")
        .arg(&driver)
        .arg(&url)
        .arg(&chromium)
        .arg(&plan_path)
        .arg(&results_path)
        .current_dir(dir())
        .spawn()
        .context("cannot start node (is it installed? `cargo xtask setup`)")?;
    let Some(status) = harness::node::wait_or_kill(&mut child, BROWSER_TIMEOUT)? else {
        bail!(
            "the browser test ({}) took over {} s",
            driver.display(),
            BROWSER_TIMEOUT.as_secs()
        );
    };
    ensure!(status.success(), "{} failed ({status})", driver.display());
    let text = std::fs::read_to_string(&results_path)
        .with_context(|| format!("{} wrote no {}", driver.display(), results_path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", results_path.display()))
}

/// The browser test: builds the page, serves it, drives it in headless Chromium through
/// `web/test/browser.mjs` and compares every screen with the host app's (fed the generation
/// times the page measured, so the time line matches too) and the first digit with the board's
/// own in QEMU. Fails on any console error or warning, failed request or page error.
pub fn test() -> Result<()> {
    let work = dir().join("target/browser-test");
    let site = work.join("site");
    build_site(&site)?;
    let scenarios = scenarios(&work)?;
    let results = drive_browser(&site, &scenarios, &work)?;
    let problems: Vec<&str> = results["problems"]
        .as_array()
        .context("results: no problems list")?
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    ensure!(
        problems.is_empty(),
        "the page logged problems:\n  {}",
        problems.join("\n  ")
    );
    let mut first_digit = None;
    for (scenario, result) in scenarios
        .iter()
        .zip(results["results"].as_array().context("results")?)
    {
        let screens = check_scenario(scenario, result, &work)?;
        if scenario.name == "lm3s6965-right-select" {
            first_digit = screens.last().cloned();
        }
        let micros = result["captures"][screens.len() - 1]["micros"].as_i64();
        println!(
            "    {}: {} screens equal to the host app's, pixel for pixel{}",
            scenario.name,
            screens.len(),
            match micros {
                Some(us) if us >= 0 => format!("; last digit generated in {us} µs"),
                _ => String::new(),
            }
        );
    }
    let page = first_digit.context("no screen of lm3s6965-right-select")?;
    same_digit_as_qemu(&page)?;
    Ok(())
}

/// Checks one scenario's captures against the host app; returns the page's screens.
fn check_scenario(s: &Scenario, result: &serde_json::Value, work: &Path) -> Result<Vec<Vec<u8>>> {
    ensure!(
        result["name"] == s.name,
        "results out of order: {} for {}",
        result["name"],
        s.name
    );
    let said = format!(
        "{} {}",
        result["status"].as_str().unwrap_or(""),
        result["notice"].as_str().unwrap_or("")
    );
    ensure!(
        said.contains(&s.says),
        "{}: the page's text does not say `{}`: {said}",
        s.name,
        s.says
    );
    ensure!(
        result["pixelated"] == true,
        "{}: the canvas is not scaled by whole pixels, nearest neighbour: {}",
        s.name,
        result["scaling"]
    );
    let blob =
        std::fs::read(&s.runs).with_context(|| format!("cannot read {}", s.runs.display()))?;
    let mut host = HostApp::new(&blob);
    let captures = result["captures"].as_array().context("no captures")?;
    ensure!(
        captures.len() == s.presses.len() + 1,
        "{}: {} captures for {} presses",
        s.name,
        captures.len(),
        s.presses.len()
    );
    let mut screens = Vec::new();
    for (i, capture) in captures.iter().enumerate() {
        if i > 0 {
            let micros = capture["micros"].as_i64().unwrap_or(-1);
            host.press(s.presses[i - 1].0, u32::try_from(micros).unwrap_or(0));
        }
        let page = canvas_greys(capture).with_context(|| format!("{}, screen {i}", s.name))?;
        let expected = host_greys(&host, s.mono);
        let after = match i {
            0 => "boot".to_owned(),
            _ => format!("press {i} ({})", s.presses[i - 1].0.name()),
        };
        if page != expected {
            let differ = page.iter().zip(&expected).filter(|(a, b)| a != b).count();
            let first = page
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let stem = work.join(format!("{}-{i}", s.name));
            write_pgm(&stem.with_extension("page.pgm"), &page)?;
            write_pgm(&stem.with_extension("host.pgm"), &expected)?;
            bail!(
                "{} after {after}: {differ} pixels differ from the host app's screen, the first \
                 at ({}, {}): page {}, host {} (both in {}.*.pgm)",
                s.name,
                first % WIDTH,
                first / WIDTH,
                page[first],
                expected[first],
                stem.display()
            );
        }
        screens.push(page);
    }
    // A real screen, not two blank ones: the last shows a digit or the error text.
    let last = screens.last().expect("at least the boot screen");
    let lit = last.iter().filter(|&&g| g > 0).count();
    let greys = last.iter().collect::<std::collections::BTreeSet<_>>().len();
    ensure!(
        lit > 300 && (s.mono || s.runs.ends_with("corrupt-model.bin") || greys > 6),
        "{}: the last screen is nearly empty ({lit} lit pixels, {greys} greys)",
        s.name
    );
    Ok(screens)
}

/// The canvas pixels of a capture as greys 0–255, checking each pixel is an opaque grey.
fn canvas_greys(capture: &serde_json::Value) -> Result<Vec<u8>> {
    ensure!(
        capture["width"] == WIDTH && capture["height"] == HEIGHT,
        "the canvas is {}×{}, not the board's {WIDTH}×{HEIGHT}",
        capture["width"],
        capture["height"]
    );
    let rgba: Vec<u8> = capture["rgba"]
        .as_array()
        .context("no pixels")?
        .iter()
        .map(|v| v.as_u64().and_then(|v| u8::try_from(v).ok()))
        .collect::<Option<_>>()
        .context("pixels are not bytes")?;
    ensure!(
        rgba.len() == WIDTH * HEIGHT * 4,
        "{} bytes of RGBA",
        rgba.len()
    );
    rgba.chunks(4)
        .enumerate()
        .map(|(i, p)| {
            ensure!(
                p[0] == p[1] && p[1] == p[2] && p[3] == 255,
                "pixel ({}, {}) is {p:?}, not an opaque grey",
                i % WIDTH,
                i / WIDTH
            );
            Ok(p[0])
        })
        .collect()
}

/// The host app's screen as greys 0–255: level n as n·17, a one-bit pixel as 0 or 255.
fn host_greys(host: &HostApp<'_>, mono: bool) -> Vec<u8> {
    let points = (0..HEIGHT).flat_map(|y| (0..WIDTH).map(move |x| (x, y)));
    if mono {
        let mut frame = MonoFrame::new();
        let Ok(()) = host.app().render(&mut frame);
        points.map(|(x, y)| 255 * frame.is_on(x, y) as u8).collect()
    } else {
        let mut frame = Frame::new();
        let Ok(()) = host.app().render(&mut frame);
        points.map(|(x, y)| frame.level(x, y) * 17).collect()
    }
}

/// Boots the LM3S6965 firmware in QEMU, presses RIGHT and SELECT, and compares the digit's
/// area of its screen with the page's after the same presses (the time line differs: the
/// board's is its own).
fn same_digit_as_qemu(page: &[u8]) -> Result<()> {
    let elf = harness::board::default_elf()?;
    let model = default_model();
    ensure!(
        harness::board::model_blob(&elf)? == std::fs::read(&model)?,
        "{} does not embed {}, the page's model",
        elf.display(),
        model.display()
    );
    step("web page: the same digit as the LM3S6965 firmware in QEMU after RIGHT, SELECT");
    let mut qemu = harness::qemu::Qemu::boot(&elf, harness::qemu::Options::default())?;
    qemu.press_and_wait(Button::Right)?;
    qemu.press_and_wait(Button::Select)?;
    let screen = qemu.capture()?;
    qemu.check_oled_errors()?;
    let blob = std::fs::read(&model)?;
    let mut host = HostApp::new(&blob);
    host.press(Button::Right, 0);
    host.press(Button::Select, 0);
    let area = host
        .app()
        .shown()
        .context("the host app drew no digit")?
        .digit
        .area();
    let (x0, y0) = (area.top_left.x as usize, area.top_left.y as usize);
    let (w, h) = (area.size.width as usize, area.size.height as usize);
    let mut differ = 0;
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            differ += (screen.get(x, y) * 17 != page[y * WIDTH + x]) as usize;
        }
    }
    ensure!(
        differ == 0,
        "{differ} pixels of the digit differ between the page and the board in QEMU"
    );
    println!("    the digit ({w}×{h} screen pixels) is the board's in QEMU, pixel for pixel");
    Ok(())
}

/// Where `name` is on PATH.
fn find_program(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A grey screen as a binary PGM, for looking at a failure.
fn write_pgm(path: &Path, greys: &[u8]) -> Result<()> {
    let mut bytes = format!("P5\n{WIDTH} {HEIGHT}\n255\n").into_bytes();
    bytes.extend_from_slice(greys);
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
