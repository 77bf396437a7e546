//! How a tuning result is shown: a table, a terminal bar chart, and a
//! self-contained HTML report (inline SVG, no scripts, no network) with the
//! duration and cost curves of each architecture. Pure text out.

use std::fmt::Write as _;

use super::TuneReport;
use crate::config::Arch;

/// The table of points, marking each strategy's pick.
pub fn table(r: &TuneReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<7} {:>6} {:>5} {:>10} {:>9} {:>9} {:>9} {:>8} {:>12} {:>11}  pick",
        "arch",
        "MB",
        "n",
        "mean ms",
        "p50 ms",
        "p90 ms",
        "billed",
        "max MB",
        "$/invoke",
        "$/million"
    );
    for (i, p) in r.points.iter().enumerate() {
        let mut picks = Vec::new();
        if r.picks.cost == Some(i) {
            picks.push("cost");
        }
        if r.picks.speed == Some(i) {
            picks.push("speed");
        }
        if r.picks.balanced == Some(i) {
            picks.push("balanced");
        }
        let errors = if p.errors > 0 {
            format!(" ({} failed)", p.errors)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{:<7} {:>6} {:>5} {:>10.2} {:>9.2} {:>9.2} {:>9.1} {:>8} {:>12.10} {:>11.4}  {}{errors}",
            p.arch.as_str(),
            p.memory_mb,
            p.invocations,
            p.trimmed_mean_ms,
            p.p50_ms,
            p.p90_ms,
            p.billed_mean_ms,
            p.max_memory_mb,
            p.cost_usd,
            p.cost_per_million_usd,
            picks.join(",")
        );
    }
    out
}

/// Horizontal bars of duration and cost per point.
pub fn chart(r: &TuneReport) -> String {
    const WIDTH: f64 = 40.0;
    let max_ms = r
        .points
        .iter()
        .map(|p| p.trimmed_mean_ms)
        .fold(0.0, f64::max)
        .max(1e-9);
    let max_cost = r
        .points
        .iter()
        .map(|p| p.cost_usd)
        .fold(0.0, f64::max)
        .max(1e-18);
    let mut out = String::new();
    for p in &r.points {
        let d = ((p.trimmed_mean_ms / max_ms) * WIDTH).round() as usize;
        let c = ((p.cost_usd / max_cost) * WIDTH).round() as usize;
        let _ = writeln!(
            out,
            "{:<7}{:>6} MB  time {:<40} {:>9.2} ms",
            p.arch.as_str(),
            p.memory_mb,
            "#".repeat(d.max(1)),
            p.trimmed_mean_ms
        );
        let _ = writeln!(
            out,
            "{:<15}  cost {:<40} ${:.4}/M",
            "",
            "=".repeat(c.max(1)),
            p.cost_per_million_usd
        );
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One SVG line chart of `value` against memory, a polyline per architecture.
fn svg_chart(
    r: &TuneReport,
    title: &str,
    unit: &str,
    value: &dyn Fn(&super::Point) -> f64,
) -> String {
    // The right margin holds half of the last memory label, centred on
    // its point (`10240 MB` is ~50 px at 11 px).
    let (w, h, left, bottom, top, right) = (640.0, 300.0, 80.0, 40.0, 30.0, 40.0);
    let memories: Vec<f64> = r.points.iter().map(|p| f64::from(p.memory_mb)).collect();
    let min_x = memories.iter().copied().fold(f64::MAX, f64::min);
    let max_x = memories.iter().copied().fold(0.0, f64::max);
    let max_y = r.points.iter().map(value).fold(0.0, f64::max).max(1e-18);
    // Memory on a log scale: the defaults span 128..3008.
    let x = |mb: f64| {
        let span = (max_x.ln() - min_x.ln()).max(1e-9);
        left + (mb.ln() - min_x.ln()) / span * (w - left - right)
    };
    let y = |v: f64| top + (1.0 - v / max_y) * (h - top - bottom);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{title}</title>"#
    );
    let _ = write!(
        s,
        r#"<text x="{left}" y="18" font-size="14">{} ({})</text>"#,
        escape(title),
        escape(unit)
    );
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/><line x1="{left}" y1="{top}" x2="{left}" y2="{b}" stroke="#888"/>"##,
        b = h - bottom,
        r = w - right
    );
    let _ = write!(
        s,
        r#"<text x="4" y="{}" font-size="11">{}</text><text x="4" y="{}" font-size="11">0</text>"#,
        top + 4.0,
        fmt_value(max_y),
        h - bottom
    );
    let mut seen = Vec::new();
    for p in &r.points {
        if !seen.contains(&p.memory_mb) {
            seen.push(p.memory_mb);
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{} MB</text>"#,
                x(f64::from(p.memory_mb)),
                h - bottom + 16.0,
                p.memory_mb
            );
        }
    }
    for (arch, colour) in [(Arch::X86_64, "#1f77b4"), (Arch::Arm64, "#d62728")] {
        let pts: Vec<String> = r
            .points
            .iter()
            .filter(|p| p.arch == arch)
            .map(|p| format!("{:.1},{:.1}", x(f64::from(p.memory_mb)), y(value(p))))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for pt in &pts {
            let (px, py) = pt.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(s, r#"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"#);
        }
        let ly = if arch == Arch::X86_64 { 18 } else { 34 };
        let _ = write!(
            s,
            r#"<text x="{}" y="{ly}" font-size="12" fill="{colour}">{}</text>"#,
            w - 120.0,
            arch.as_str()
        );
    }
    s.push_str("</svg>");
    s
}

fn fmt_value(v: f64) -> String {
    if v >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.3e}")
    }
}

/// The HTML report: the label (estimate or measured), the curves, the table.
pub fn html(r: &TuneReport) -> String {
    let mut s = String::from("<!doctype html><html><head><meta charset=\"utf-8\"><title>");
    let _ = write!(s, "cargo fn tune: {}", escape(&r.function));
    s.push_str("</title><style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}.note{background:#fff4d6;padding:.5em}</style></head><body>");
    let _ = write!(s, "<h1>Power tuning: {}</h1>", escape(&r.function));
    let _ = write!(s, "<p class=\"note\">{}</p>", escape(&r.label));
    s.push_str(&svg_chart(r, "Duration (trimmed mean)", "ms", &|p| {
        p.trimmed_mean_ms
    }));
    s.push_str(&svg_chart(r, "Cost per million invocations", "USD", &|p| {
        p.cost_per_million_usd
    }));
    s.push_str("<table><tr><th>arch</th><th>MB</th><th>n</th><th>mean ms</th><th>p50 ms</th><th>p90 ms</th><th>billed ms</th><th>max MB</th><th>$/invocation</th><th>$/million</th><th>errors</th></tr>");
    for p in &r.points {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.1}</td><td>{}</td><td>{:.10}</td><td>{:.4}</td><td>{}</td></tr>",
            p.arch.as_str(),
            p.memory_mb,
            p.invocations,
            p.trimmed_mean_ms,
            p.p50_ms,
            p.p90_ms,
            p.billed_mean_ms,
            p.max_memory_mb,
            p.cost_usd,
            p.cost_per_million_usd,
            p.errors
        );
    }
    s.push_str("</table><ul>");
    for (name, pick) in [
        ("cost", r.picks.cost),
        ("speed", r.picks.speed),
        ("balanced", r.picks.balanced),
    ] {
        if let Some(p) = pick.and_then(|i| r.points.get(i)) {
            let _ = write!(s, "<li>{name}: {} MB {}</li>", p.memory_mb, p.arch.as_str());
        }
    }
    s.push_str("</ul><p>Prices: us-east-1 list prices per GB-second and per request, before the free tier.</p></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::stats::{self, Sample};

    #[test]
    fn every_memory_label_of_the_chart_fits_inside_it() {
        let sample = Sample {
            duration_ms: 10.0,
            billed_ms: 10,
            init_ms: None,
            max_memory_mb: 20,
            error: false,
        };
        let points: Vec<_> = [128, 1024, 3008, 10240]
            .iter()
            .map(|m| stats::point(Arch::X86_64, *m, &[sample]))
            .collect();
        let report = TuneReport {
            function: "f".into(),
            mode: "local",
            label: String::new(),
            picks: stats::picks(&points, 0.5),
            points,
        };
        let svg = svg_chart(&report, "t", "ms", &|p| p.trimmed_mean_ms);
        let width: f64 = 640.0;
        let mut labels = 0;
        for text in svg.split("<text ").skip(1) {
            let (attrs, rest) = text.split_once('>').unwrap();
            let content = rest.split('<').next().unwrap();
            let x: f64 = attrs
                .split("x=\"")
                .nth(1)
                .and_then(|v| v.split('"').next())
                .unwrap()
                .parse()
                .unwrap();
            // A generous glyph width for an 11 px sans-serif digit.
            let half = content.chars().count() as f64 * 7.0 / 2.0;
            if attrs.contains("text-anchor=\"middle\"") {
                labels += 1;
                assert!(
                    x - half >= 0.0 && x + half <= width,
                    "`{content}` at x={x} is cut off by the {width} px chart"
                );
            }
        }
        assert_eq!(labels, 4, "{svg}");
    }
}
