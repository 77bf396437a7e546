//! The numbers of a tuning run: samples parsed from REPORT lines, their
//! statistics per (architecture, memory), the cost by Lambda's list prices
//! (the one price table is the emulator's `report.rs`), and the pick of each
//! strategy. Pure: no I/O.

use serde::Serialize;

use crate::config::Arch;
use crate::emulator::{Architecture, cost_estimate};

/// One invocation as REPORT described it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub duration_ms: f64,
    pub billed_ms: u64,
    pub init_ms: Option<f64>,
    pub max_memory_mb: u64,
    /// The invocation failed (function error, timeout, out of memory).
    pub error: bool,
}

/// The last REPORT of a log tail, in either of Lambda's log formats: a
/// text `REPORT RequestId: ...` line or, with `log-format = "JSON"` (every
/// template's), a `platform.report` record. One parser reads both: the
/// one `cargo fn logs` uses ([`crate::logs::parse_report`]).
pub fn parse_report(log: &str) -> Option<Sample> {
    let r = log.lines().rev().find_map(crate::logs::parse_report)?;
    Some(Sample {
        duration_ms: r.duration_ms,
        billed_ms: r.billed_ms,
        init_ms: r.init_ms,
        max_memory_mb: u64::from(r.max_memory_mb),
        error: r.status.is_some(),
    })
}

/// Statistics of one (architecture, memory) point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub arch: Arch,
    pub memory_mb: u32,
    pub invocations: usize,
    pub errors: usize,
    /// Mean duration without the fastest and slowest 10% (at least one
    /// each when there are five or more samples).
    pub trimmed_mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub billed_mean_ms: f64,
    pub max_memory_mb: u64,
    /// Cold starts seen, and their mean init duration.
    pub cold_starts: usize,
    pub init_mean_ms: Option<f64>,
    /// Mean cost of one invocation (duration + request charge), USD.
    pub cost_usd: f64,
    pub cost_per_million_usd: f64,
}

fn price_arch(arch: Arch) -> Architecture {
    match arch {
        Arch::X86_64 => Architecture::X86_64,
        Arch::Arm64 => Architecture::Arm64,
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Mean of sorted values without `trim` of each end (a fraction).
fn trimmed_mean(sorted: &[f64], trim: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let mut cut = (sorted.len() as f64 * trim).floor() as usize;
    if cut == 0 && sorted.len() >= 5 {
        cut = 1;
    }
    let kept = &sorted[cut..sorted.len() - cut];
    kept.iter().sum::<f64>() / kept.len() as f64
}

pub fn point(arch: Arch, memory_mb: u32, samples: &[Sample]) -> Point {
    let mut durations: Vec<f64> = samples.iter().map(|s| s.duration_ms).collect();
    durations.sort_by(f64::total_cmp);
    let n = samples.len().max(1) as f64;
    let inits: Vec<f64> = samples.iter().filter_map(|s| s.init_ms).collect();
    let cost = samples
        .iter()
        .map(|s| cost_estimate(price_arch(arch), memory_mb, s.billed_ms).total())
        .sum::<f64>()
        / n;
    Point {
        arch,
        memory_mb,
        invocations: samples.len(),
        errors: samples.iter().filter(|s| s.error).count(),
        trimmed_mean_ms: trimmed_mean(&durations, 0.1),
        p50_ms: percentile(&durations, 50.0),
        p90_ms: percentile(&durations, 90.0),
        billed_mean_ms: samples.iter().map(|s| s.billed_ms as f64).sum::<f64>() / n,
        max_memory_mb: samples.iter().map(|s| s.max_memory_mb).max().unwrap_or(0),
        cold_starts: inits.len(),
        init_mean_ms: (!inits.is_empty()).then(|| inits.iter().sum::<f64>() / inits.len() as f64),
        cost_usd: cost,
        cost_per_million_usd: cost * 1_000_000.0,
    }
}

/// What to optimise for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Cost,
    Speed,
    /// `weight` on cost, `1 - weight` on speed (each relative to its best).
    Balanced,
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Strategy> {
        match s {
            "cost" => Some(Strategy::Cost),
            "speed" => Some(Strategy::Speed),
            "balanced" => Some(Strategy::Balanced),
            _ => None,
        }
    }
}

/// The chosen point of each strategy (indexes into the points).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Picks {
    pub cost: Option<usize>,
    pub speed: Option<usize>,
    pub balanced: Option<usize>,
    /// The balanced strategy's weight on cost (0..=1).
    pub weight: f64,
}

/// Picks per strategy among the points without errors.
pub fn picks(points: &[Point], weight: f64) -> Picks {
    let ok: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].errors == 0)
        .collect();
    let best = |key: &dyn Fn(&Point) -> f64| -> Option<usize> {
        ok.iter()
            .copied()
            .min_by(|&a, &b| key(&points[a]).total_cmp(&key(&points[b])))
    };
    let cheapest = best(&|p| p.cost_usd);
    let fastest = best(&|p| p.trimmed_mean_ms);
    let balanced = match (cheapest, fastest) {
        (Some(c), Some(f)) => {
            let (c0, d0) = (points[c].cost_usd, points[f].trimmed_mean_ms.max(1e-9));
            best(&|p| weight * p.cost_usd / c0 + (1.0 - weight) * p.trimmed_mean_ms / d0)
        }
        _ => None,
    };
    Picks {
        cost: cheapest,
        speed: fastest,
        balanced,
        weight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: f64) -> Sample {
        Sample {
            duration_ms: ms,
            billed_ms: ms.ceil() as u64,
            init_ms: None,
            max_memory_mb: 20,
            error: false,
        }
    }

    #[test]
    fn report_lines_parse_like_cloudwatch_writes_them() {
        let log = "START RequestId: a Version: 3\nhello\nEND RequestId: a\nREPORT RequestId: a\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 256 MB\tMax Memory Used: 40 MB\tInit Duration: 55.10 ms\t\n";
        let s = parse_report(log).unwrap();
        assert_eq!(s.duration_ms, 12.34);
        assert_eq!(s.billed_ms, 13);
        assert_eq!(s.init_ms, Some(55.10));
        assert_eq!(s.max_memory_mb, 40);
        assert!(!s.error);
        let oom = "REPORT RequestId: b\tDuration: 9.00 ms\tBilled Duration: 9 ms\tMemory Size: 128 MB\tMax Memory Used: 128 MB\tStatus: error\tError Type: Runtime.OutOfMemory";
        assert!(parse_report(oom).unwrap().error);
        assert_eq!(parse_report("no report"), None);
    }

    #[test]
    fn json_platform_report_records_parse_like_text_report_lines() {
        // What Lambda writes with `log-format = "JSON"` (AWS: "Configuring
        // JSON and plain text log formats"): platform lines as records.
        let log = concat!(
            r#"{"time":"2026-12-07T01:00:00.000Z","type":"platform.start","record":{"requestId":"a","version":"3"}}"#,
            "\n",
            r#"{"timestamp":"2026-12-07T01:00:00.001Z","level":"INFO","message":"hello"}"#,
            "\n",
            r#"{"time":"2026-12-07T01:00:00.013Z","type":"platform.report","record":{"requestId":"a","metrics":{"durationMs":12.34,"billedDurationMs":13,"memorySizeMB":256,"maxMemoryUsedMB":40,"initDurationMs":55.1},"status":"success"}}"#,
            "\n",
        );
        let s = parse_report(log).unwrap();
        assert_eq!(s.duration_ms, 12.34);
        assert_eq!(s.billed_ms, 13);
        assert_eq!(s.init_ms, Some(55.1));
        assert_eq!(s.max_memory_mb, 40);
        assert!(!s.error);
        let failed = r#"{"time":"2026-12-07T01:00:01.000Z","type":"platform.report","record":{"requestId":"b","metrics":{"durationMs":3000.0,"billedDurationMs":3000,"memorySizeMB":128,"maxMemoryUsedMB":20},"status":"timeout"}}"#;
        assert!(parse_report(failed).unwrap().error);
    }

    #[test]
    fn trimmed_mean_and_percentiles() {
        let samples: Vec<Sample> = (1..=10).map(|i| sample(f64::from(i) * 10.0)).collect();
        let p = point(Arch::X86_64, 1024, &samples);
        // 10 and 100 dropped: mean of 20..=90.
        assert!((p.trimmed_mean_ms - 55.0).abs() < 1e-9);
        assert_eq!(p.p50_ms, 50.0);
        assert_eq!(p.p90_ms, 90.0);
        assert!((p.billed_mean_ms - 55.0).abs() < 1e-9);
    }

    #[test]
    fn cost_includes_the_request_price_and_the_architecture() {
        let x86 = point(Arch::X86_64, 1024, &[sample(1000.0)]);
        // 1 GB-s at $0.0000166667 + $0.0000002 per request.
        assert!((x86.cost_usd - (0.000_016_666_7 + 0.000_000_2)).abs() < 1e-12);
        assert!((x86.cost_per_million_usd - 16.8667).abs() < 1e-3);
        let arm = point(Arch::Arm64, 1024, &[sample(1000.0)]);
        assert!(arm.cost_usd < x86.cost_usd);
    }

    #[test]
    fn strategies_pick_cheapest_fastest_and_a_balance() {
        let points = vec![
            // 0.1125, 0.1 and 0.264 GB-s.
            point(Arch::X86_64, 128, &[sample(900.0)]),
            point(Arch::X86_64, 1024, &[sample(100.0)]),
            point(Arch::X86_64, 3008, &[sample(90.0)]),
        ];
        let p = picks(&points, 0.5);
        assert_eq!(p.cost, Some(1));
        assert_eq!(p.speed, Some(2));
        assert_eq!(p.balanced, Some(1));
        let mut failing = points.clone();
        failing[1].errors = 1;
        assert_ne!(picks(&failing, 0.5).cost, Some(1));
    }
}
