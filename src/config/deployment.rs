//! The `deployment` table (how `deploy` shifts traffic to a new version)
//! and the traffic-shifting strategies, named like CodeDeploy's.
//!
//! A strategy is data: a percentage and a duration. Its step schedule and
//! its execution belong to `deploy::rollout`; this module only parses and
//! checks what the user wrote (configuration or flags), without I/O.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{InvalidValue, Source, check_function_name};

/// Default `error-threshold`: the percentage of the new version's
/// invocations that may fail (errors and throttles) before a rollback.
pub const DEFAULT_ERROR_THRESHOLD: f64 = 5.0;

/// The longest bake or interval a strategy may ask for.
const MAX_STEP: Duration = Duration::from_secs(24 * 3600);

/// CodeDeploy's predefined Lambda deployment configurations.
pub const CODEDEPLOY_NAMES: &[&str] = &[
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Canary10Percent15Minutes",
    "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes",
    "AllAtOnce",
];

/// How traffic moves from the old version to the new one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Everything at once (after the pre-traffic hook).
    AllAtOnce,
    /// `percent` for `bake`, then everything.
    Canary { percent: f64, bake: Duration },
    /// `percent` more every `every`, until everything.
    Linear { percent: f64, every: Duration },
}

impl Strategy {
    /// Parses a strategy name: CodeDeploy's (`Canary10Percent5Minutes`,
    /// `Linear10PercentEvery1Minute`, `AllAtOnce`) and the same forms with
    /// other numbers and units (`Canary25Percent90Seconds`,
    /// `Linear50PercentEvery2Seconds`). The error says what is allowed.
    pub fn parse(name: &str) -> Result<Strategy, String> {
        let allowed = || {
            format!(
                "one of {}, or the same forms with other numbers: Canary<P>Percent<N><Seconds|Minutes|Hours>, Linear<P>PercentEvery<N><Seconds|Minutes|Hours>",
                CODEDEPLOY_NAMES.join(", ")
            )
        };
        if name == "AllAtOnce" {
            return Ok(Strategy::AllAtOnce);
        }
        let (linear, rest) = if let Some(r) = name.strip_prefix("Canary") {
            (false, r)
        } else if let Some(r) = name.strip_prefix("Linear") {
            (true, r)
        } else {
            return Err(allowed());
        };
        let (percent, rest) = rest.split_once("Percent").ok_or_else(allowed)?;
        let rest = if linear {
            rest.strip_prefix("Every").ok_or_else(allowed)?
        } else {
            rest
        };
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
        let (count, unit) = rest.split_at(digits);
        let seconds = match unit {
            "Second" | "Seconds" => 1,
            "Minute" | "Minutes" => 60,
            "Hour" | "Hours" => 3600,
            _ => return Err(allowed()),
        };
        let percent: f64 = percent.parse().map_err(|_| allowed())?;
        let count: u64 = count.parse().map_err(|_| allowed())?;
        let duration = Duration::from_secs(count.saturating_mul(seconds));
        if linear {
            Strategy::linear(percent, duration)
        } else {
            Strategy::canary(percent, duration)
        }
    }

    /// `--canary P --bake D`.
    pub fn canary(percent: f64, bake: Duration) -> Result<Strategy, String> {
        if !(percent > 0.0 && percent < 100.0) {
            return Err(format!(
                "a canary percentage is more than 0 and less than 100, got {percent}"
            ));
        }
        check_step(bake)?;
        Ok(Strategy::Canary { percent, bake })
    }

    /// `--linear P --every D`.
    pub fn linear(percent: f64, every: Duration) -> Result<Strategy, String> {
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(format!(
                "a linear increment is more than 0 and at most 100 percent, got {percent}"
            ));
        }
        check_step(every)?;
        Ok(Strategy::Linear { percent, every })
    }

    /// The canonical name, which [`Strategy::parse`] reads back: CodeDeploy's
    /// own name when it is one of them.
    pub fn name(&self) -> String {
        match self {
            Strategy::AllAtOnce => "AllAtOnce".into(),
            Strategy::Canary { percent, bake } => {
                format!("Canary{}Percent{}", number(*percent), duration_name(*bake))
            }
            Strategy::Linear { percent, every } => format!(
                "Linear{}PercentEvery{}",
                number(*percent),
                duration_name(*every)
            ),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for Strategy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// A bake time or interval is 1 second to 24 hours.
pub fn check_step(d: Duration) -> Result<(), String> {
    if d.is_zero() || d > MAX_STEP {
        return Err(format!(
            "a bake time or interval is 1 second to 24 hours, got {}",
            format_duration(d)
        ));
    }
    Ok(())
}

fn number(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as u64)
    } else {
        format!("{p}")
    }
}

/// `5Minutes`, `1Minute`, `90Seconds`, `2Hours`: the largest whole unit.
fn duration_name(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s.is_multiple_of(3600) {
        (s / 3600, "Hour")
    } else if s.is_multiple_of(60) {
        (s / 60, "Minute")
    } else {
        (s, "Second")
    };
    format!("{n}{unit}{}", if n == 1 { "" } else { "s" })
}

/// Parses `90s`, `5m`, `1h`, `1m30s` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration: use e.g. 30s, 5m, 1h or 1m30s");
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// `1m30s`, `5m`, `45s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// The `deployment` table of a function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    /// The default strategy of `deploy` (none: move the alias at once,
    /// as without this table).
    pub strategy: Option<Strategy>,
    /// CloudWatch alarms: any in ALARM during the rollout rolls it back.
    pub alarms: Vec<String>,
    /// A function invoked before any traffic moves; a failure moves nothing.
    pub pre_traffic: Option<String>,
    /// A function invoked after all traffic moved; a failure rolls back.
    pub post_traffic: Option<String>,
    /// Percentage of the new version's invocations that may fail (errors
    /// and throttles, from CloudWatch metrics) before a rollback.
    pub error_threshold: f64,
}

impl Default for Deployment {
    fn default() -> Self {
        Deployment {
            strategy: None,
            alarms: Vec::new(),
            pre_traffic: None,
            post_traffic: None,
            error_threshold: DEFAULT_ERROR_THRESHOLD,
        }
    }
}

const KEYS: &[&str] = &[
    "strategy",
    "alarms",
    "pre-traffic",
    "post-traffic",
    "error-threshold",
];

fn bad(key: &str, v: &Value, src: &Source, allowed: impl Into<String>) -> Box<InvalidValue> {
    Box::new(InvalidValue {
        key: format!("deployment.{key}"),
        value: v.to_string(),
        origin: src.clone(),
        allowed: allowed.into(),
    })
}

/// Checks a `deployment = { ... }` value.
pub(super) fn parse(v: &Value, src: &Source) -> Result<Deployment, Box<InvalidValue>> {
    let Value::Object(map) = v else {
        return Err(Box::new(InvalidValue {
            key: "deployment".into(),
            value: v.to_string(),
            origin: src.clone(),
            allowed: format!("expected a table with keys {}", KEYS.join(", ")),
        }));
    };
    let mut out = Deployment::default();
    for (raw_key, value) in map {
        let key = raw_key.replace('_', "-");
        match key.as_str() {
            "strategy" => {
                let Value::String(s) = value else {
                    return Err(bad(&key, value, src, "a strategy name (a string)"));
                };
                out.strategy = Some(Strategy::parse(s).map_err(|e| bad(&key, value, src, e))?);
            }
            "alarms" => {
                let Value::Array(items) = value else {
                    return Err(bad(&key, value, src, "a list of CloudWatch alarm names"));
                };
                for item in items {
                    match item {
                        Value::String(s) if !s.is_empty() && s.len() <= 255 => {
                            out.alarms.push(s.clone())
                        }
                        _ => {
                            return Err(bad(
                                &key,
                                item,
                                src,
                                "alarm names are strings of 1-255 characters",
                            ));
                        }
                    }
                }
                if out.alarms.len() > 100 {
                    return Err(bad(&key, value, src, "at most 100 alarms"));
                }
            }
            "pre-traffic" | "post-traffic" => {
                let Value::String(s) = value else {
                    return Err(bad(&key, value, src, "a Lambda function name or ARN"));
                };
                check_hook(s).map_err(|e| bad(&key, value, src, e))?;
                if key == "pre-traffic" {
                    out.pre_traffic = Some(s.clone());
                } else {
                    out.post_traffic = Some(s.clone());
                }
            }
            "error-threshold" => match value.as_f64() {
                Some(p) if (0.0..=100.0).contains(&p) => out.error_threshold = p,
                _ => {
                    return Err(bad(
                        &key,
                        value,
                        src,
                        "a percentage 0-100 of the new version's invocations (0: any error rolls back)",
                    ));
                }
            },
            _ => {
                return Err(bad(
                    raw_key,
                    value,
                    src,
                    format!("unknown key; allowed: {}", KEYS.join(", ")),
                ));
            }
        }
    }
    Ok(out)
}

/// A hook is a function name (optionally `name:qualifier`) or a function ARN.
fn check_hook(s: &str) -> Result<(), String> {
    if s.starts_with("arn:") {
        return if s.split(':').count() >= 7 && s.contains(":function:") {
            Ok(())
        } else {
            Err("a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)".into())
        };
    }
    let name = s.split_once(':').map_or(s, |(n, _)| n);
    check_function_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codedeploy_names_parse_and_print_back() {
        for name in CODEDEPLOY_NAMES {
            let s = Strategy::parse(name).unwrap();
            assert_eq!(&s.name(), name);
        }
        assert_eq!(
            Strategy::parse("Canary10Percent5Minutes").unwrap(),
            Strategy::Canary {
                percent: 10.0,
                bake: Duration::from_secs(300)
            }
        );
        assert_eq!(
            Strategy::parse("Linear10PercentEvery1Minute").unwrap(),
            Strategy::Linear {
                percent: 10.0,
                every: Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn custom_names_in_seconds_and_hours() {
        let s = Strategy::parse("Linear50PercentEvery2Seconds").unwrap();
        assert_eq!(
            s,
            Strategy::Linear {
                percent: 50.0,
                every: Duration::from_secs(2)
            }
        );
        assert_eq!(s.name(), "Linear50PercentEvery2Seconds");
        let c = Strategy::canary(25.0, Duration::from_secs(90)).unwrap();
        assert_eq!(c.name(), "Canary25Percent90Seconds");
        assert_eq!(Strategy::parse(&c.name()).unwrap(), c);
        assert_eq!(
            Strategy::parse("Canary5Percent1Hour").unwrap().name(),
            "Canary5Percent1Hour"
        );
    }

    #[test]
    fn bad_names_and_values_say_what_is_allowed() {
        for bad in [
            "",
            "Canary",
            "Canary10Percent",
            "Canary10Percent5Fortnights",
            "Linear10Percent1Minute",
            "Canary0Percent5Minutes",
            "Canary100Percent5Minutes",
            "Linear0PercentEvery1Minute",
            "Linear10PercentEvery0Minutes",
            "Canary10Percent25Hours",
            "allatonce",
        ] {
            let e = Strategy::parse(bad).unwrap_err();
            assert!(
                e.contains("Canary") || e.contains("percent") || e.contains("1 second"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        for bad in ["", "m", "5x", "5m3", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(0)), "0s");
    }

    #[test]
    fn the_table_is_checked_key_by_key() {
        let src = Source::Default;
        let d = parse(
            &serde_json::json!({
                "strategy": "Linear10PercentEvery1Minute",
                "alarms": ["errors-high"],
                "pre-traffic": "hooks-pre",
                "post_traffic": "arn:aws:lambda:us-east-1:123456789012:function:hooks-post",
                "error-threshold": 2.5,
            }),
            &src,
        )
        .unwrap();
        assert_eq!(d.alarms, vec!["errors-high".to_string()]);
        assert_eq!(d.pre_traffic.as_deref(), Some("hooks-pre"));
        assert!(d.post_traffic.is_some());
        assert_eq!(d.error_threshold, 2.5);
        for (value, key) in [
            (
                serde_json::json!({"strategy": "Fast"}),
                "deployment.strategy",
            ),
            (serde_json::json!({"alarms": "a"}), "deployment.alarms"),
            (
                serde_json::json!({"pre-traffic": "no spaces"}),
                "deployment.pre-traffic",
            ),
            (
                serde_json::json!({"error-threshold": 101}),
                "deployment.error-threshold",
            ),
            (serde_json::json!({"color": "red"}), "deployment.color"),
        ] {
            let e = parse(&value, &src).unwrap_err();
            assert_eq!(e.key, key);
        }
    }
}
