//! The platform log lines Lambda writes around each invocation (END and
//! REPORT in CloudWatch's exact format, contract 3.4) and the cost estimate
//! from the billing facts (contract 6).

use std::time::Duration;

/// Instruction set, for pricing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Architecture {
    #[default]
    X86_64,
    Arm64,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }

    /// First-tier us-east-1 list price per GB-second.
    fn price_per_gb_second(self) -> f64 {
        match self {
            Architecture::X86_64 => 0.000_016_666_7,
            Architecture::Arm64 => 0.000_013_333_4,
        }
    }
}

/// Price of one request (both architectures).
const PRICE_PER_REQUEST: f64 = 0.20 / 1_000_000.0;

/// What one invocation cost, by Lambda's list prices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub gb_seconds: f64,
    pub duration_usd: f64,
    pub request_usd: f64,
}

impl Cost {
    pub fn total(&self) -> f64 {
        self.duration_usd + self.request_usd
    }
}

/// Cost of one invocation billed for `billed_ms` at `memory_mb`: GB-s =
/// billed seconds x memory in GB (MB / 1024), first-tier price, plus the
/// request charge. Free tier not deducted.
pub fn cost_estimate(arch: Architecture, memory_mb: u32, billed_ms: u64) -> Cost {
    let gb_seconds = billed_ms as f64 / 1000.0 * f64::from(memory_mb) / 1024.0;
    Cost {
        gb_seconds,
        duration_usd: gb_seconds * arch.price_per_gb_second(),
        request_usd: PRICE_PER_REQUEST,
    }
}

/// How an invocation ended, for REPORT's status field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EndStatus {
    Success,
    /// A function error reported through the Runtime API.
    FunctionError,
    Timeout,
    /// The runtime died or could not start (error type).
    Crashed(String),
}

pub(crate) struct ReportData<'a> {
    pub request_id: &'a str,
    pub duration: Duration,
    pub memory_mb: u32,
    pub max_memory_mb: u64,
    pub init: Option<Duration>,
    pub status: EndStatus,
    pub arch: Architecture,
    /// The invocation's X-Ray header (`Root=1-...;Parent=...;Sampled=...`).
    pub trace: Option<&'a str>,
}

/// The XRAY line Lambda writes after REPORT for a traced (sampled)
/// invocation; none for one that is not traced.
fn xray_line(header: &str) -> Option<String> {
    let field = |key: &str| {
        header
            .split(';')
            .find_map(|p| p.trim().strip_prefix(key).map(str::to_string))
    };
    let root = field("Root=")?;
    let segment = field("Parent=").unwrap_or_default();
    if field("Sampled=").as_deref() != Some("1") {
        return None;
    }
    Some(format!(
        "XRAY TraceId: {root}\tSegmentId: {segment}\tSampled: true"
    ))
}

/// Duration in ms with two decimals, as Lambda prints it.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Billed milliseconds: duration rounded up to 1 ms; on a cold start of an
/// OS-only runtime the init phase is billed too.
pub(crate) fn billed_ms(duration: Duration, init: Option<Duration>) -> u64 {
    let total = ms(duration) + init.map(ms).unwrap_or(0.0);
    total.ceil().max(1.0) as u64
}

/// END, REPORT (and XRAY when traced) for one invocation, as Lambda writes them.
pub(crate) fn lines(r: &ReportData<'_>) -> Vec<String> {
    let billed = billed_ms(r.duration, r.init);
    let mut report = format!(
        "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
        r.request_id,
        ms(r.duration),
        billed,
        r.memory_mb,
        r.max_memory_mb
    );
    if let Some(init) = r.init {
        report.push_str(&format!("Init Duration: {:.2} ms\t", ms(init)));
    }
    match &r.status {
        EndStatus::Success | EndStatus::FunctionError => {}
        EndStatus::Timeout => report.push_str("Status: timeout"),
        EndStatus::Crashed(kind) => report.push_str(&format!("Status: error\tError Type: {kind}")),
    }
    let mut out = vec![format!("END RequestId: {}", r.request_id), report];
    out.extend(r.trace.and_then(xray_line));
    out
}

/// The emulator's mark after a REPORT whose Max Memory Used exceeds the
/// memory size in an environment without limits: Lambda would have
/// stopped that invocation (`Runtime.OutOfMemory`).
pub(crate) fn over_memory_line(r: &ReportData<'_>) -> Option<String> {
    (r.max_memory_mb > u64::from(r.memory_mb)).then(|| {
        format!(
            "LIMIT RequestId: {}\tMax Memory Used: {} MB exceeds Memory Size: {} MB: Lambda would have stopped this invocation (Runtime.OutOfMemory); memory limits are not enforced here",
            r.request_id, r.max_memory_mb, r.memory_mb
        )
    })
}

/// The emulator's own COST line: the invocation's price by Lambda's list prices.
pub(crate) fn cost_line(r: &ReportData<'_>) -> String {
    let cost = cost_estimate(r.arch, r.memory_mb, billed_ms(r.duration, r.init));
    format!(
        "COST RequestId: {}\tEstimate: ${:.10}\t({:.6} GB-s {} at ${}/GB-s + ${:.7} per request; us-east-1 list price, before free tier)",
        r.request_id,
        cost.total(),
        cost.gb_seconds,
        r.arch.as_str(),
        r.arch.price_per_gb_second(),
        cost.request_usd,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xray_line_follows_report() {
        let lines = lines(&ReportData {
            request_id: "abc",
            duration: Duration::from_millis(3),
            memory_mb: 128,
            max_memory_mb: 10,
            init: None,
            status: EndStatus::Success,
            arch: Architecture::X86_64,
            trace: Some(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            ),
        });
        assert!(lines[1].starts_with("REPORT "));
        assert_eq!(
            lines[2],
            "XRAY TraceId: 1-5759e988-bd862e3fe1be46a994272793\tSegmentId: 53995c3f42cd8ad8\tSampled: true"
        );
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn no_xray_line_for_an_untraced_invocation() {
        let lines = lines(&ReportData {
            request_id: "abc",
            duration: Duration::from_millis(3),
            memory_mb: 128,
            max_memory_mb: 10,
            init: None,
            status: EndStatus::Success,
            arch: Architecture::X86_64,
            trace: Some(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
            ),
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(!lines.iter().any(|l| l.starts_with("XRAY")));
    }

    #[test]
    fn report_over_the_memory_size_is_marked_when_uncapped() {
        let mut data = ReportData {
            request_id: "abc",
            duration: Duration::from_millis(3),
            memory_mb: 128,
            max_memory_mb: 128,
            init: None,
            status: EndStatus::Success,
            arch: Architecture::X86_64,
            trace: None,
        };
        assert_eq!(over_memory_line(&data), None, "at the size is within it");
        data.max_memory_mb = 301;
        let line = over_memory_line(&data).unwrap();
        assert!(
            line.starts_with(
                "LIMIT RequestId: abc\tMax Memory Used: 301 MB exceeds Memory Size: 128 MB"
            ),
            "{line}"
        );
    }

    #[test]
    fn report_line_has_cloudwatch_layout() {
        let lines = lines(&ReportData {
            request_id: "abc",
            duration: Duration::from_micros(1_234_560),
            memory_mb: 128,
            max_memory_mb: 17,
            init: Some(Duration::from_micros(20_500)),
            status: EndStatus::Success,
            arch: Architecture::X86_64,
            trace: None,
        });
        assert_eq!(lines[0], "END RequestId: abc");
        assert_eq!(
            lines[1],
            "REPORT RequestId: abc\tDuration: 1234.56 ms\tBilled Duration: 1256 ms\tMemory Size: 128 MB\tMax Memory Used: 17 MB\tInit Duration: 20.50 ms\t"
        );
        assert_eq!(lines.len(), 2);
    }

    #[test]
    fn cost_follows_memory_and_architecture() {
        // 1 s at 1024 MB is exactly 1 GB-s.
        let x86 = cost_estimate(Architecture::X86_64, 1024, 1000);
        assert!((x86.gb_seconds - 1.0).abs() < 1e-12);
        assert!((x86.duration_usd - 0.0000166667).abs() < 1e-12);
        let arm = cost_estimate(Architecture::Arm64, 1024, 1000);
        assert!(arm.duration_usd < x86.duration_usd);
        let double = cost_estimate(Architecture::X86_64, 2048, 1000);
        assert!((double.gb_seconds - 2.0).abs() < 1e-12);
    }

    #[test]
    fn billing_rounds_up_to_the_millisecond() {
        assert_eq!(billed_ms(Duration::from_micros(1_001), None), 2);
        assert_eq!(billed_ms(Duration::from_micros(10), None), 1);
    }
}
