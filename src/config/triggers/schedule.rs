//! The rules of a `schedule` trigger (EventBridge Scheduler
//! `CreateSchedule`); the expression grammar is `expression.rs`.

use serde_json::Value;

use super::ScheduleTrigger;
use super::expression::check_schedule_expression;
use super::read::only;
use crate::config::value::{Result, Table};

pub(super) fn schedule(t: &Table) -> Result<ScheduleTrigger> {
    only(
        t,
        "schedule",
        &[
            "expression",
            "timezone",
            "flexible-window",
            "input",
            "maximum-event-age",
            "maximum-retry-attempts",
            "enabled",
        ],
    )?;
    let expression = t.required(
        "expression",
        "rate(N unit), cron(min hour day-of-month month day-of-week year) or at(yyyy-mm-ddThh:mm:ss)",
    )?;
    check_schedule_expression(&expression)
        .map_err(|a| t.bad("expression", &Value::String(expression.clone()), a))?;
    let timezone = t.string("timezone")?;
    if let Some(tz) = &timezone {
        // The tz database built into cargo-fn (local schedules use it too).
        let ok = !tz.is_empty()
            && tz.len() <= 50
            && tz
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
            && jiff::tz::TimeZone::get(tz).is_ok();
        if !ok {
            return Err(t.bad(
                "timezone",
                &Value::String(tz.clone()),
                "an IANA time zone such as Europe/Paris or UTC",
            ));
        }
    }
    let input = match t.get("input") {
        None => None,
        Some(Value::String(s)) => {
            if serde_json::from_str::<Value>(s).is_err() {
                return Err(t.bad("input", &Value::String(s.clone()), "valid JSON text"));
            }
            Some(s.clone())
        }
        Some(v @ Value::Object(_)) => Some(v.to_string()),
        Some(v) => return Err(t.bad("input", v, "JSON text or a table")),
    };
    if let Some(i) = &input
        && i.len() > 8192
    {
        return Err(t.bad(
            "input",
            &Value::String(format!("({} characters)", i.len())),
            "at most 8192 characters of JSON",
        ));
    }
    Ok(ScheduleTrigger {
        expression,
        timezone,
        flexible_window: t
            .int("flexible-window", 1, 1440, " minutes")?
            .map(|n| n as u32),
        input,
        maximum_event_age: t
            .int("maximum-event-age", 60, 86_400, " seconds")?
            .map(|n| n as u32),
        maximum_retry_attempts: t
            .int("maximum-retry-attempts", 0, 185, "")?
            .map(|n| n as u32),
        enabled: t.boolean("enabled", true)?,
    })
}
