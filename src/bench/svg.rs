//! A hand-written SVG chart of latency by percentile, the way HdrHistogram's plotter draws it: the x axis is
//! logarithmic in 1/(1-percentile), from 0 % to 99.999 %, so the tail gets as much room as the body; the y axis is
//! linear latency. Several series (say xdptcp and Linux) share one chart.

use std::fmt::Write;

use hdrhistogram::Histogram;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 64.0;
/// Decades of 1/(1-p) on the x axis: 10^5 is 99.999 %.
const DECADES: f64 = 5.0;
const COLORS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/// One line of the chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    /// (quantile in 0..=1, latency in ns), in increasing quantile order.
    pub points: Vec<(f64, u64)>,
}

impl Series {
    /// The percentile distribution of a histogram (the rows of its `.hgrm`).
    pub fn from_histogram(name: &str, h: &Histogram<u64>) -> Series {
        let points = super::hgrm::rows(h).into_iter().map(|r| (r.quantile, r.value_ns)).collect();
        Series { name: name.to_string(), points }
    }
}

/// Horizontal position (0..=1 of the plot width) of a quantile: log10(1/(1-q)) / 5, clamped to the axis.
pub fn x_fraction(quantile: f64) -> f64 {
    if quantile >= 1.0 {
        return 1.0;
    }
    let decades = (1.0 / (1.0 - quantile.max(0.0))).log10();
    (decades / DECADES).clamp(0.0, 1.0)
}

/// A "nice" axis: (step, top) with step 1, 2 or 5 times a power of ten, about `ticks` steps up to `max`.
pub fn nice_axis(max: f64, ticks: usize) -> (f64, f64) {
    // NaN fails both tests.
    if max.is_nan() || max <= 0.0 || !max.is_finite() {
        return (1.0, 1.0);
    }
    let raw = max / ticks.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    (step, (max / step).ceil().max(1.0) * step)
}

/// The unit latencies are shown in for a chart whose largest value is `max_ns`: (name, ns per unit).
fn unit_for(max_ns: f64) -> (&'static str, f64) {
    if max_ns < 2e3 {
        ("ns", 1.0)
    } else if max_ns < 2e6 {
        ("µs", 1e3)
    } else if max_ns < 2e9 {
        ("ms", 1e6)
    } else {
        ("s", 1e9)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn fmt_tick(v: f64) -> String {
    if v == v.trunc() {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The whole chart as an SVG document.
pub fn render(title: &str, series: &[Series]) -> String {
    let pw = WIDTH - LEFT - RIGHT;
    let ph = HEIGHT - TOP - BOTTOM;
    let max_ns = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).max().unwrap_or(0) as f64;
    let (unit, per) = unit_for(max_ns);
    let (step, top) = nice_axis(max_ns / per, 6);
    let x_of = |q: f64| LEFT + x_fraction(q) * pw;
    let y_of = |ns: u64| TOP + ph - (ns as f64 / per / top).min(1.0) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ =
        writeln!(s, r#"<text x="{}" y="24" text-anchor="middle" font-size="16">{}</text>"#, WIDTH / 2.0, escape(title));
    // Grid and y ticks.
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let y = TOP + ph - v / top * ph;
        let _ = writeln!(s, r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##, LEFT + pw);
        let _ =
            writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, LEFT - 6.0, y + 4.0, fmt_tick(v));
        v += step;
    }
    // x ticks: 0 %, 90 %, 99 %, ... 99.999 %.
    for (d, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"].iter().enumerate() {
        let x = LEFT + d as f64 / DECADES * pw;
        let _ = writeln!(s, r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##, TOP + ph);
        let _ = writeln!(s, r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#, TOP + ph + 18.0);
    }
    let _ = writeln!(s, r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">Percentile</text>"#,
        LEFT + pw / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">Latency ({unit})</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    for (i, ser) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = ser.points.iter().map(|&(q, ns)| format!("{:.1},{:.1}", x_of(q), y_of(ns))).collect();
        let _ = writeln!(s, r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#, pts.join(" "));
        let ly = TOP + 16.0 + i as f64 * 18.0;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"/>"#,
            LEFT + 12.0,
            LEFT + 36.0
        );
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, LEFT + 42.0, ly + 4.0, escape(&ser.name));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::new_histogram;

    #[test]
    fn percentiles_sit_on_a_log_axis() {
        assert_eq!(x_fraction(0.0), 0.0);
        assert!((x_fraction(0.9) - 0.2).abs() < 1e-9);
        assert!((x_fraction(0.99) - 0.4).abs() < 1e-9);
        assert!((x_fraction(0.99999) - 1.0).abs() < 1e-6);
        assert_eq!(x_fraction(0.9999999), 1.0, "beyond 99.999 % is clamped");
        assert_eq!(x_fraction(1.0), 1.0);
    }

    #[test]
    fn nice_axes() {
        assert_eq!(nice_axis(9.3, 6), (2.0, 10.0));
        assert_eq!(nice_axis(130.0, 6), (50.0, 150.0));
        assert_eq!(nice_axis(1.0, 5), (0.2, 1.0));
        assert_eq!(nice_axis(0.0, 6), (1.0, 1.0));
        assert_eq!(nice_axis(f64::NAN, 6), (1.0, 1.0));
    }

    #[test]
    fn chart_has_one_line_per_series_inside_the_plot() {
        let mut a = new_histogram();
        let mut b = new_histogram();
        for v in 1..=10_000u64 {
            a.record(v * 100).unwrap();
            b.record(v * 250).unwrap();
        }
        let svg =
            render("rps <64 B> & co", &[Series::from_histogram("xdptcp", &a), Series::from_histogram("linux", &b)]);
        assert!(svg.starts_with("<svg "));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("rps &lt;64 B&gt; &amp; co"));
        assert!(svg.contains(">99.999%<"));
        assert!(svg.contains("Latency (ms)"), "max 2.5 ms is shown in ms");
        // Every plotted point lies inside the plot rectangle.
        for line in svg.lines().filter(|l| l.starts_with("<polyline")) {
            let pts = line.split("points=\"").nth(1).unwrap().trim_end_matches("\"/>");
            for p in pts.split(' ') {
                let (x, y) = p.split_once(',').unwrap();
                let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                assert!((LEFT..=WIDTH - RIGHT).contains(&x), "x {x}");
                assert!((TOP..=HEIGHT - BOTTOM).contains(&y), "y {y}");
            }
        }
    }

    #[test]
    fn empty_input_still_renders_axes() {
        let svg = render("empty", &[]);
        assert!(svg.contains("Percentile"));
        assert_eq!(svg.matches("<polyline").count(), 0);
    }
}
