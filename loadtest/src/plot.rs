//! `--plot FILE`: delivery latency over the run (p50, p99 and max of each
//! second) and the latency distribution, as one SVG.

use crate::report::Report;
use crate::stats::SecondStats;
use anyhow::anyhow;
use plotters::prelude::*;
use std::path::Path;

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e}")
}

/// Writes the report's timeline and distribution to `path` (SVG).
pub fn write_svg(path: &Path, report: &Report) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let title = format!(
        "{} {:?}: {} canvases x {} members, {} publishers",
        report.scenario, report.kind, report.canvases, report.members, report.publishers
    );
    let body = root.titled(&title, ("sans-serif", 18)).map_err(err)?;
    let (top, bottom) = body.split_vertically(380);

    let timeline = &report.timeline;
    let seconds = timeline.len().max(1) as f64;
    let max_ms = timeline
        .iter()
        .map(|s| s.max_ms)
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.05;
    let mut chart = ChartBuilder::on(&top)
        .caption("Delivery latency per second", ("sans-serif", 16))
        .margin(20)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..seconds, 0f64..max_ms)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("second of the run")
        .y_desc("latency (ms)")
        .draw()
        .map_err(err)?;
    type Line = (&'static str, RGBColor, fn(&SecondStats) -> f64);
    let lines: [Line; 3] = [
        ("p50", BLUE, |s| s.p50_ms),
        ("p99", RED, |s| s.p99_ms),
        ("max", RGBColor(120, 120, 120), |s| s.max_ms),
    ];
    for (name, color, value) in lines {
        let points = timeline
            .iter()
            .filter(|s| s.deliveries > 0)
            .map(|s| (s.second as f64 + 0.5, value(s)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;

    let buckets = &report.distribution;
    let hi = buckets.last().map_or(10.0, |b| b.0).max(0.1);
    let top_count = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1);
    let mut dist = ChartBuilder::on(&bottom)
        .caption("Latency distribution", ("sans-serif", 16))
        .margin(20)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d((0.01f64..hi).log_scale(), 0u64..top_count + top_count / 10)
        .map_err(err)?;
    dist.configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc("deliveries")
        .draw()
        .map_err(err)?;
    let mut lower = 0.01f64;
    let bars: Vec<_> = buckets
        .iter()
        .map(|&(upper, n)| {
            let r = Rectangle::new([(lower, 0), (upper, n)], BLUE.mix(0.6).filled());
            lower = upper;
            r
        })
        .collect();
    dist.draw_series(bars).map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
