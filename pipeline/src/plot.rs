//! `rlpt plot RUN`: one PNG of a training run's `metrics.jsonl` — reward (overall and
//! per task), response length, loss, KL, clip fraction, grad norm, learning rate and
//! groups kept, each over steps — drawn with plotters. The font (DejaVu Sans) is
//! embedded, so it draws on machines without fonts. A panel whose metric the run did
//! not log (an SFT run has no reward) says so.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use rlpt_engine::IoContext;
use serde_json::Value;

use crate::error::{Error, Result};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const WIDTH: u32 = 1400;
const HEIGHT: u32 = 1500;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One panel: its title and the metrics (JSON paths, `*` matching any key) it draws.
struct Panel {
    title: &'static str,
    paths: &'static [&'static str],
}

const PANELS: [Panel; 8] = [
    Panel {
        title: "reward (mean)",
        paths: &["reward_mean", "tasks/*/reward_mean"],
    },
    Panel {
        title: "response length (tokens)",
        paths: &["response_length_mean"],
    },
    Panel {
        title: "loss",
        paths: &["loss"],
    },
    Panel {
        title: "KL to the reference",
        paths: &["kl"],
    },
    Panel {
        title: "clip fraction",
        paths: &["clip_fraction"],
    },
    Panel {
        title: "grad norm (before clipping)",
        paths: &["grad_norm"],
    },
    Panel {
        title: "learning rate",
        paths: &["lr"],
    },
    Panel {
        title: "groups kept / sampled",
        paths: &["groups_kept", "groups_sampled"],
    },
];

/// A named series of (step, value).
type Series = (String, Vec<(f64, f64)>);

/// Writes the plot of the run in `run` (its `metrics.jsonl`) to `output`, by default
/// `RUN/metrics.png`; returns the file written.
pub fn plot(run: &Path, output: Option<&Path>) -> Result<PathBuf> {
    let metrics = run.join(rlpt_trainer::run::METRICS);
    let lines = read_lines(&metrics)?;
    if lines.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no steps logged yet",
            metrics.display()
        )));
    }
    let output = output.map_or_else(|| run.join("metrics.png"), Path::to_path_buf);
    // Written beside it, then renamed: the encoder picks the format by extension.
    let name = output.file_name().map_or_else(
        || "metrics.png".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let partial = output.with_file_name(format!(".{name}.tmp.png"));
    draw(&lines, &partial, &run.display().to_string())?;
    let file = std::fs::File::open(&partial).at(&partial)?;
    rlpt_engine::atomic::commit(file, &partial, &output)?;
    Ok(output)
}

/// The JSON lines of `path`, a bad line an error naming its number.
fn read_lines(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).at(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                Error::Usage(format!("{} line {}: not JSON: {e}", path.display(), i + 1))
            })
        })
        .collect()
}

/// The series `path` names across `lines`: one per key where it has a `*`.
fn series(lines: &[Value], path: &str) -> Vec<Series> {
    let mut found: Vec<Series> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let step = line["step"].as_f64().unwrap_or((i + 1) as f64);
        for (name, value) in lookup(line, path, String::new()) {
            match found.iter_mut().find(|(n, _)| *n == name) {
                Some((_, points)) => points.push((step, value)),
                None => found.push((name, vec![(step, value)])),
            }
        }
    }
    found
}

/// The numbers at `path` below `value`, each with its name (the path, `*` resolved).
fn lookup(value: &Value, path: &str, name: String) -> Vec<(String, f64)> {
    let (head, rest) = path.split_once('/').unwrap_or((path, ""));
    let join = |key: &str| {
        if name.is_empty() {
            key.to_string()
        } else {
            format!("{name}/{key}")
        }
    };
    let children: Vec<(String, &Value)> = if head == "*" {
        value
            .as_object()
            .map(|fields| fields.iter().map(|(k, v)| (join(k), v)).collect())
            .unwrap_or_default()
    } else {
        value
            .get(head)
            .map(|v| vec![(join(head), v)])
            .unwrap_or_default()
    };
    children
        .into_iter()
        .flat_map(|(name, child)| {
            if rest.is_empty() {
                child.as_f64().map(|n| (name, n)).into_iter().collect()
            } else {
                lookup(child, rest, name)
            }
        })
        .collect()
}

fn draw(lines: &[Value], path: &Path, title: &str) -> Result<()> {
    let drawing =
        |e: &dyn std::fmt::Display| Error::Usage(format!("drawing {}: {e}", path.display()));
    register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| drawing(&"the embedded font does not load"))?;
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| drawing(&e))?;
    let root = root
        .titled(&format!("rlpt run {title}"), ("sans-serif", 28))
        .map_err(|e| drawing(&e))?;
    for (area, panel) in root.split_evenly((4, 2)).iter().zip(&PANELS) {
        let drawn: Vec<Series> = panel.paths.iter().flat_map(|p| series(lines, p)).collect();
        draw_panel(area, panel.title, &drawn).map_err(|e| drawing(&e))?;
    }
    root.present().map_err(|e| drawing(&e))
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    drawn: &[Series],
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let points = drawn.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_min, mut y_max) = (1f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if drawn.is_empty() {
        let caption = format!("{title}: not logged by this run");
        area.draw_text(&caption, &("sans-serif", 20).into(), (40, 40))?;
        return Ok(());
    }
    let pad = if y_max > y_min {
        (y_max - y_min) * 0.05
    } else {
        (y_max.abs() * 0.05).max(1e-3)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(70)
        .build_cartesian_2d(1f64..x_max.max(2.0), (y_min - pad)..(y_max + pad))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|step| format!("{step:.0}"))
        .y_label_formatter(&|value| tick(*value))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (name, points)) in drawn.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    if drawn.len() > 1 {
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

/// A y-axis label: plain between 0.01 and 10,000, else in scientific notation.
fn tick(value: f64) -> String {
    let size = value.abs();
    if size < 1e-12 {
        "0".into()
    } else if (0.01..10_000.0).contains(&size) {
        format!("{value:.3}")
    } else {
        format!("{value:.1e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_paths_give_one_series_per_key() {
        let lines: Vec<Value> = (1..=3)
            .map(|step| {
                serde_json::json!({
                    "step": step, "reward_mean": 0.1 * step as f64, "loss": null,
                    "tasks": {"asr": {"reward_mean": 0.5}, "next-token": {"reward_mean": 0.25}}
                })
            })
            .collect();
        let tasks = series(&lines, "tasks/*/reward_mean");
        let names: Vec<&str> = tasks.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["tasks/asr/reward_mean", "tasks/next-token/reward_mean"]
        );
        assert_eq!(tasks[0].1, [(1.0, 0.5), (2.0, 0.5), (3.0, 0.5)]);
        assert!(series(&lines, "loss").is_empty(), "null is not a point");
        assert_eq!(series(&lines, "reward_mean")[0].1.len(), 3);
    }
}
