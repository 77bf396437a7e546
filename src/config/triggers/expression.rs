//! The grammar of EventBridge Scheduler expressions: `rate(...)`,
//! `cron(...)` (six fields) and `at(...)`, checked as text.

/// A Scheduler expression: `rate(...)`, `cron(...)` or `at(...)`.
pub fn check_schedule_expression(e: &str) -> std::result::Result<(), String> {
    if let Some(inner) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        return check_rate(inner);
    }
    if let Some(inner) = e.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
        return check_cron(inner);
    }
    if let Some(inner) = e.strip_prefix("at(").and_then(|r| r.strip_suffix(')')) {
        return check_datetime(inner).map_err(|m| format!("at(yyyy-mm-ddThh:mm:ss): {m}"));
    }
    Err("rate(N unit), cron(min hour day-of-month month day-of-week year) or at(yyyy-mm-ddThh:mm:ss)".into())
}

/// `N unit`: a positive whole number, then `minute`/`hour`/`day` when N is
/// 1 and `minutes`/`hours`/`days` otherwise.
fn check_rate(inner: &str) -> std::result::Result<(), String> {
    let usage = "rate(N unit): N a positive whole number, unit minute|hour|day for 1 and minutes|hours|days above";
    let Some((n, unit)) = inner.split_once(' ') else {
        return Err(usage.into());
    };
    let Ok(n) = n.parse::<u64>() else {
        return Err(usage.into());
    };
    if n == 0 {
        return Err(usage.into());
    }
    let singular = ["minute", "hour", "day"];
    let plural = ["minutes", "hours", "days"];
    if n == 1 && singular.contains(&unit) || n > 1 && plural.contains(&unit) {
        return Ok(());
    }
    if n == 1 && plural.contains(&unit) {
        return Err(format!(
            "rate(1 {}): the unit is singular for 1",
            unit.trim_end_matches('s')
        ));
    }
    if n > 1 && singular.contains(&unit) {
        return Err(format!("rate({n} {unit}s): the unit is plural above 1"));
    }
    Err(usage.into())
}

/// `yyyy-mm-ddThh:mm:ss` with real calendar dates.
pub(super) fn check_datetime(s: &str) -> std::result::Result<(), String> {
    let bad = || Err("a date and time yyyy-mm-ddThh:mm:ss".to_string());
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return bad();
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.chars()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return bad();
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return bad(),
    };
    if d == 0 || d > days || h > 23 || mi > 59 || sec > 59 {
        return bad();
    }
    Ok(())
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The six fields of a Scheduler cron expression.
fn check_cron(inner: &str) -> std::result::Result<(), String> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "cron() takes 6 fields (minutes hours day-of-month month day-of-week year), found {}",
            fields.len()
        ));
    }
    let names = [
        "minutes",
        "hours",
        "day-of-month",
        "month",
        "day-of-week",
        "year",
    ];
    let specs: [(u32, u32, &[&str]); 6] = [
        (0, 59, &[]),
        (0, 23, &[]),
        (1, 31, &[]),
        (1, 12, MONTHS),
        (1, 7, WEEKDAYS),
        (1970, 2199, &[]),
    ];
    for (i, f) in fields.iter().enumerate() {
        let (min, max, words) = specs[i];
        cron_field(f, i, min, max, words)
            .map_err(|m| format!("cron field {} ({}) `{f}`: {m}", i + 1, names[i]))?;
    }
    let (dom, dow) = (fields[2], fields[4]);
    if (dom == "?") == (dow == "?") {
        return Err(
            "cron(): exactly one of day-of-month (field 3) and day-of-week (field 5) must be `?`"
                .into(),
        );
    }
    Ok(())
}

fn cron_field(
    f: &str,
    index: usize,
    min: u32,
    max: u32,
    words: &[&str],
) -> std::result::Result<(), String> {
    let range = format!(
        "values {min}-{max}{}",
        if words.is_empty() {
            String::new()
        } else {
            format!(" or {}-{}", words[0], words[words.len() - 1])
        }
    );
    let value = |s: &str| -> std::result::Result<u32, String> {
        if let Some(i) = words.iter().position(|w| w.eq_ignore_ascii_case(s)) {
            return Ok(min + i as u32);
        }
        match s.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("`{s}` is out of range: {range}")),
        }
    };
    if f == "?" {
        return if index == 2 || index == 4 {
            Ok(())
        } else {
            Err("`?` only in day-of-month or day-of-week".into())
        };
    }
    for item in f.split(',') {
        if item.is_empty() {
            return Err("an empty list item".into());
        }
        // Day-of-month: L, LW, 15W. Day-of-week: L, 5L, 3#2.
        if index == 2 {
            if item == "L" || item == "LW" {
                continue;
            }
            if let Some(d) = item.strip_suffix('W') {
                value(d)?;
                continue;
            }
        }
        if index == 4 {
            if item == "L" {
                continue;
            }
            if let Some(d) = item.strip_suffix('L') {
                value(d)?;
                continue;
            }
            if let Some((d, n)) = item.split_once('#') {
                value(d)?;
                match n.parse::<u32>() {
                    Ok(1..=5) => continue,
                    _ => return Err(format!("`#{n}`: the nth weekday of the month is 1-5")),
                }
            }
        }
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (item, None),
        };
        if let Some(s) = step {
            match s.parse::<u32>() {
                Ok(n) if n >= 1 && n <= max => {}
                _ => return Err(format!("`/{s}`: the increment is 1-{max}")),
            }
        }
        if base == "*" {
            continue;
        }
        match base.split_once('-') {
            Some((a, b)) => {
                value(a)?;
                value(b)?;
            }
            None => {
                value(base)?;
            }
        }
    }
    Ok(())
}
