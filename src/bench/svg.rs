//! A hand-written SVG chart of latency by percentile, the way HdrHistogram's plotter draws it: the x axis is
//! logarithmic in 1/(1-percentile), from 0 % to 99.999 %, so the tail gets as much room as the body; the y axis is
//! latency, linear or ([`LatencyAxis::Log`]) logarithmic, so a 7 µs median and a 10 ms tail are both readable.
//! Several series (say xdptcp and Linux) share one chart.

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

/// How latency is drawn on the y axis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LatencyAxis {
    /// From zero, evenly spaced ticks.
    #[default]
    Linear,
    /// Whole decades (1 µs, 10 µs, 100 µs, ...) evenly spaced, covering every plotted value.
    Log,
}

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

/// The decades a logarithmic axis spans for values from `min_ns` to `max_ns`: (lowest, highest) powers of ten in
/// ns, at least one decade apart (values below 1 ns count as 1 ns).
pub fn log_decades(min_ns: u64, max_ns: u64) -> (i32, i32) {
    let lo = (min_ns.max(1) as f64).log10().floor() as i32;
    let hi = (max_ns.max(1) as f64).log10().ceil() as i32;
    (lo, hi.max(lo + 1))
}

/// A latency with the unit that suits it (`10 µs`, `1 ms`).
fn fmt_latency(ns: f64) -> String {
    let (unit, per) =
        [("s", 1e9), ("ms", 1e6), ("µs", 1e3)].into_iter().find(|(_, per)| ns >= *per).unwrap_or(("ns", 1.0));
    format!("{} {unit}", fmt_tick(ns / per))
}

/// The whole chart as an SVG document, latency on a linear axis.
pub fn render(title: &str, series: &[Series]) -> String {
    render_with(title, series, LatencyAxis::Linear)
}

/// The whole chart as an SVG document, latency on the axis asked for.
pub fn render_with(title: &str, series: &[Series], axis: LatencyAxis) -> String {
    let pw = WIDTH - LEFT - RIGHT;
    let ph = HEIGHT - TOP - BOTTOM;
    let values = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let max_ns = values().max().unwrap_or(0) as f64;
    let (unit, per) = unit_for(max_ns);
    let (step, top) = nice_axis(max_ns / per, 6);
    let (lo, hi) = log_decades(values().min().unwrap_or(1), max_ns as u64);
    let x_of = |q: f64| LEFT + x_fraction(q) * pw;
    let y_of = |ns: u64| match axis {
        LatencyAxis::Linear => TOP + ph - (ns as f64 / per / top).min(1.0) * ph,
        LatencyAxis::Log => {
            let f = ((ns.max(1) as f64).log10() - lo as f64) / (hi - lo) as f64;
            TOP + ph - f.clamp(0.0, 1.0) * ph
        }
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ =
        writeln!(s, r#"<text x="{}" y="24" text-anchor="middle" font-size="16">{}</text>"#, WIDTH / 2.0, escape(title));
    // Grid and y ticks.
    let mut ticks: Vec<(f64, String)> = Vec::new();
    match axis {
        LatencyAxis::Linear => {
            let mut v = 0.0;
            while v <= top + step / 2.0 {
                ticks.push((TOP + ph - v / top * ph, fmt_tick(v)));
                v += step;
            }
        }
        LatencyAxis::Log => {
            for d in lo..=hi {
                let ns = 10f64.powi(d);
                ticks.push((y_of(ns as u64), fmt_latency(ns)));
                // Unlabelled lines at 2 and 5 times the decade, to read values between the labels.
                for m in [2.0, 5.0].into_iter().filter(|_| d < hi) {
                    let y = y_of((m * ns) as u64);
                    let _ = writeln!(
                        s,
                        r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#f0f0f0"/>"##,
                        LEFT + pw
                    );
                }
            }
        }
    }
    for (y, label) in &ticks {
        let _ = writeln!(s, r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##, LEFT + pw);
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#, LEFT - 6.0, y + 4.0);
    }
    let y_title = match axis {
        LatencyAxis::Linear => format!("Latency ({unit})"),
        LatencyAxis::Log => "Latency (log scale)".to_string(),
    };
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
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">{y_title}</text>"#,
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
    fn log_axis_spreads_a_microsecond_median_and_a_millisecond_tail() {
        assert_eq!(log_decades(7_000, 10_000_000), (3, 7));
        assert_eq!(log_decades(0, 0), (0, 1));
        assert_eq!(log_decades(1000, 1000), (3, 4), "at least one decade");
        // 7 µs and 22 µs medians under a 10 ms tail: on the linear axis both sit within 1 % of the plot height
        // from the zero line; on the log axis they are apart and well above it.
        let series = vec![
            Series { name: "xdptcp".into(), points: vec![(0.0, 7_000), (0.5, 7_000), (0.99999, 10_000_000)] },
            Series { name: "linux".into(), points: vec![(0.0, 22_000), (0.5, 22_000), (0.99999, 10_000_000)] },
        ];
        let medians = |svg: &str| -> Vec<f64> {
            svg.lines()
                .filter(|l| l.starts_with("<polyline"))
                .map(|l| l.split("points=\"").nth(1).unwrap().split(' ').nth(1).unwrap())
                .map(|p| p.split_once(',').unwrap().1.parse::<f64>().unwrap())
                .collect()
        };
        let ph = HEIGHT - TOP - BOTTOM;
        let floor = HEIGHT - BOTTOM;
        let linear = medians(&render_with("t", &series, LatencyAxis::Linear));
        assert!(linear.iter().all(|y| floor - y < 0.01 * ph), "{linear:?}");
        let svg = render_with("t", &series, LatencyAxis::Log);
        let log = medians(&svg);
        assert!(log.iter().all(|y| floor - y > 0.1 * ph), "{log:?}");
        assert!(log[0] - log[1] > 0.1 * ph, "22 µs is drawn clearly above 7 µs: {log:?}");
        for label in [">1 µs<", ">10 µs<", ">100 µs<", ">1 ms<", ">10 ms<"] {
            assert!(svg.contains(label), "{label} tick");
        }
        assert!(svg.contains("Latency (log scale)"));
    }

    #[test]
    fn empty_input_still_renders_axes() {
        let svg = render("empty", &[]);
        assert!(svg.contains("Percentile"));
        assert_eq!(svg.matches("<polyline").count(), 0);
    }
}
