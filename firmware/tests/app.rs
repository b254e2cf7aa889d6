//! The app: screen layout on embedded-graphics' MockDisplay, scripted buttons, reproducibility.

mod common;

use embedded_graphics::mock_display::MockDisplay;
use embedded_graphics::mono_font::{MonoTextStyle, ascii::FONT_6X10};
use embedded_graphics::pixelcolor::{BinaryColor, Gray4};
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};
use export::synth::random_model;
use firmware::app::{App, Button, Clock, DIGIT_ORIGIN, NoClock, SCALE, SeedMode, Shade, generate};
use firmware::format::{Model, WeightKind};
use firmware::frame::{Frame, MonoFrame};
use firmware::noise::Choice;

fn conditional() -> Vec<u8> {
    random_model(7, 32, 10, &[64, 128, 784]).expect("random model")
}

fn press(app: &mut App<'_>, buttons: &[Button]) {
    for &b in buttons {
        app.handle(b, &mut NoClock);
    }
}

fn frame(app: &App<'_>) -> Frame {
    let mut f = Frame::new();
    app.render(&mut f).unwrap();
    f
}

/// A MockDisplay that accepts a full-screen render (it is 64×64; the screen is 128×64).
fn mock() -> MockDisplay<Gray4> {
    let mut d = MockDisplay::new();
    d.set_allow_overdraw(true);
    d.set_allow_out_of_bounds_drawing(true);
    d
}

#[test]
fn left_half_shows_the_scaled_digit_in_a_frame() {
    let blob = conditional();
    let mut app: App<'_> = App::new(&blob, SeedMode::Sequence(42));
    press(
        &mut app,
        &[Button::Right, Button::Right, Button::Right, Button::Select],
    );
    let mut display = mock();
    app.render(&mut display).unwrap();

    let model = Model::from_bytes(&blob).unwrap();
    let (mut a, mut b) = ([0u8; 1024], [0u8; 1024]);
    let expected = generate(&model, 42, Choice::Digit(2), 0, &mut a, &mut b).unwrap();
    assert_eq!(expected.class, Some(2));
    let mut levels = std::collections::BTreeSet::new();
    for y in 0..64 {
        for x in 0..64 {
            let p = Point::new(x, y);
            let got = display.get_pixel(p).map(|c| c.luma());
            let inside = |v: i32, o: i32| (o..o + 28 * SCALE as i32).contains(&v);
            let want = if inside(x, DIGIT_ORIGIN.x) && inside(y, DIGIT_ORIGIN.y) {
                let (dx, dy) = ((x - 4) as usize / 2, (y - 4) as usize / 2);
                levels.insert(expected.digit.level(dx, dy));
                expected.digit.level(dx, dy)
            } else if (x == 3 || x == 60) && (3..=60).contains(&y)
                || (y == 3 || y == 60) && (3..=60).contains(&x)
            {
                4
            } else {
                0
            };
            assert_eq!(got, Some(want), "pixel ({x}, {y})");
        }
    }
    // A random model's digit still uses many grey levels: the test sees a real image.
    assert!(levels.len() > 4, "{levels:?}");
}

#[test]
fn right_half_shows_class_seed_walk_and_time() {
    let blob = conditional();
    let mut app: App<'_> = App::new(&blob, SeedMode::Sequence(0x2A));
    struct Ticks(u32);
    impl Clock for Ticks {
        fn micros(&mut self) -> Option<u32> {
            self.0 += 12_345;
            Some(self.0)
        }
    }
    app.handle(Button::Left, &mut Ticks(0));
    app.handle(Button::Select, &mut Ticks(0));
    app.handle(Button::Up, &mut Ticks(0));
    app.handle(Button::Up, &mut Ticks(0));
    let mut display = mock();
    app.render(&mut display.translated(Point::new(-64, 0)))
        .unwrap();

    let mut expected = mock();
    let style = MonoTextStyle::new(&FONT_6X10, Gray4::WHITE);
    for (row, text) in ["<  9  >", "drew 9", "#0000002A", "walk +2", "12.3 ms"]
        .iter()
        .enumerate()
    {
        Text::with_baseline(
            text,
            Point::new(2, 2 + 12 * row as i32),
            style,
            Baseline::Top,
        )
        .draw(&mut expected)
        .unwrap();
    }
    // Pixels the text does not set are black (MockDisplay: "no pixel" vs black differ).
    for y in 0..64 {
        for x in 0..64 {
            let p = Point::new(x, y);
            if expected.get_pixel(p).is_none() {
                expected.set_pixel(p, Some(Gray4::BLACK));
            }
        }
    }
    display.assert_eq(&expected);
}

#[test]
fn before_the_first_select_the_screen_asks_for_it() {
    let blob = conditional();
    let app: App<'_> = App::new(&blob, SeedMode::Sequence(1));
    let f = frame(&app);
    let lit = |x0: usize, x1: usize, y0: usize, y1: usize| {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| f.level(x, y) == 15)
            .count()
    };
    assert!(lit(4, 60, 4, 60) > 50, "the hint inside the box");
    assert!(lit(66, 128, 2, 12) > 20, "the class line");
    assert_eq!(
        lit(66, 128, 14, 64),
        0,
        "nothing else before a digit exists"
    );
}

#[test]
fn scripted_buttons_change_the_state_as_specified() {
    let blob = conditional();
    let mut app: App<'_> = App::new(&blob, SeedMode::Sequence(100));
    assert_eq!(app.choice(), Choice::Any);
    assert!(
        !app.handle(Button::Up, &mut NoClock),
        "no digit to walk yet"
    );
    press(&mut app, &[Button::Right, Button::Right]);
    assert_eq!(app.choice(), Choice::Digit(1));
    press(&mut app, &[Button::Left, Button::Left, Button::Left]);
    assert_eq!(app.choice(), Choice::Digit(9), "wraps through any");
    press(&mut app, &[Button::Right]);
    assert_eq!(app.choice(), Choice::Any);

    press(&mut app, &[Button::Select]);
    assert_eq!(app.seed(), 100);
    let first = app.shown().unwrap().clone();
    press(
        &mut app,
        &[
            Button::Right,
            Button::Right,
            Button::Right,
            Button::Right,
            Button::Select,
        ],
    );
    assert_eq!(app.seed(), 101);
    assert_eq!(app.shown().unwrap().class, Some(3));

    let after_select = app.shown().unwrap().clone();
    press(&mut app, &[Button::Up]);
    assert_eq!(app.steps(), 1);
    let walked = app.shown().unwrap().clone();
    assert_ne!(walked.digit, after_select.digit, "a step changes the image");
    assert_eq!(walked.class, Some(3), "walking keeps the class");
    press(&mut app, &[Button::Down]);
    assert_eq!(app.steps(), 0);
    assert_eq!(
        app.shown().unwrap(),
        &after_select,
        "down undoes up exactly"
    );
    assert_ne!(first.digit, after_select.digit);
    assert_eq!(app.micros(), None, "no clock, no time");
}

#[test]
fn same_seed_same_digit_and_the_host_can_predict_it() {
    let blob = conditional();
    let script = [
        Button::Right,
        Button::Select,
        Button::Up,
        Button::Up,
        Button::Down,
    ];
    let mut one: App<'_> = App::new(&blob, SeedMode::Sequence(9));
    let mut two: App<'_> = App::new(&blob, SeedMode::Sequence(9));
    press(&mut one, &script);
    press(&mut two, &script);
    assert_eq!(frame(&one), frame(&two));

    let model = Model::from_bytes(&blob).unwrap();
    let (mut a, mut b) = ([0u8; 1024], [0u8; 1024]);
    let predicted = generate(&model, 9, Choice::Digit(0), 1, &mut a, &mut b).unwrap();
    assert_eq!(one.shown().unwrap(), &predicted);

    let mut other: App<'_> = App::new(&blob, SeedMode::Sequence(10));
    press(&mut other, &script);
    assert_ne!(other.shown().unwrap().digit, predicted.digit);
}

#[test]
fn entropy_seeds_depend_on_the_time_between_presses() {
    let blob = conditional();
    struct At(u32);
    impl Clock for At {
        fn micros(&mut self) -> Option<u32> {
            Some(self.0)
        }
    }
    let seed_after = |t: u32| {
        let mut app: App<'_> = App::new(&blob, SeedMode::Entropy(1));
        app.handle(Button::Select, &mut At(t));
        app.seed()
    };
    assert_eq!(seed_after(1000), seed_after(1000));
    assert_ne!(seed_after(1000), seed_after(1001));
}

#[test]
fn unconditional_models_ignore_left_and_right() {
    let blob = random_model(3, 16, 0, &[32, 64]).expect("random model");
    let mut app: App<'_> = App::new(&blob, SeedMode::Sequence(5));
    assert!(!app.handle(Button::Left, &mut NoClock));
    assert!(!app.handle(Button::Right, &mut NoClock));
    assert!(app.handle(Button::Select, &mut NoClock));
    assert_eq!(app.shown().unwrap().class, None);
}

#[test]
fn a_bad_blob_shows_the_error_screen() {
    let mut blob = conditional();
    let n = blob.len();
    blob[n / 2] ^= 1;
    let mut app: App<'_> = App::new(&blob, SeedMode::Sequence(5));
    assert!(!app.handle(Button::Select, &mut NoClock));
    let mut display = mock();
    app.render(&mut display).unwrap();
    let mut expected = mock();
    let style = MonoTextStyle::new(&FONT_6X10, Gray4::WHITE);
    Text::with_baseline("MODEL ERROR", Point::new(4, 4), style, Baseline::Top)
        .draw(&mut expected)
        .unwrap();
    Text::with_baseline(
        "model CRC mismatch",
        Point::new(4, 15),
        style,
        Baseline::Top,
    )
    .draw(&mut expected)
    .unwrap();
    for y in 0..26 {
        for x in 0..64 {
            let p = Point::new(x, y);
            assert_eq!(
                display.get_pixel(p).unwrap().luma(),
                expected.get_pixel(p).map_or(0, |c| c.luma()),
                "({x}, {y})"
            );
        }
    }
}

#[test]
fn a_model_wider_than_the_buffers_is_refused() {
    let blob = common::model(1, 8, 0, &[300, 16], &[WeightKind::Int8], false)
        .to_bytes()
        .unwrap();
    let app: App<'_, 256> = App::new(&blob, SeedMode::Sequence(0));
    assert!(app.model().is_err());
    let app: App<'_, 300> = App::new(&blob, SeedMode::Sequence(0));
    assert!(app.model().is_ok());
}

#[test]
fn one_bit_displays_get_ordered_dithering() {
    let count = |level: u8| {
        (0..4)
            .flat_map(|y| (0..4).map(move |x| (x, y)))
            .filter(|&(x, y)| BinaryColor::shade(level, x, y) == BinaryColor::On)
            .count()
    };
    assert_eq!(count(0), 0);
    assert_eq!(count(15), 16);
    let counts: Vec<usize> = (0..16).map(count).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert!((7..=9).contains(&count(8)));
}

/// The one-bit screen of the SSD1306 boards, on a one-bit MockDisplay: the same layout as the
/// grey screen, the digit's pixels through the ordered-dithering threshold (so a grey area keeps
/// its mean brightness), the frame and text solid.
#[test]
fn one_bit_screens_show_the_dithered_digit() {
    let blob = conditional();
    let mut app: App<'_> = App::new(&blob, SeedMode::Sequence(7));
    press(&mut app, &[Button::Right, Button::Right, Button::Select]);
    let grey = frame(&app);
    let mut display: MockDisplay<BinaryColor> = MockDisplay::new();
    display.set_allow_overdraw(true);
    display.set_allow_out_of_bounds_drawing(true);
    app.render(&mut display).unwrap();

    let digit = &app.shown().unwrap().digit;
    let (mut lit, mut grey_sum, mut mid_greys) = (0u32, 0u32, 0);
    for y in 0..64 {
        for x in 0..64 {
            let level = grey.level(x as usize, y as usize);
            let on = display.get_pixel(Point::new(x, y)) == Some(BinaryColor::On);
            let inside = |v: i32| (DIGIT_ORIGIN.x..DIGIT_ORIGIN.x + 56).contains(&v);
            if !(inside(x) && inside(y)) {
                // The frame and the text are solid: lit wherever the grey screen is not black.
                assert_eq!(on, level > 0, "pixel ({x}, {y})");
            } else {
                assert_eq!(
                    on,
                    BinaryColor::shade(level, x, y).is_on(),
                    "pixel ({x}, {y})"
                );
                let want = digit.level((x as usize - 4) / 2, (y as usize - 4) / 2);
                assert_eq!(level, want, "grey screen at ({x}, {y})");
                lit += on as u32;
                grey_sum += level as u32;
                mid_greys += (3..=12).contains(&level) as u32;
            }
        }
    }
    // Grey levels really occur (not a black-and-white image), and dithering keeps the mean:
    // over 56 × 56 pixels the lit share is within 2% of the mean level / 15.
    assert!(mid_greys > 100, "{mid_greys} mid-grey pixels");
    let (lit_share, mean) = (lit as f64 / 3136.0, grey_sum as f64 / 3136.0 / 15.0);
    assert!(
        (lit_share - mean).abs() < 0.02,
        "lit {lit_share:.3} vs grey {mean:.3}"
    );
}

#[test]
fn mono_frame_uses_the_ssd1306_page_layout() {
    let mut f = MonoFrame::new();
    for (x, y) in [(0, 0), (1, 0), (0, 9), (127, 63)] {
        Pixel(Point::new(x, y), BinaryColor::On)
            .draw(&mut f)
            .unwrap();
    }
    Pixel(Point::new(128, 0), BinaryColor::On)
        .draw(&mut f)
        .unwrap();
    Pixel(Point::new(1, 0), BinaryColor::Off)
        .draw(&mut f)
        .unwrap();
    let b = f.as_bytes();
    assert_eq!((b[0], b[1], b[128], b[1023]), (0x01, 0x00, 0x02, 0x80));
    assert_eq!(b.iter().map(|b| b.count_ones()).sum::<u32>(), 3);
    assert!(f.is_on(0, 9) && !f.is_on(1, 0) && !f.is_on(128, 0));
}

#[test]
fn frame_uses_the_ssd0323_layout() {
    let mut f = Frame::new();
    Pixel(Point::new(0, 0), Gray4::new(0xA))
        .draw(&mut f)
        .unwrap();
    Pixel(Point::new(1, 0), Gray4::new(0x5))
        .draw(&mut f)
        .unwrap();
    Pixel(Point::new(127, 63), Gray4::new(0x3))
        .draw(&mut f)
        .unwrap();
    Pixel(Point::new(128, 0), Gray4::new(0xF))
        .draw(&mut f)
        .unwrap();
    assert_eq!(f.as_bytes()[0], 0xA5);
    assert_eq!(f.as_bytes()[4095], 0x03);
    assert_eq!((f.level(0, 0), f.level(1, 0), f.level(127, 63)), (10, 5, 3));
}
