//! End-to-end: the LM3S6965 firmware in QEMU, seen from the outside as a user would: the OLED
//! captured over QMP, the buttons pressed as keys, the firmware's log on stdout.

use anyhow::Result;
use embedded_graphics::mono_font::{MonoTextStyle, ascii::FONT_6X10};
use embedded_graphics::pixelcolor::Gray4;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};
use mcugan_tests::board;
use mcugan_tests::qemu::{Key, Options, Qemu};
use mcugan_tests::screen::{HEIGHT, Screen, WIDTH};

/// The stand-in screen, computed independently of the firmware: the title in white, and from
/// row 16 down sixteen 8-pixel bars, bar i grey (offset + i) mod 16.
fn stand_in_screen(offset: u8) -> Screen {
    let mut s = Screen::blank();
    let style = MonoTextStyle::new(&FONT_6X10, Gray4::WHITE);
    Text::with_baseline("mcugan lm3s6965", Point::zero(), style, Baseline::Top)
        .draw(&mut s)
        .unwrap();
    for y in 16..HEIGHT {
        for x in 0..WIDTH {
            s.set(x, y, (offset + (x / 8) as u8) % 16);
        }
    }
    s
}

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

/// The value of `key=` in a firmware log line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

#[test]
fn boots_and_shows_the_first_frame() -> Result<()> {
    let elf = board::default_elf()?;
    let mut qemu = Qemu::boot(&elf, Options::default())?;
    eprintln!("boot to ready: {:?}", qemu.boot_time);
    let ready = qemu.log().last().cloned().unwrap_or_default();
    assert_eq!(field(&ready, "period_ns"), Some(80), "{ready}");
    let used = field(&ready, "stack_used").expect("stack_used");
    let capacity = field(&ready, "stack_capacity").expect("stack_capacity");
    assert!(used > 0 && used < capacity, "{ready}");
    assert_screen(&qemu.capture()?, &stand_in_screen(0), "first frame");
    qemu.check_oled_errors()
}

#[test]
fn buttons_act_once_per_release_in_order() -> Result<()> {
    let elf = board::default_elf()?;
    let mut qemu = Qemu::boot(&elf, Options::default())?;
    // Right twice: the first release is QEMU's first level change for that key, the second a
    // full press and release through the debouncer.
    let script = [
        (Key::Right, 1),
        (Key::Right, 2),
        (Key::Left, 1),
        (Key::Up, 5),
        (Key::Down, 1),
        (Key::Select, 9),
        (Key::Select, 1),
    ];
    for (frame, (key, offset)) in script.into_iter().enumerate() {
        let line = qemu.press_and_wait(key)?;
        assert_eq!(field(&line, "frame"), Some(frame as u64 + 1), "{line}");
        assert_eq!(field(&line, "offset"), Some(offset), "{line}");
        let what = format!("after {key:?} (press {})", frame + 1);
        assert_screen(&qemu.capture()?, &stand_in_screen(offset as u8), &what);
    }
    qemu.check_oled_errors()
}

#[test]
fn instruction_counts_are_deterministic_under_icount() -> Result<()> {
    let elf = board::default_elf()?;
    let options = Options {
        icount_shift: Some(0),
        ..Options::default()
    };
    let mut ticks = Vec::new();
    for _ in 0..2 {
        let mut qemu = Qemu::boot(&elf, options.clone())?;
        let ready = qemu.log().last().cloned().unwrap_or_default();
        ticks.push(field(&ready, "ticks").expect("ticks"));
        let line = qemu.press_and_wait(Key::Select)?;
        ticks.push(field(&line, "ticks").expect("ticks"));
        qemu.check_oled_errors()?;
    }
    // Drawing and flushing a frame takes thousands of instructions: 80 per tick at shift 0.
    assert!(ticks.iter().all(|&t| t > 100), "{ticks:?}");
    assert_eq!(
        ticks[..2],
        ticks[2..],
        "same binary, same instruction counts"
    );
    eprintln!(
        "first frame: {} instructions; a redraw: {}",
        ticks[0] * 80,
        ticks[1] * 80
    );
    Ok(())
}
