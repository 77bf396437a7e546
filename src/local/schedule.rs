//! Schedules run locally: EventBridge Scheduler's `rate(...)`, `cron(...)`
//! and `at(...)` expressions evaluated in the schedule's IANA time zone, the
//! event Scheduler sends, and the firing loop (on an injectable clock).
//!
//! Evaluation follows Scheduler's documented rules: a `rate` schedule
//! without a start date first fires when it is created (here: when `watch`
//! starts) and then every N units of fixed length (a day is 24 hours, even
//! across a DST change); `cron` fields are wall-clock times in the time
//! zone: a time that does not exist (the spring-forward gap) is skipped and
//! a time that happens twice (the fall-back overlap) fires once, at its
//! first occurrence; `at` fires once. Time zones come from the tz database
//! bundled into the binary (jiff's `tzdb-bundle-always`), so results do not
//! depend on the machine's `/usr/share/zoneinfo`.
//!
//! This module knows no AWS SDK; the next firing is a pure function of the
//! expression and a time ([`Schedule::next_after`]), and the loop runs on a
//! [`Clock`] its caller gives ([`ManualClock`] drives it from a test).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use jiff::Timestamp;

use super::{Context, Scope, Source};
use crate::config::triggers::ScheduleTrigger;
use crate::emulator::Invoker;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use serde_json::{Value, json};

/// A parsed schedule expression with its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
    tz: TimeZone,
    timezone: String,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Every this many seconds from the anchor (the anchor included).
    Rate(i64),
    Cron(Box<Cron>),
    At(DateTime),
}

impl Schedule {
    /// Parses `expression` (as configuration validated it) in `timezone`
    /// (UTC when `None`). The error says what is wrong with which part.
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Schedule, String> {
        crate::config::triggers::check_schedule_expression(expression)?;
        let timezone = timezone.unwrap_or("UTC").to_string();
        let tz = TimeZone::get(&timezone).map_err(|_| {
            format!("time zone `{timezone}` is not in the tz database (e.g. Europe/Paris, America/New_York, UTC)")
        })?;
        let inner = |prefix: &str| {
            expression
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(')'))
        };
        let kind = if let Some(r) = inner("rate(") {
            let (n, unit) = r.split_once(' ').ok_or("rate(N unit)")?;
            let n: i64 = n.parse().map_err(|_| "rate(N unit)".to_string())?;
            let unit = match unit.trim_end_matches('s') {
                "minute" => 60,
                "hour" => 3600,
                _ => 86_400,
            };
            Kind::Rate(n.saturating_mul(unit))
        } else if let Some(c) = inner("cron(") {
            Kind::Cron(Box::new(Cron::parse(c)?))
        } else if let Some(a) = inner("at(") {
            Kind::At(a.parse::<DateTime>().map_err(|e| format!("at({a}): {e}"))?)
        } else {
            return Err(format!("unknown schedule expression `{expression}`"));
        };
        Ok(Schedule { kind, tz, timezone })
    }

    /// The IANA name of the schedule's time zone.
    pub fn timezone(&self) -> &str {
        &self.timezone
    }

    /// The first firing strictly after `after`, for a schedule created at
    /// `anchor` (which only `rate` uses). `None`: it never fires again.
    pub fn next_after(&self, anchor: Timestamp, after: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            Kind::Rate(every) => {
                let (a, t) = (anchor.as_second(), after.as_second());
                let k = if t < a {
                    0
                } else {
                    (t - a).div_euclid(*every) + 1
                };
                Timestamp::from_second(a + k * every).ok()
            }
            Kind::At(dt) => {
                let at = first_occurrence(&self.tz, *dt)?;
                (at > after).then_some(at)
            }
            Kind::Cron(c) => c.next_after(&self.tz, after),
        }
    }
}

/// The instant of a wall-clock time: `None` in a DST gap, the first one in
/// an overlap.
fn first_occurrence(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    let offset = match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset,
        AmbiguousOffset::Gap { .. } => return None,
        AmbiguousOffset::Fold { before, .. } => before,
    };
    offset.to_timestamp(dt).ok()
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const FIRST_YEAR: i32 = 1970;
const LAST_YEAR: i32 = 2199;

/// A Scheduler cron expression: six fields, each a set of allowed values,
/// with `L`, `W` and `#` for the day fields.
#[derive(Debug, Clone)]
struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    months: Vec<bool>,
    /// Index 0 is 1970.
    years: Vec<bool>,
    /// `None` when the field is `?`.
    day_of_month: Option<Vec<DomItem>>,
    day_of_week: Option<Vec<DowItem>>,
}

#[derive(Debug, Clone, PartialEq)]
enum DomItem {
    /// Days 1-31 allowed (index = day).
    Days(Vec<bool>),
    /// `L`: the last day of the month.
    Last,
    /// `LW`: the last weekday (Monday-Friday) of the month.
    LastWeekday,
    /// `15W`: the weekday nearest the 15th, within the month.
    NearestWeekday(i8),
}

#[derive(Debug, Clone, PartialEq)]
enum DowItem {
    /// Weekdays 1 (Sunday) - 7 (Saturday) allowed (index = weekday).
    Days(Vec<bool>),
    /// `5L`: the last Thursday of the month (`L` alone: Saturday).
    Last(i8),
    /// `3#2`: the second Tuesday of the month.
    Nth(i8, i8),
}

impl Cron {
    fn parse(inner: &str) -> Result<Cron, String> {
        let f: Vec<&str> = inner.split_whitespace().collect();
        if f.len() != 6 {
            return Err(format!("cron() takes 6 fields, found {}", f.len()));
        }
        let day_of_month = if f[2] == "?" {
            None
        } else {
            Some(
                f[2].split(',')
                    .map(|item| match item {
                        "L" => Ok(DomItem::Last),
                        "LW" => Ok(DomItem::LastWeekday),
                        _ => match item.strip_suffix('W') {
                            Some(d) => Ok(DomItem::NearestWeekday(value(d, 1, 31, &[])? as i8)),
                            None => set(item, 1, 31, &[]).map(DomItem::Days),
                        },
                    })
                    .collect::<Result<Vec<_>, String>>()?,
            )
        };
        let day_of_week = if f[4] == "?" {
            None
        } else {
            Some(
                f[4].split(',')
                    .map(|item| {
                        if item == "L" {
                            return Ok(DowItem::Last(7));
                        }
                        if let Some(d) = item.strip_suffix('L') {
                            return Ok(DowItem::Last(value(d, 1, 7, WEEKDAYS)? as i8));
                        }
                        if let Some((d, n)) = item.split_once('#') {
                            let n: i8 = n.parse().map_err(|_| format!("`#{n}`: 1-5"))?;
                            return Ok(DowItem::Nth(value(d, 1, 7, WEEKDAYS)? as i8, n));
                        }
                        set(item, 1, 7, WEEKDAYS).map(DowItem::Days)
                    })
                    .collect::<Result<Vec<_>, String>>()?,
            )
        };
        let years = set(f[5], FIRST_YEAR as u32, LAST_YEAR as u32, &[])?;
        Ok(Cron {
            minutes: set(f[0], 0, 59, &[])?,
            hours: set(f[1], 0, 23, &[])?,
            months: set(f[3], 1, 12, MONTHS)?,
            years: years[FIRST_YEAR as usize..].to_vec(),
            day_of_month,
            day_of_week,
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = self.day_of_month.as_ref().is_some_and(|items| {
            items.iter().any(|i| match i {
                DomItem::Days(days) => days[d.day() as usize],
                DomItem::Last => d.day() == d.days_in_month(),
                DomItem::LastWeekday => d == last_weekday(d),
                DomItem::NearestWeekday(n) => nearest_weekday(d, *n) == Some(d),
            })
        });
        let weekday = d.weekday().to_sunday_one_offset();
        let dow = self.day_of_week.as_ref().is_some_and(|items| {
            items.iter().any(|i| match i {
                DowItem::Days(days) => days[weekday as usize],
                DowItem::Last(w) => *w == weekday && d.day() + 7 > d.days_in_month(),
                DowItem::Nth(w, n) => *w == weekday && (d.day() - 1) / 7 + 1 == *n,
            })
        });
        dom || dow
    }

    /// Walks the calendar day by day from `after`'s local date; each
    /// matching day's times in order, skipping times that do not exist.
    fn next_after(&self, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        let mut day = tz.to_datetime(after).date();
        // An overlap can put the next instant on the previous local date.
        day = day.yesterday().ok()?;
        loop {
            let year = i32::from(day.year());
            if year > LAST_YEAR {
                return None;
            }
            let year_ok = year >= FIRST_YEAR && self.years[(year - FIRST_YEAR) as usize];
            if !year_ok {
                day = Date::new((year + 1) as i16, 1, 1).ok()?;
                continue;
            }
            if !self.months[day.month() as usize] {
                day = day.last_of_month().tomorrow().ok()?;
                continue;
            }
            if self.day_matches(day) {
                for h in (0..24).filter(|h| self.hours[*h as usize]) {
                    for m in (0..60).filter(|m| self.minutes[*m as usize]) {
                        let Ok(dt) = DateTime::new(day.year(), day.month(), day.day(), h, m, 0, 0)
                        else {
                            continue;
                        };
                        if let Some(at) = first_occurrence(tz, dt)
                            && at > after
                        {
                            return Some(at);
                        }
                    }
                }
            }
            day = day.tomorrow().ok()?;
        }
    }
}

fn last_weekday(d: Date) -> Date {
    let mut last = d.last_of_month();
    while last.weekday().to_sunday_one_offset() == 1 || last.weekday().to_sunday_one_offset() == 7 {
        last = last.yesterday().expect("a date in range");
    }
    last
}

/// The weekday nearest day `n` of `d`'s month, without leaving the month
/// (`None` when the month has no day `n`).
fn nearest_weekday(d: Date, n: i8) -> Option<Date> {
    let target = Date::new(d.year(), d.month(), n).ok()?;
    let dim = d.days_in_month();
    let day = match target.weekday().to_sunday_one_offset() {
        // Saturday: Friday, or Monday when the 1st is a Saturday.
        7 if n == 1 => n + 2,
        7 => n - 1,
        // Sunday: Monday, or Friday when it is the month's last day.
        1 if n == dim => n - 2,
        1 => n + 1,
        _ => n,
    };
    Date::new(d.year(), d.month(), day).ok()
}

/// A named or numbered value of a field.
fn value(s: &str, min: u32, max: u32, names: &[&str]) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(min + i as u32);
    }
    match s.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` is outside {min}-{max}")),
    }
}

/// The values a comma list of `*`, `a`, `a-b` (wrapping when a > b),
/// each with an optional `/step`, allows; indexed by value.
fn set(field: &str, min: u32, max: u32, names: &[&str]) -> Result<Vec<bool>, String> {
    let mut allowed = vec![false; max as usize + 1];
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (
                b,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or_else(|| format!("`/{s}`: a positive increment"))?,
            ),
            None => (item, 1),
        };
        let (from, to) = if base == "*" {
            (min, max)
        } else if let Some((a, b)) = base.split_once('-') {
            (value(a, min, max, names)?, value(b, min, max, names)?)
        } else {
            let v = value(base, min, max, names)?;
            // `a/step` runs from a to the end of the range.
            (v, if item.contains('/') { max } else { v })
        };
        let span = max - min + 1;
        let count = if to >= from {
            to - from
        } else {
            to + span - from
        };
        for k in (0..=count).step_by(step as usize) {
            let v = min + (from - min + k) % span;
            allowed[v as usize] = true;
        }
    }
    Ok(allowed)
}

/// The event Scheduler sends a Lambda target that has no `input`: an
/// EventBridge-shaped "Scheduled Event" whose `detail` is the JSON text
/// `"{}"` (a string, unlike EventBridge rules' object), `time` the
/// scheduled time.
pub fn scheduled_event(schedule_arn: &str, region: &str, account: &str, time: Timestamp) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": account,
        "time": time.to_string(),
        "region": region,
        "resources": [schedule_arn],
        "detail": "{}",
    })
}

/// Time for the firing loop: the system clock, or one a test drives.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
    /// Resolves once `now() >= at`.
    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()>;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let ms = at.as_millisecond() - Timestamp::now().as_millisecond();
        Box::pin(tokio::time::sleep(Duration::from_millis(ms.max(0) as u64)))
    }
}

/// A clock that only moves when told to ([`ManualClock::set`]): lets a
/// caller (a test, a demo) run a schedule's firing loop through hours of
/// schedule in an instant, with the product's own loop.
#[derive(Debug)]
pub struct ManualClock(tokio::sync::watch::Sender<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Arc<ManualClock> {
        Arc::new(ManualClock(tokio::sync::watch::Sender::new(start)))
    }

    /// Moves the clock to `to` (never backwards), waking what is due.
    pub fn set(&self, to: Timestamp) {
        self.0.send_if_modified(|now| {
            let later = to > *now;
            if later {
                *now = to;
            }
            later
        });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.borrow()
    }

    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            let _ = rx.wait_for(|now| *now >= at).await;
        })
    }
}

/// How one delivery attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// The function ran; `error` is its function error (`Unhandled`, ...).
    Ran {
        request_id: String,
        error: Option<String>,
    },
    /// The invocation was refused (throttled, function not served): a
    /// failed delivery that Scheduler retries.
    Refused(String),
}

/// Invokes the function with an event payload.
pub type Deliver = Arc<dyn Fn(bytes::Bytes) -> BoxFuture<'static, Attempt> + Send + Sync>;
/// Receives the loop's log lines (without the trigger prefix).
pub type LogLine = Arc<dyn Fn(String) + Send + Sync>;

/// Lambda retries a function error of an asynchronous invocation (which is
/// how Scheduler invokes) twice, after one and then two minutes.
const ASYNC_RETRY_DELAYS: [i64; 2] = [60, 120];

/// A schedule's firing loop and how it delivers.
#[derive(Clone)]
pub struct Runner {
    pub schedule: Schedule,
    /// When the schedule was created (`watch` started): a `rate` fires then.
    pub anchor: Timestamp,
    pub clock: Arc<dyn Clock>,
    /// `maximum-retry-attempts` (Scheduler default 185).
    pub maximum_retry_attempts: u32,
    /// `maximum-event-age` in seconds (Scheduler default 86,400).
    pub maximum_event_age: u32,
    /// The payload: the trigger's `input`, or `None` for Scheduler's event.
    pub input: Option<String>,
    /// `arn:aws:scheduler:<region>:<account>:schedule/default/<name>`.
    pub schedule_arn: String,
    pub region: String,
    pub account: String,
    pub deliver: Deliver,
    pub log: LogLine,
    /// The next firing, for status.
    pub next: Arc<Mutex<Option<Timestamp>>>,
}

impl Runner {
    /// The payload of attempt `attempt` (1 for the first) of the firing
    /// scheduled at `time`: the `input` with Scheduler's context attributes
    /// filled in (`<aws.scheduler.schedule-arn>`, `scheduled-time`,
    /// `execution-id`, `attempt-number`), or Scheduler's own event.
    pub fn payload(&self, time: Timestamp, execution_id: &str, attempt: u32) -> bytes::Bytes {
        match &self.input {
            Some(input) => bytes::Bytes::from(
                input
                    .replace("<aws.scheduler.schedule-arn>", &self.schedule_arn)
                    .replace("<aws.scheduler.scheduled-time>", &time.to_string())
                    .replace("<aws.scheduler.execution-id>", execution_id)
                    .replace("<aws.scheduler.attempt-number>", &attempt.to_string()),
            ),
            None => bytes::Bytes::from(
                scheduled_event(&self.schedule_arn, &self.region, &self.account, time).to_string(),
            ),
        }
    }

    /// Fires on every scheduled time until the schedule has no next
    /// firing. Each firing is delivered on its own task, so a slow function
    /// never delays the next one. Times missed while the clock jumped (a
    /// suspended laptop) are skipped, not replayed.
    pub async fn run(self) {
        let mut last = Timestamp::from_second(self.anchor.as_second() - 1).unwrap_or(self.anchor);
        loop {
            let Some(next) = self.schedule.next_after(self.anchor, last) else {
                *self.next.lock().expect("next lock") = None;
                (self.log)("no more firings".into());
                return;
            };
            *self.next.lock().expect("next lock") = Some(next);
            self.clock.sleep_until(next).await;
            let me = self.clone();
            tokio::spawn(async move { me.deliver_at(next).await });
            last = next.max(self.clock.now());
        }
    }

    /// Delivers the firing scheduled at `time`, with Scheduler's retries of
    /// a refused invocation (exponential backoff, up to
    /// `maximum_retry_attempts` and `maximum_event_age`) and Lambda's two
    /// retries of a function error. Returns the last attempt.
    pub async fn deliver_at(&self, time: Timestamp) -> Attempt {
        let execution_id = uuid::Uuid::new_v4().to_string();
        let mut refusals = 0u32;
        let mut errors = 0usize;
        loop {
            // Retry delays count from the attempt's start.
            let started = self.clock.now();
            let number = refusals + errors as u32 + 1;
            let payload = self.payload(time, &execution_id, number);
            let attempt = (self.deliver)(payload).await;
            let delay = match &attempt {
                Attempt::Ran {
                    request_id,
                    error: None,
                } => {
                    (self.log)(format!("fired for {time} -> {request_id}"));
                    return attempt;
                }
                Attempt::Ran {
                    request_id,
                    error: Some(e),
                } => {
                    let Some(delay) = ASYNC_RETRY_DELAYS.get(errors) else {
                        (self.log)(format!(
                            "firing for {time} failed ({e}, {request_id}) after {errors} retries: dropped"
                        ));
                        return attempt;
                    };
                    errors += 1;
                    (self.log)(format!(
                        "firing for {time} failed ({e}, {request_id}): retry {errors} in {delay}s"
                    ));
                    *delay
                }
                Attempt::Refused(why) => {
                    let age = started.as_second() - time.as_second();
                    if refusals >= self.maximum_retry_attempts
                        || age >= i64::from(self.maximum_event_age)
                    {
                        (self.log)(format!(
                            "firing for {time} not delivered ({why}) after {refusals} retries: dropped"
                        ));
                        return attempt;
                    }
                    let delay = 1i64 << refusals.min(6);
                    refusals += 1;
                    (self.log)(format!(
                        "firing for {time} refused ({why}): retry {refusals} in {delay}s"
                    ));
                    delay
                }
            };
            let at = started.as_second() + delay;
            self.clock
                .sleep_until(Timestamp::from_second(at).unwrap_or(Timestamp::MAX))
                .await;
        }
    }
}

/// A configured schedule under `watch`: its firing loop and "fire now".
pub struct ScheduleSource {
    function: String,
    trigger: String,
    expression: String,
    enabled: bool,
    runner: Runner,
    invoker: Invoker,
    /// The last line the loop logged, for status.
    last: Arc<Mutex<Option<String>>>,
}

/// Starts the schedule `name` of `function` on `clock` (the system clock
/// under `watch`) and adds it to the triggers' status and fire API. A
/// disabled schedule does not fire on its own; "fire now" still works.
pub fn start(
    cx: &Context,
    function: &str,
    name: &str,
    t: &ScheduleTrigger,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    let schedule = Schedule::parse(&t.expression, t.timezone.as_deref())
        .map_err(|e| anyhow::anyhow!("schedule `{name}` of `{function}`: {e}"))?;
    let scope = Scope::of(&cx.invoker);
    let last = Arc::new(Mutex::new(None));
    let deliver: Deliver = {
        let invoker = cx.invoker.clone();
        let function = function.to_string();
        let caller = format!("schedule:{name}");
        Arc::new(move |payload| {
            let (invoker, function, caller) = (invoker.clone(), function.clone(), caller.clone());
            Box::pin(async move {
                match invoker.invoke(&function, payload, &caller).await {
                    Ok(done) => Attempt::Ran {
                        request_id: done.request_id,
                        error: done.function_error,
                    },
                    Err(refused) => Attempt::Refused(refused.to_string()),
                }
            })
        })
    };
    let log: LogLine = {
        // The watch output, without holding the trigger registry.
        let ui = cx.ui;
        let (name, last) = (name.to_string(), last.clone());
        Arc::new(move |line: String| {
            ui.status("Trigger", format!("[schedule:{name}] {line}"));
            *last.lock().expect("last lock") = Some(line);
        })
    };
    let runner = Runner {
        schedule,
        anchor: clock.now(),
        clock,
        maximum_retry_attempts: t.maximum_retry_attempts.unwrap_or(185),
        maximum_event_age: t.maximum_event_age.unwrap_or(86_400),
        input: t.input.clone(),
        // Deploy names the schedule `<function>.<trigger>` in the default group.
        schedule_arn: scope.arn("scheduler", &format!("schedule/default/{function}.{name}")),
        region: scope.region.clone(),
        account: scope.account.clone(),
        deliver,
        log,
        next: Arc::default(),
    };
    if t.enabled {
        cx.triggers.spawn(runner.clone().run());
    }
    cx.triggers.add_source(Arc::new(ScheduleSource {
        function: function.to_string(),
        trigger: name.to_string(),
        expression: t.expression.clone(),
        enabled: t.enabled,
        runner,
        invoker: cx.invoker.clone(),
        last,
    }));
    Ok(())
}

impl Source for ScheduleSource {
    fn function(&self) -> &str {
        &self.function
    }

    fn trigger(&self) -> &str {
        &self.trigger
    }

    fn kind(&self) -> &'static str {
        "schedule"
    }

    fn status(&self) -> Value {
        let next = *self.runner.next.lock().expect("next lock");
        let mut v = json!({
            "expression": self.expression,
            "timezone": self.runner.schedule.timezone(),
            "next": match (self.enabled, next) {
                (false, _) => "disabled".to_string(),
                (true, Some(t)) => t.to_string(),
                (true, None) => "never".to_string(),
            },
        });
        if let Some(last) = self.last.lock().expect("last lock").clone() {
            v["last"] = Value::String(last);
        }
        v
    }

    /// Invokes the function once now, synchronously, with `payload` or the
    /// event of a firing scheduled now; answers the function's response.
    fn fire(&self, payload: Option<Value>) -> BoxFuture<'_, anyhow::Result<Value>> {
        Box::pin(async move {
            let now = self.runner.clock.now();
            let time = Timestamp::from_second(now.as_second()).unwrap_or(now);
            let body = match payload {
                Some(v) => bytes::Bytes::from(v.to_string()),
                None => self
                    .runner
                    .payload(time, &uuid::Uuid::new_v4().to_string(), 1),
            };
            let caller = format!("schedule:{}", self.trigger);
            let done = self
                .invoker
                .invoke(&self.function, body, &caller)
                .await
                .map_err(|e| anyhow::anyhow!("`{}` was not invoked: {e}", self.function))?;
            (self.runner.log)(format!("fired now -> {}", done.request_id));
            Ok(super::events::outcome(&done))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// The next `n` firings after `from`.
    fn firings(expr: &str, tz: Option<&str>, from: &str, n: usize) -> Vec<String> {
        let s = Schedule::parse(expr, tz).unwrap();
        let anchor = ts(from);
        let mut t = anchor;
        let mut out = Vec::new();
        for _ in 0..n {
            match s.next_after(anchor, t) {
                Some(next) => {
                    out.push(next.to_string());
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    #[test]
    fn rate_fires_at_start_then_every_period() {
        let s = Schedule::parse("rate(5 minutes)", None).unwrap();
        let anchor = ts("2026-11-30T04:00:30Z");
        let before = ts("2026-11-30T04:00:29Z");
        assert_eq!(s.next_after(anchor, before), Some(anchor));
        assert_eq!(
            s.next_after(anchor, anchor).unwrap().to_string(),
            "2026-11-30T04:05:30Z"
        );
        assert_eq!(
            s.next_after(anchor, ts("2026-11-30T04:07:00Z"))
                .unwrap()
                .to_string(),
            "2026-11-30T04:10:30Z"
        );
        // A day is 24 hours, even across a DST change.
        let s = Schedule::parse("rate(1 day)", Some("Europe/Paris")).unwrap();
        let anchor = ts("2026-03-28T12:00:00Z");
        assert_eq!(
            s.next_after(anchor, anchor).unwrap().to_string(),
            "2026-03-29T12:00:00Z"
        );
    }

    #[test]
    fn cron_in_utc_and_in_a_zone() {
        assert_eq!(
            firings("cron(0/15 10 * * ? *)", None, "2026-11-30T10:20:00Z", 3),
            [
                "2026-11-30T10:30:00Z",
                "2026-11-30T10:45:00Z",
                "2026-12-01T10:00:00Z"
            ]
        );
        // 08:00 in New York is 13:00Z in winter, 12:00Z in summer.
        assert_eq!(
            firings(
                "cron(0 8 ? * MON-FRI *)",
                Some("America/New_York"),
                "2026-03-06T00:00:00Z",
                3
            ),
            [
                "2026-03-06T13:00:00Z",
                "2026-03-09T12:00:00Z",
                "2026-03-10T12:00:00Z"
            ]
        );
    }

    #[test]
    fn dst_gap_is_skipped_and_overlap_fires_once() {
        // 02:30 does not exist in New York on 2026-03-08.
        assert_eq!(
            firings(
                "cron(30 2 * * ? *)",
                Some("America/New_York"),
                "2026-03-07T00:00:00Z",
                2
            ),
            ["2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z"]
        );
        // 01:30 happens twice on 2026-11-01: fires at the first (EDT) only.
        assert_eq!(
            firings(
                "cron(30 1 * * ? *)",
                Some("America/New_York"),
                "2026-10-31T12:00:00Z",
                2
            ),
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
        );
        // Every 30 minutes through the overlap: the repeated hour is not repeated.
        assert_eq!(
            firings(
                "cron(0/30 * * * ? *)",
                Some("America/New_York"),
                "2026-11-01T05:00:00Z",
                4
            ),
            [
                "2026-11-01T05:30:00Z",
                "2026-11-01T07:00:00Z",
                "2026-11-01T07:30:00Z",
                "2026-11-01T08:00:00Z"
            ]
        );
    }

    #[test]
    fn last_weekday_nearest_and_nth() {
        // L: last day of the month (February 2028 is a leap month).
        assert_eq!(
            firings("cron(0 0 L * ? *)", None, "2028-02-01T00:00:00Z", 2),
            ["2028-02-29T00:00:00Z", "2028-03-31T00:00:00Z"]
        );
        // LW: last weekday; 2026-05-31 is a Sunday, 2026-10-31 a Saturday.
        assert_eq!(
            firings("cron(0 0 LW 5,10 ? *)", None, "2026-01-01T00:00:00Z", 2),
            ["2026-05-29T00:00:00Z", "2026-10-30T00:00:00Z"]
        );
        // 1W: 2026-08-01 is a Saturday, so Monday the 3rd (not July 31st).
        // 15W: 2026-11-15 is a Sunday, so Monday the 16th.
        assert_eq!(
            firings("cron(0 0 1W 8 ? 2026)", None, "2026-01-01T00:00:00Z", 2),
            ["2026-08-03T00:00:00Z"]
        );
        assert_eq!(
            firings("cron(0 0 15W 11 ? 2026)", None, "2026-01-01T00:00:00Z", 1),
            ["2026-11-16T00:00:00Z"]
        );
        // 6L: last Friday; 3#2: second Tuesday; L alone: Saturday.
        assert_eq!(
            firings("cron(0 12 ? 11 6L 2026)", None, "2026-01-01T00:00:00Z", 1),
            ["2026-11-27T12:00:00Z"]
        );
        assert_eq!(
            firings(
                "cron(0 12 ? JAN,FEB TUE#2 2027)",
                None,
                "2026-01-01T00:00:00Z",
                3
            ),
            ["2027-01-12T12:00:00Z", "2027-02-09T12:00:00Z"]
        );
        assert_eq!(
            firings("cron(0 0 ? * L 2026)", None, "2026-11-26T00:00:00Z", 1),
            ["2026-11-28T00:00:00Z"]
        );
    }

    #[test]
    fn ranges_steps_names_and_wrapping() {
        // FRI-MON wraps through the weekend.
        assert_eq!(
            firings("cron(0 9 ? * FRI-MON *)", None, "2026-11-26T00:00:00Z", 4),
            [
                "2026-11-27T09:00:00Z",
                "2026-11-28T09:00:00Z",
                "2026-11-29T09:00:00Z",
                "2026-11-30T09:00:00Z"
            ]
        );
        assert_eq!(
            firings(
                "cron(10-20/5 22-23 1 DEC ? 2026)",
                None,
                "2026-01-01T00:00:00Z",
                7
            ),
            [
                "2026-12-01T22:10:00Z",
                "2026-12-01T22:15:00Z",
                "2026-12-01T22:20:00Z",
                "2026-12-01T23:10:00Z",
                "2026-12-01T23:15:00Z",
                "2026-12-01T23:20:00Z"
            ]
        );
        // A year far ahead is found without iterating minute by minute.
        assert_eq!(
            firings("cron(0 0 1 1 ? 2199)", None, "2026-01-01T00:00:00Z", 2),
            ["2199-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn at_fires_once_in_its_zone() {
        assert_eq!(
            firings(
                "at(2026-12-24T18:00:00)",
                Some("Europe/Paris"),
                "2026-11-30T00:00:00Z",
                3
            ),
            ["2026-12-24T17:00:00Z"]
        );
        assert!(firings("at(2020-01-01T00:00:00)", None, "2026-11-30T00:00:00Z", 1).is_empty());
    }

    fn runner(expr: &str, start: Timestamp, deliver: Deliver) -> (Runner, Arc<ManualClock>) {
        let clock = ManualClock::new(start);
        let runner = Runner {
            schedule: Schedule::parse(expr, None).unwrap(),
            anchor: start,
            clock: clock.clone(),
            maximum_retry_attempts: 3,
            maximum_event_age: 3600,
            input: None,
            schedule_arn: "arn:aws:scheduler:us-east-1:012345678912:schedule/default/fn.tick"
                .into(),
            region: "us-east-1".into(),
            account: "012345678912".into(),
            deliver,
            log: Arc::new(|_| {}),
            next: Arc::default(),
        };
        (runner, clock)
    }

    /// A deliver that reports each payload and answers with `answers`
    /// in turn (then success).
    fn scripted(
        answers: Vec<Attempt>,
    ) -> (Deliver, tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let deliver: Deliver = Arc::new(move |payload| {
            let _ = tx.send(payload);
            let next = answers.lock().unwrap().next();
            Box::pin(async move {
                next.unwrap_or(Attempt::Ran {
                    request_id: "ok".into(),
                    error: None,
                })
            })
        });
        (deliver, rx)
    }

    async fn next_is(next: &Arc<Mutex<Option<Timestamp>>>, want: &str) {
        let want = ts(want);
        tokio::time::timeout(Duration::from_secs(10), async {
            while *next.lock().unwrap() != Some(want) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "next firing never became {want}: {:?}",
                next.lock().unwrap()
            )
        });
    }

    fn event_time(payload: &bytes::Bytes) -> String {
        let event: aws_lambda_events::event::eventbridge::EventBridgeEvent =
            serde_json::from_slice(payload).unwrap();
        assert_eq!(event.source, "aws.scheduler");
        assert_eq!(event.detail_type, "Scheduled Event");
        assert_eq!(event.detail, Value::String("{}".into()));
        assert_eq!(
            event.resources.as_deref(),
            Some(
                &["arn:aws:scheduler:us-east-1:012345678912:schedule/default/fn.tick".to_string()]
                    [..]
            )
        );
        Timestamp::from_second(event.time.expect("time").timestamp())
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn the_loop_fires_on_the_clock_with_schedulers_event() {
        let start = ts("2026-11-30T04:00:00Z");
        let (deliver, mut rx) = scripted(vec![]);
        let (runner, clock) = runner("rate(1 minute)", start, deliver);
        let next = runner.next.clone();
        tokio::spawn(runner.run());
        // A rate schedule fires when it is created...
        assert_eq!(
            event_time(&rx.recv().await.unwrap()),
            "2026-11-30T04:00:00Z"
        );
        next_is(&next, "2026-11-30T04:01:00Z").await;
        assert!(rx.try_recv().is_err(), "fired before its time");
        // ...then once per minute of the clock.
        clock.set(ts("2026-11-30T04:01:00Z"));
        assert_eq!(
            event_time(&rx.recv().await.unwrap()),
            "2026-11-30T04:01:00Z"
        );
        next_is(&next, "2026-11-30T04:02:00Z").await;
        // A jump over several minutes fires once, for the first, and
        // does not replay the rest.
        clock.set(ts("2026-11-30T04:04:30Z"));
        assert_eq!(
            event_time(&rx.recv().await.unwrap()),
            "2026-11-30T04:02:00Z"
        );
        next_is(&next, "2026-11-30T04:05:00Z").await;
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn refusals_and_function_errors_are_retried() {
        let start = ts("2026-11-30T04:00:00Z");
        let refused = || Attempt::Refused("throttled".into());
        let failed = || Attempt::Ran {
            request_id: "r".into(),
            error: Some("Unhandled".into()),
        };
        // Refused twice (retried after 1 s, then 2 s), then delivered.
        let (deliver, mut rx) = scripted(vec![refused(), refused()]);
        let (r, clock) = runner("rate(1 hour)", start, deliver);
        let done = tokio::spawn(async move { r.deliver_at(start).await });
        rx.recv().await.unwrap();
        clock.set(ts("2026-11-30T04:00:01Z"));
        rx.recv().await.unwrap();
        clock.set(ts("2026-11-30T04:00:03Z"));
        let last = rx.recv().await.unwrap();
        assert_eq!(
            event_time(&last),
            "2026-11-30T04:00:00Z",
            "same event each time"
        );
        assert!(matches!(
            done.await.unwrap(),
            Attempt::Ran { error: None, .. }
        ));

        // maximum-retry-attempts = 3: four refusals and it is dropped.
        let (deliver, mut rx) = scripted(vec![refused(), refused(), refused(), refused()]);
        let (r, clock) = runner("rate(1 hour)", start, deliver);
        let done = tokio::spawn(async move { r.deliver_at(start).await });
        for at in ["04:00:01", "04:00:03", "04:00:07"] {
            rx.recv().await.unwrap();
            clock.set(ts(&format!("2026-11-30T{at}Z")));
        }
        rx.recv().await.unwrap();
        assert!(matches!(done.await.unwrap(), Attempt::Refused(_)));

        // A function error: two retries, one and two minutes apart.
        let (deliver, mut rx) = scripted(vec![failed(), failed(), failed()]);
        let (r, clock) = runner("rate(1 hour)", start, deliver);
        let done = tokio::spawn(async move { r.deliver_at(start).await });
        rx.recv().await.unwrap();
        clock.set(ts("2026-11-30T04:00:59Z"));
        tokio::task::yield_now().await;
        assert!(rx.try_recv().is_err(), "retried before a minute");
        clock.set(ts("2026-11-30T04:01:00Z"));
        rx.recv().await.unwrap();
        clock.set(ts("2026-11-30T04:03:00Z"));
        rx.recv().await.unwrap();
        assert!(matches!(
            done.await.unwrap(),
            Attempt::Ran { error: Some(_), .. }
        ));
    }

    #[test]
    fn input_replaces_the_event() {
        let (deliver, _rx) = scripted(vec![]);
        let (mut r, _) = runner("rate(1 hour)", Timestamp::UNIX_EPOCH, deliver);
        r.input = Some(r#"{"job":"nightly"}"#.into());
        assert_eq!(
            &r.payload(Timestamp::UNIX_EPOCH, "x", 1)[..],
            br#"{"job":"nightly"}"#
        );
        // The scheduled template's input: Scheduler's context attributes filled in.
        r.input = Some(
            r#"{"id":"<aws.scheduler.execution-id>","time":"<aws.scheduler.scheduled-time>","resources":["<aws.scheduler.schedule-arn>"],"n":<aws.scheduler.attempt-number>}"#
                .into(),
        );
        let p: Value =
            serde_json::from_slice(&r.payload(ts("2026-11-30T05:00:00Z"), "e-1", 2)).unwrap();
        assert_eq!(
            p,
            json!({"id": "e-1", "time": "2026-11-30T05:00:00Z",
                   "resources": ["arn:aws:scheduler:us-east-1:012345678912:schedule/default/fn.tick"], "n": 2})
        );
    }

    #[test]
    fn unknown_zone_is_named() {
        let err = Schedule::parse("rate(1 minute)", Some("Mars/Olympus")).unwrap_err();
        assert!(err.contains("Mars/Olympus"), "{err}");
    }
}
