//! The percentile distribution in HdrHistogram's text format (`.hgrm`, as `outputPercentileDistribution` in the
//! Java library and wrk2 print it), which HdrHistogram's plotters read. Values are written in milliseconds.

use std::fmt::Write;

use hdrhistogram::Histogram;

/// Percentile ticks per halving of the distance to 100 % (the Java default).
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Nanoseconds per output unit (milliseconds).
const NS_PER_MS: f64 = 1e6;

/// One row of the distribution: value (ns, highest equivalent), quantile iterated to, cumulative count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    pub value_ns: u64,
    pub quantile: f64,
    pub total_count: u64,
}

/// The rows of the percentile distribution, ending at quantile 1.0. Empty for an empty histogram.
pub fn rows(h: &Histogram<u64>) -> Vec<Row> {
    let mut total = 0u64;
    h.iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .map(|v| {
            total += v.count_since_last_iteration();
            Row { value_ns: v.value_iterated_to(), quantile: v.quantile_iterated_to(), total_count: total }
        })
        .collect()
}

/// Sub-buckets per bucket for `sigfig` significant digits (HdrHistogram: 2^ceil(log2(2 * 10^sigfig))).
fn sub_bucket_count(sigfig: u8) -> u64 {
    let largest = 2 * 10u64.pow(sigfig as u32);
    largest.next_power_of_two()
}

/// The `.hgrm` text: header, one line per row, and the summary footer.
pub fn render(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    for r in rows(h) {
        let value = r.value_ns as f64 / NS_PER_MS;
        if r.quantile < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {:2.12} {:10} {:14.2}",
                r.quantile,
                r.total_count,
                1.0 / (1.0 - r.quantile)
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {:2.12} {:10}", r.quantile, r.total_count);
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / NS_PER_MS, h.stdev() / NS_PER_MS, h.max() as f64 / NS_PER_MS)
    };
    let _ = writeln!(out, "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]");
    let _ = writeln!(out, "#[Max     = {max:12.3}, Total count    = {:12}]", h.len());
    let _ = writeln!(out, "#[Buckets = {:12}, SubBuckets     = {:12}]", h.buckets(), sub_bucket_count(h.sigfig()));
    out
}

/// Reads the (value in ms, percentile as a fraction) pairs back from `.hgrm` text: what a plotter does.
pub fn parse(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let v = it.next()?.parse::<f64>().ok()?;
            let p = it.next()?.parse::<f64>().ok()?;
            Some((v, p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::new_histogram;

    fn uniform() -> Histogram<u64> {
        let mut h = new_histogram();
        // 1..=1000 µs, one each.
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        h
    }

    #[test]
    fn rows_are_monotonic_and_end_at_the_max() {
        let h = uniform();
        let r = rows(&h);
        assert!(r.len() > 20, "{} rows", r.len());
        assert!(r.windows(2).all(|w| w[0].quantile <= w[1].quantile && w[0].value_ns <= w[1].value_ns));
        assert!(r.windows(2).all(|w| w[0].total_count <= w[1].total_count));
        let last = r.last().unwrap();
        assert_eq!(last.quantile, 1.0);
        assert_eq!(last.total_count, 1000);
        assert!(h.equivalent(last.value_ns, 1_000_000));
        assert_eq!(r[0].quantile, 0.0);
        assert!(rows(&new_histogram()).is_empty());
    }

    #[test]
    fn text_follows_the_java_layout() {
        let h = uniform();
        let text = render(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "       Value     Percentile TotalCount 1/(1-Percentile)");
        assert_eq!(lines[1], "");
        // First data row: the minimum, 1 µs = 0.001 ms at percentile 0.
        assert_eq!(lines[2], "       0.001 0.000000000000          1           1.00");
        // The median row.
        assert!(lines.iter().any(|l| l.starts_with("       0.500 0.500000000000        500           2.00")), "{text}");
        // The last data row has no 1/(1-p) column.
        let last_row = lines[lines.len() - 4];
        assert_eq!(last_row.split_whitespace().count(), 3, "{last_row}");
        assert!(last_row.contains("1.000000000000"));
        // The histogram's mean (of bucket midpoints), in ms with three decimals.
        let mean = format!("{:12.3}", h.mean() / 1e6);
        assert!((h.mean() / 1e6 - 0.5005).abs() < 0.001);
        assert_eq!(lines[lines.len() - 3], format!("#[Mean    = {mean}, StdDeviation   =        0.289]"));
        assert_eq!(lines[lines.len() - 2], "#[Max     =        1.000, Total count    =         1000]");
        assert!(lines[lines.len() - 1].starts_with("#[Buckets = "));
        assert!(lines[lines.len() - 1].ends_with("SubBuckets     =         2048]"));
    }

    #[test]
    fn parse_reads_back_what_render_wrote() {
        let h = uniform();
        let back = parse(&render(&h));
        let r = rows(&h);
        assert_eq!(back.len(), r.len());
        for ((v, p), row) in back.iter().zip(&r) {
            assert!((v - row.value_ns as f64 / 1e6).abs() < 1e-3);
            assert!((p - row.quantile).abs() < 1e-12);
        }
    }

    #[test]
    fn empty_histogram_renders_a_footer_only() {
        let text = render(&new_histogram());
        assert!(parse(&text).is_empty());
        assert!(text.contains("Total count    =            0"));
    }
}
