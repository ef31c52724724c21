//! The run as a PNG (plotters): listeners connected, join latency (p99 of each second's joins)
//! and the server's CPU, one panel each over the same seconds.
//!
//! Text needs a font, and plotters' usual font path needs fontconfig and freetype at build
//! time; so text goes through `ab_glyph` with a TrueType file read at run time (Debian's
//! fonts-dejavu-core). Without a readable font the chart is still drawn, without any text.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::config::Size;
use crate::report::Tick;

/// The family name the font is registered under.
const FAMILY: &str = "sans-serif";

/// Whether the font was registered (once per process: plotters keeps it for good).
static FONT: OnceLock<bool> = OnceLock::new();

/// Registers the font at `path`; false if it cannot be read or parsed.
fn register(path: &Path) -> bool {
    *FONT.get_or_init(|| {
        let Ok(bytes) = std::fs::read(path) else {
            return false;
        };
        // plotters wants the font for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok()
    })
}

/// Draws `timeline` into a PNG at `path`; returns whether it has text.
pub fn draw(path: &Path, size: Size, timeline: &[Tick], font: &Path) -> Result<bool> {
    let text = register(font);
    render(path, size, timeline, text)?;
    Ok(text)
}

fn render(path: &Path, size: Size, timeline: &[Tick], text: bool) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = BitMapBackend::new(path, (size.width, size.height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let t_max = timeline.last().map_or(1, |t| t.t).max(1) as f64;
    let series = |f: &dyn Fn(&Tick) -> Option<f64>| -> Vec<(f64, f64)> {
        timeline
            .iter()
            .filter_map(|t| f(t).map(|v| (t.t as f64, v)))
            .collect()
    };
    let panels = [
        (
            "listeners connected",
            std::iter::once((0.0, 0.0))
                .chain(series(&|t| Some(t.connected as f64)))
                .collect(),
            BLUE,
        ),
        (
            "join latency, p99 of the second's joins (ms)",
            series(&|t| t.join_p99_ms),
            RED,
        ),
        ("server CPU (cores)", series(&|t| t.server_cpu), GREEN),
    ];
    let areas = root.split_evenly((panels.len(), 1));
    for (area, (title, points, color)) in areas.iter().zip(panels) {
        let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
        let mut builder = ChartBuilder::on(area);
        builder.margin(12);
        if text {
            builder
                .caption(title, (FAMILY, 18))
                .x_label_area_size(28)
                .y_label_area_size(64);
        }
        let mut chart = builder
            .build_cartesian_2d(0.0..t_max, 0.0..y_max)
            .map_err(|e| err(&e))?;
        if text {
            chart
                .configure_mesh()
                .x_desc("seconds")
                .label_style((FAMILY, 13))
                .draw()
                .map_err(|e| err(&e))?;
        } else {
            chart
                .plotting_area()
                .draw(&Rectangle::new(
                    [(0.0, 0.0), (t_max, y_max)],
                    BLACK.stroke_width(1),
                ))
                .map_err(|e| err(&e))?;
        }
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline() -> Vec<Tick> {
        (1..=20)
            .map(|t| Tick {
                t,
                connected: t * 50,
                joins: 50,
                join_p99_ms: Some(3.0 + t as f64 / 10.0),
                server_cpu: (t % 3 != 0).then_some(0.2),
                server_rss_kib: Some(50_000),
            })
            .collect()
    }

    /// Width and height from the PNG's IHDR chunk, after checking the signature.
    pub(crate) fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
        let sig = b"\x89PNG\r\n\x1a\n";
        if bytes.len() < 24 || &bytes[..8] != sig || &bytes[12..16] != b"IHDR" {
            return None;
        }
        let be =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Some((be(16), be(20)))
    }

    #[test]
    fn draws_a_png_of_the_asked_size_with_or_without_text() {
        let size = Size {
            width: 640,
            height: 480,
        };
        for text in [false, true] {
            if text && !Path::new(crate::config::DEFAULT_FONT).exists() {
                continue; // fonts-dejavu-core is a test package; without it, only no text
            }
            let path = std::env::temp_dir().join(format!(
                "tribune-load-chart-{}-{text}.png",
                std::process::id()
            ));
            if text {
                assert!(
                    draw(
                        &path,
                        size,
                        &timeline(),
                        Path::new(crate::config::DEFAULT_FONT)
                    )
                    .unwrap()
                );
            } else {
                render(&path, size, &timeline(), false).unwrap();
            }
            let bytes = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).ok();
            assert_eq!(png_size(&bytes), Some((640, 480)));
        }
    }

    #[test]
    fn an_empty_run_still_draws() {
        let path =
            std::env::temp_dir().join(format!("tribune-load-empty-{}.png", std::process::id()));
        render(
            &path,
            Size {
                width: 300,
                height: 200,
            },
            &[],
            false,
        )
        .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(png_size(&bytes), Some((300, 200)));
    }
}
