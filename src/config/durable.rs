//! The `durable` table: the function is a Lambda durable function
//! (Lambda's `DurableConfig`), with how long one execution may run and how
//! long its history is kept once it ends.
//!
//! `durable = { execution-timeout = "1d", retention-days = 30 }`. The
//! timeout is a duration (`90m`, `12h`, `1d`, `1h30m`) or whole seconds,
//! 1 second to 366 days (`ExecutionTimeout`, 1-31622400 seconds); the
//! retention is 1-90 days (`RetentionPeriodInDays`). Pure: parsing and
//! checking only; `deploy` sends it, `watch`'s durable service obeys it.

use serde::Serialize;
use serde_json::Value;

use super::Source;
use super::value::{Result, Table};

/// Keys of the `durable` table.
pub const KEYS: &[&str] = &["execution-timeout", "retention-days"];

/// `ExecutionTimeout` bounds, seconds (366 days at most).
pub const MAX_EXECUTION_TIMEOUT: u32 = 31_622_400;
/// `RetentionPeriodInDays` bounds.
pub const MAX_RETENTION_DAYS: u32 = 90;
/// Lambda's default retention (the API's and CloudFormation's default).
pub const DEFAULT_RETENTION_DAYS: u32 = 14;
/// The execution timeout when the table leaves it out (CloudFormation and
/// SAM require one): 15 minutes, the longest execution a synchronous
/// invoke may wait for, so `cargo fn invoke` works without `--async`.
pub const DEFAULT_EXECUTION_TIMEOUT: u32 = 900;

/// A durable function's settings (the API's `DurableConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Durable {
    /// Seconds one execution may run, across all its invocations.
    pub execution_timeout: u32,
    /// Days the history of an ended execution is kept.
    pub retention_days: u32,
}

impl Default for Durable {
    fn default() -> Self {
        Durable {
            execution_timeout: DEFAULT_EXECUTION_TIMEOUT,
            retention_days: DEFAULT_RETENTION_DAYS,
        }
    }
}

/// Reads the `durable` table: `true` is the defaults, `false` is none.
pub(super) fn parse(v: &Value, src: &Source) -> Result<Option<Durable>> {
    match v {
        Value::Bool(true) => return Ok(Some(Durable::default())),
        Value::Bool(false) => return Ok(None),
        _ => {}
    }
    let t = Table::nested("durable".into(), v, src, KEYS)?;
    let mut out = Durable::default();
    if let Some(raw) = t.get("execution-timeout") {
        let allowed = "a duration of 1s to 366d: whole seconds or e.g. 90m, 12h, 1d, 1h30m";
        let seconds = match raw {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => parse_seconds(s),
            _ => None,
        };
        out.execution_timeout = match seconds {
            Some(s) if (1..=MAX_EXECUTION_TIMEOUT as u64).contains(&s) => s as u32,
            _ => return Err(t.bad("execution-timeout", raw, allowed)),
        };
    }
    if let Some(days) = t.int("retention-days", 1, MAX_RETENTION_DAYS as i64, " days")? {
        out.retention_days = days as u32;
    }
    Ok(Some(out))
}

/// `90`, `90s`, `15m`, `12h`, `1d`, `1d12h`: seconds, or none when the
/// text is not such a duration.
pub fn parse_seconds(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Some(n);
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
    }
    (digits.is_empty() && !t.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src() -> Source {
        Source::Default
    }

    #[test]
    fn durations_and_bounds() {
        assert_eq!(parse_seconds("90m"), Some(5400));
        assert_eq!(parse_seconds("1d"), Some(86_400));
        assert_eq!(parse_seconds("1h30m"), Some(5400));
        assert_eq!(parse_seconds("42"), Some(42));
        assert_eq!(parse_seconds("1w"), None);
        assert_eq!(parse_seconds("m"), None);
        let d = parse(&json!({"execution-timeout": "366d"}), &src()).unwrap();
        assert_eq!(d.unwrap().execution_timeout, MAX_EXECUTION_TIMEOUT);
        assert!(parse(&json!({"execution-timeout": "367d"}), &src()).is_err());
        assert!(parse(&json!({"execution-timeout": 0}), &src()).is_err());
        let e = parse(&json!({"retention-days": 91}), &src()).unwrap_err();
        assert!(e.to_string().contains("durable.retention-days"), "{e}");
        assert!(parse(&json!({"retention_days": 90}), &src()).is_ok());
        assert!(parse(&json!({"timeout": 90}), &src()).is_err());
        assert_eq!(
            parse(&json!(true), &src()).unwrap(),
            Some(Durable::default())
        );
        assert_eq!(parse(&json!(false), &src()).unwrap(), None);
    }
}
