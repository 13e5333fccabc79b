//! Charts of the statistics, drawn by plotters on any [`DrawingBackend`]: the status pages use
//! [`svg`], a report can hand the same functions a bitmap backend. Text is set in DejaVu Sans,
//! embedded in the binary (plotters' `ab_glyph` font support, registered once under
//! [`FONT_FAMILY`]), so charts render without fontconfig or system fonts. The SVG backend
//! escapes text, so labels from mail (senders, hosts) cannot inject markup.

use crate::stats::StatsRow;
use plotters::{
    coord::{Shift, ranged1d::SegmentValue},
    prelude::*,
};
use std::sync::OnceLock;

/// The family name the embedded font is registered under.
pub const FONT_FAMILY: &str = "sans-serif";
/// DejaVu Sans 2.37 (Debian's fonts-dejavu-core); licence in `assets/fonts/DejaVuSans.LICENSE`.
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// Longest label drawn; longer ones are cut with an ellipsis (the table has the full text).
const MAX_LABEL_CHARS: usize = 32;

pub const DELIVERED: RGBColor = RGBColor(46, 125, 50);
pub const DEFERRED: RGBColor = RGBColor(249, 168, 37);
pub const BOUNCED: RGBColor = RGBColor(198, 40, 40);
pub const EXPIRED: RGBColor = RGBColor(106, 27, 154);
pub const NEUTRAL: RGBColor = RGBColor(21, 101, 192);

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the embedded chart font cannot be read")]
    Font,
    #[error("drawing a chart failed: {0}")]
    Draw(String),
}

fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> ChartError {
    ChartError::Draw(e.to_string())
}

/// Registers the embedded font with plotters (once per process).
pub fn register_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok { Ok(()) } else { Err(ChartError::Font) }
}

/// One bar segment per label: a name for the legend, its colour and a value per label.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub values: Vec<u64>,
}

impl Series {
    pub fn new(name: &str, color: RGBColor, values: Vec<u64>) -> Self {
        Series {
            name: name.to_string(),
            color,
            values,
        }
    }
}

/// Delivered, deferred, bounced and expired attempts of each row.
pub fn status_series(rows: &[StatsRow]) -> Vec<Series> {
    let values = |f: fn(&StatsRow) -> u64| rows.iter().map(f).collect::<Vec<_>>();
    vec![
        Series::new("delivered", DELIVERED, values(|r| r.counts.delivered)),
        Series::new("deferred", DEFERRED, values(|r| r.counts.deferred)),
        Series::new("bounced", BOUNCED, values(|r| r.counts.bounced)),
        Series::new("expired", EXPIRED, values(|r| r.counts.expired)),
    ]
}

fn short_label(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        return label.to_string();
    }
    let mut cut: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Per label, the running totals of the series: bar `k` of a stack reaches the sum of series
/// `0..=k`. Drawn tallest first, each shorter bar covers the lower part of the one before.
fn stacked(series: &[Series], labels: usize) -> Vec<Vec<u64>> {
    let mut sums = vec![0u64; labels];
    series
        .iter()
        .map(|s| {
            for (i, sum) in sums.iter_mut().enumerate() {
                *sum += s.values.get(i).copied().unwrap_or(0);
            }
            sums.clone()
        })
        .collect()
}

fn axis_top(stacks: &[Vec<u64>]) -> u64 {
    let max = stacks
        .last()
        .and_then(|s| s.iter().max().copied())
        .unwrap_or(0);
    // Some headroom, and a non-empty axis when everything is zero.
    (max + max / 10).max(1)
}

/// The series' names and colours, framed.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), ChartError> {
    chart
        .configure_series_labels()
        .label_font((FONT_FAMILY, 11))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(draw_err)
}

/// One segment per label: plotters counts both ends of an integer range, so `n` labels span
/// `0..n - 1` (a range of `0..n` leaves an empty slot after the last bar).
fn segments(
    n: u32,
) -> plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordu32> {
    (0u32..n.saturating_sub(1)).into_segmented()
}

/// Vertical stacked bars, one per label (months, days, hours ...).
pub fn vertical_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    labels: &[String],
    series: &[Series],
) -> Result<(), ChartError> {
    register_font()?;
    root.fill(&WHITE).map_err(draw_err)?;
    let n = labels.len() as u32;
    let stacks = stacked(series, labels.len());
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT_FAMILY, 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(segments(n), 0u64..axis_top(&stacks))
        .map_err(draw_err)?;
    let label_of = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) => labels
            .get(*i as usize)
            .map(|l| short_label(l))
            .unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(labels.len().max(1))
        .x_label_formatter(&label_of)
        .label_style((FONT_FAMILY, 11))
        .draw()
        .map_err(draw_err)?;
    for (s, stack) in series.iter().zip(&stacks).rev() {
        let color = s.color;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(color.filled())
                    .margin(2)
                    .data(stack.iter().enumerate().map(|(i, v)| (i as u32, *v))),
            )
            .map_err(draw_err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    // A series per bar (the summary) is named by the axis already.
    let bar_per_series = series.len() == labels.len()
        && series
            .iter()
            .all(|s| s.values.iter().filter(|v| **v > 0).count() <= 1);
    if series.len() > 1 && !bar_per_series {
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    root.present().map_err(draw_err)
}

/// Horizontal stacked bars, one per label, first label on top (hosts, senders, categories).
pub fn horizontal_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    labels: &[String],
    series: &[Series],
) -> Result<(), ChartError> {
    register_font()?;
    root.fill(&WHITE).map_err(draw_err)?;
    let n = labels.len() as u32;
    let stacks = stacked(series, labels.len());
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT_FAMILY, 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(220)
        .build_cartesian_2d(0u64..axis_top(&stacks), segments(n))
        .map_err(draw_err)?;
    // Segment 0 is at the bottom: the first label goes to the top one.
    let label_of = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) if *i < n => labels
            .get((n - 1 - *i) as usize)
            .map(|l| short_label(l))
            .unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(labels.len().max(1))
        .y_label_formatter(&label_of)
        .label_style((FONT_FAMILY, 11))
        .draw()
        .map_err(draw_err)?;
    for (s, stack) in series.iter().zip(&stacks).rev() {
        let color = s.color;
        chart
            .draw_series(
                Histogram::horizontal(&chart)
                    .style(color.filled())
                    .margin(2)
                    .data(
                        stack
                            .iter()
                            .enumerate()
                            .map(|(i, v)| (n - 1 - i as u32, *v)),
                    ),
            )
            .map_err(draw_err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    if series.len() > 1 {
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    }
    root.present().map_err(draw_err)
}

/// Draws with `draw` on an SVG canvas of `width` × `height` pixels; returns the SVG document.
pub fn svg(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), ChartError>,
) -> Result<String, ChartError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        draw(&root)?;
    }
    Ok(out)
}

/// Draws with `draw` on an RGB canvas of `width` × `height` pixels; returns a PNG file (for
/// mail, where SVG is not shown).
pub fn png(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<(), ChartError>,
) -> Result<Vec<u8>, ChartError> {
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        draw(&root)?;
    }
    let mut out = Vec::new();
    let mut encoder = ::png::Encoder::new(&mut out, width, height);
    encoder.set_color(::png::ColorType::Rgb);
    encoder.set_depth(::png::BitDepth::Eight);
    let encode = |e: ::png::EncodingError| ChartError::Draw(format!("PNG encoding: {e}"));
    let mut writer = encoder.write_header().map_err(encode)?;
    writer.write_image_data(&pixels).map_err(encode)?;
    writer.finish().map_err(encode)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
