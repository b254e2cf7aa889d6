//! The OLED as QEMU draws it: a 512×256 capture, each pixel a 4×4 block, grey n as RGB n·17.

use anyhow::{Context, Result, bail, ensure};
use embedded_graphics::pixelcolor::{Gray4, GrayColor};
use embedded_graphics::prelude::*;
use std::path::Path;

pub const WIDTH: usize = 128;
pub const HEIGHT: usize = 64;
const MAGNIFY: usize = 4;

/// 128×64 grey levels 0..=15, row-major.
#[derive(Clone, PartialEq, Eq)]
pub struct Screen {
    pub pixels: Vec<u8>,
}

impl Screen {
    /// A black screen.
    pub fn blank() -> Self {
        Screen {
            pixels: vec![0; WIDTH * HEIGHT],
        }
    }

    pub fn get(&self, x: usize, y: usize) -> u8 {
        self.pixels[y * WIDTH + x]
    }

    pub fn set(&mut self, x: usize, y: usize, grey: u8) {
        self.pixels[y * WIDTH + x] = grey;
    }

    /// Decodes a capture, refusing anything that is not an exact 4× magnified 16-grey image.
    pub fn from_capture(path: &Path) -> Result<Self> {
        let img = image::open(path)
            .with_context(|| format!("cannot decode the capture {}", path.display()))?
            .to_rgb8();
        ensure!(
            img.dimensions() == ((WIDTH * MAGNIFY) as u32, (HEIGHT * MAGNIFY) as u32),
            "capture {} is {:?}, expected 512×256",
            path.display(),
            img.dimensions()
        );
        let mut screen = Screen::blank();
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                let first = img.get_pixel((x * MAGNIFY) as u32, (y * MAGNIFY) as u32).0;
                for dy in 0..MAGNIFY {
                    for dx in 0..MAGNIFY {
                        let p = img
                            .get_pixel((x * MAGNIFY + dx) as u32, (y * MAGNIFY + dy) as u32)
                            .0;
                        if p != first {
                            bail!("pixel ({x}, {y}) is not a uniform 4×4 block");
                        }
                    }
                }
                let [r, g, b] = first;
                if r != g || g != b || r % 17 != 0 {
                    bail!("pixel ({x}, {y}) is RGB {first:?}, not one of the 16 greys");
                }
                screen.set(x, y, r / 17);
            }
        }
        Ok(screen)
    }

    /// Writes the screen as QEMU captures it (512×256, grey n as RGB n·17), which
    /// [`Screen::from_capture`] reads back: the form of the committed expected screens.
    pub fn save_capture(&self, path: &Path) -> Result<()> {
        let img = image::RgbImage::from_fn(
            (WIDTH * MAGNIFY) as u32,
            (HEIGHT * MAGNIFY) as u32,
            |x, y| {
                let g = self.get(x as usize / MAGNIFY, y as usize / MAGNIFY) * 17;
                image::Rgb([g, g, g])
            },
        );
        img.save(path)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The first pixel where two screens differ, with both values, for a readable failure.
    pub fn first_difference(&self, other: &Screen) -> Option<(usize, usize, u8, u8)> {
        (0..HEIGHT)
            .flat_map(|y| (0..WIDTH).map(move |x| (x, y)))
            .find(|&(x, y)| self.get(x, y) != other.get(x, y))
            .map(|(x, y)| (x, y, self.get(x, y), other.get(x, y)))
    }

    /// How many pixels differ.
    pub fn count_differences(&self, other: &Screen) -> usize {
        self.pixels
            .iter()
            .zip(&other.pixels)
            .filter(|(a, b)| a != b)
            .count()
    }

    /// Text art, one hex digit a pixel: handy in failure messages.
    pub fn to_hex_art(&self) -> String {
        let mut s = String::with_capacity((WIDTH + 1) * HEIGHT);
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                s.push(char::from_digit(u32::from(self.get(x, y)), 16).unwrap_or('?'));
            }
            s.push('\n');
        }
        s
    }
}

/// The host draws into a `Screen` with the same embedded-graphics code the firmware runs, so a
/// test can compute the exact screen the board should show.
impl OriginDimensions for Screen {
    fn size(&self) -> Size {
        Size::new(WIDTH as u32, HEIGHT as u32)
    }
}

impl DrawTarget for Screen {
    type Color = Gray4;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, c) in pixels {
            if (0..WIDTH as i32).contains(&p.x) && (0..HEIGHT as i32).contains(&p.y) {
                self.set(p.x as usize, p.y as usize, c.luma());
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Screen\n{}", self.to_hex_art())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_capture(path: &Path, grey_at: impl Fn(u32, u32) -> [u8; 3]) {
        image::RgbImage::from_fn(512, 256, |x, y| image::Rgb(grey_at(x, y)))
            .save(path)
            .unwrap();
    }

    #[test]
    fn decodes_a_magnified_capture_to_grey_levels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        // Grey (x / 4 + y / 4) mod 16 at OLED pixel (x / 4, y / 4).
        write_capture(&path, |x, y| {
            let n = ((x / 4 + y / 4) % 16) as u8 * 17;
            [n, n, n]
        });
        let s = Screen::from_capture(&path).unwrap();
        assert_eq!(s.get(0, 0), 0);
        assert_eq!(s.get(5, 3), 8);
        assert_eq!(s.get(127, 63), (127 + 63) % 16);
    }

    #[test]
    fn rejects_blocks_that_are_not_uniform_or_not_grey() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        write_capture(&path, |x, y| {
            if (x, y) == (7, 2) {
                [17, 17, 17]
            } else {
                [0; 3]
            }
        });
        let err = Screen::from_capture(&path).unwrap_err().to_string();
        assert!(err.contains("(1, 0)"), "{err}");
        write_capture(&path, |_, _| [17, 0, 17]);
        assert!(Screen::from_capture(&path).is_err());
        write_capture(&path, |_, _| [16, 16, 16]);
        assert!(Screen::from_capture(&path).is_err());
    }
}
