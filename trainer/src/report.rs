//! What people would rather see than read: loss curves as PNGs, and a line of metrics per
//! evaluation point in a JSON-lines log (sample sheets are `checkpoint::sheet`'s).

use anyhow::{Context, Result};
use plotters::prelude::*;
use std::io::Write;
use std::path::Path;

/// Registers a system sans-serif font for plot labels once; plots are drawn without text when
/// none is found (text is a nicety, the curves are the point).
fn font_available() -> bool {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FONT.get_or_init(|| {
        let candidates = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        ];
        candidates
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .any(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
    })
}

/// One series of a line plot: a name and (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: &'a [(f64, f64)],
}

/// Draws line series against a shared x axis (e.g. the losses against the step) as a PNG.
pub fn line_plot(title: &str, x_label: &str, series: &[Series], path: &Path) -> Result<()> {
    const SIZE: (u32, u32) = (900, 500);
    // Drawn into memory and encoded by `image`, so plotters needs no encoder of its own.
    let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    let mut draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let all = series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in all.filter(|(x, y)| x.is_finite() && y.is_finite()) {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad = ((y1 - y0) * 0.05).max(1e-3);
        let text = font_available();
        let mut builder = ChartBuilder::on(&root);
        builder
            .margin(15)
            .x_label_area_size(if text { 35 } else { 5 })
            .y_label_area_size(if text { 55 } else { 5 });
        if text {
            builder.caption(title, ("sans-serif", 22));
        }
        let mut chart = builder.build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))?;
        // The mesh's tick labels need a font even with the axes hidden: no font, no mesh.
        if text {
            // Steps and epochs are counts: whole numbers on the axis.
            chart
                .configure_mesh()
                .x_desc(x_label)
                .x_label_formatter(&|x| format!("{}", x.round() as i64))
                .draw()?;
        }
        const COLORS: [RGBColor; 6] = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
        for (s, color) in series.iter().zip(COLORS.iter().cycle()) {
            let drawn = chart.draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))?;
            if text {
                drawn.label(s.name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            }
        }
        if text {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))?;
    let img = image::RgbImage::from_raw(SIZE.0, SIZE.1, rgb).expect("buffer matches the size");
    img.save(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Appends one JSON value as a line to a JSON-lines log.
pub fn append_jsonl(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(file, "{value}").with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_and_log_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let d: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64, 0.7 - i as f64 * 0.005))
            .collect();
        let g: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64, 0.7 + (i as f64 * 0.3).sin() * 0.1))
            .collect();
        let path = dir.path().join("losses.png");
        line_plot(
            "losses",
            "step",
            &[
                Series {
                    name: "D",
                    points: &d,
                },
                Series {
                    name: "G",
                    points: &g,
                },
            ],
            &path,
        )
        .unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (900, 500));
        assert!(
            img.pixels().any(|p| p.0 == [255, 0, 0]),
            "the red D curve is drawn"
        );
        let log = dir.path().join("m.jsonl");
        append_jsonl(&log, &serde_json::json!({"step": 1})).unwrap();
        append_jsonl(&log, &serde_json::json!({"step": 2})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "{\"step\":1}\n{\"step\":2}\n"
        );
    }
}
