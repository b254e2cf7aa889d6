//! Sheets of sample digits as greyscale PNGs: the run folder's `samples.png`, and export's
//! float-vs-fixed comparison.

use crate::config::IMAGE_SIDE as SIDE;
use crate::file::{CheckpointError, write_atomic};
use image::{GrayImage, Luma};
use std::path::Path;

/// Writes `images` (rows of 784 f32 pixels in [0, 1]) as a grid of `cols` columns, each image
/// scaled by `scale` with a 2-pixel dark gutter, as a greyscale PNG.
pub fn sample_grid(
    images: &[f32],
    cols: usize,
    scale: usize,
    path: &Path,
) -> Result<(), CheckpointError> {
    let n = images.len() / (SIDE * SIDE);
    if n == 0 || cols == 0 {
        return Err(CheckpointError::NoImages { path: path.into() });
    }
    let rows = n.div_ceil(cols);
    let cell = SIDE * scale + 2;
    let mut img = GrayImage::from_pixel(
        (cols * cell + 2) as u32,
        (rows * cell + 2) as u32,
        Luma([40]),
    );
    for (k, pixels) in images.chunks_exact(SIDE * SIDE).enumerate() {
        let (x0, y0) = ((k % cols) * cell + 2, (k / cols) * cell + 2);
        for (i, &p) in pixels.iter().enumerate() {
            let v = (p.clamp(0.0, 1.0) * 255.0).round() as u8;
            for dy in 0..scale {
                for dx in 0..scale {
                    img.put_pixel(
                        (x0 + (i % SIDE) * scale + dx) as u32,
                        (y0 + (i / SIDE) * scale + dy) as u32,
                        Luma([v]),
                    );
                }
            }
        }
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| CheckpointError::Io {
            path: path.into(),
            source: std::io::Error::other(e),
        })?;
    write_atomic(path, &png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_has_the_right_size_and_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        let mut images = vec![0f32; 3 * 784];
        images[784 + 28 + 1] = 1.0; // image 1, pixel (1, 1)
        sample_grid(&images, 2, 2, &path).unwrap();
        let img = image::open(&path).unwrap().to_luma8();
        let cell = 28 * 2 + 2;
        assert_eq!(
            img.dimensions(),
            ((2 * cell + 2) as u32, (2 * cell + 2) as u32)
        );
        let (x, y) = (cell + 2 + 2, 2 + 2);
        assert_eq!(img.get_pixel(x as u32, y as u32).0[0], 255);
        assert_eq!(img.get_pixel(x as u32 + 1, y as u32 + 1).0[0], 255);
        assert_eq!(img.get_pixel(2, 2).0[0], 0);
        assert_eq!(img.get_pixel(0, 0).0[0], 40);
    }
}
