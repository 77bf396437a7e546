//! Gradual rollouts: traffic moves from an alias's version to a new one in
//! steps (CodeDeploy-style canary and linear strategies), client-side, on
//! the alias's routing weights, with nothing deployed besides the functions.
//!
//! Guarantees, each backed by a test in `rollout/tests.rs`:
//! 1. Nothing moves before the pre-traffic hooks of every function pass and
//!    every configured alarm exists and is not in ALARM.
//! 2. Each poll checks the release's health: any configured alarm in ALARM,
//!    or the new version's errors and throttles (CloudWatch metrics with the
//!    ExecutedVersion dimension) over the error threshold, rolls back every
//!    function of the release (all shift together; one unhealthy function
//!    rolls all back).
//! 3. A rollback puts each alias back on its old version with no weights;
//!    the new version stays published for inspection.
//! 4. Every alias write is guarded by the RevisionId of the state we last
//!    saw, and each poll compares the alias with what we wrote: a change by
//!    someone else stops the rollout and that alias is never written again.
//! 5. The rollout is recorded on the alias (its description, see
//!    [`record`]), so `deploy --resume`, `promote` and `rollback` on any
//!    machine see it, and a new rollout refuses to start over it.
//!
//! Files: this one (start, resume, the step loop, health, rollback),
//! `schedule` (a strategy's steps), `record` (the alias-description
//! record), `by_hand` (record-aware promote and rollback), `terminal`
//! (signals, the question, progress and JSON events).
//!
//! This module knows the configuration's `deployment` table and the AWS
//! traits ([`TrafficApi`], [`CloudWatchApi`]); time comes from a [`Clock`]
//! and interruptions from a [`Control`], so tests run whole rollouts in
//! virtual time. It knows nothing of clap, the SDK or how versions are
//! published.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Serialize;

use super::alias::routing_text;
use crate::aws::cloudwatch::MetricQuery;
use crate::aws::{AliasState, CloudWatchApi, TrafficApi};
use crate::config::{Deployment, Strategy};
use crate::error::hinted;

mod by_hand;
pub mod record;
pub mod schedule;
mod terminal;

pub use by_hand::{promote, rollback};
pub use terminal::{SignalControl, UiObserver};

use record::{Record, RecordState};
use schedule::Step;

/// Default time between two health checks.
pub const DEFAULT_POLL: Duration = Duration::from_secs(10);
/// Hidden: multiplies every strategy duration (tests run CodeDeploy's
/// minutes in seconds with e.g. `0.01`). Explicit `--every 2s` needs none.
pub const TIME_SCALE_ENV: &str = "CARGO_FN_ROLLOUT_TIME_SCALE";

/// The time scale from [`TIME_SCALE_ENV`] (1 when unset or invalid).
pub fn time_scale_from_env() -> f64 {
    std::env::var(TIME_SCALE_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && s.is_finite())
        .unwrap_or(1.0)
}

/// Where time comes from; injectable so tests need not wait.
#[allow(async_fn_in_trait)]
pub trait Clock {
    fn now(&self) -> SystemTime;
    async fn sleep(&self, d: Duration);
}

/// Real time.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }
}

/// The signal that interrupted a rollout, named in its rollback reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C on a terminal.
    Interrupt,
    /// SIGTERM: a supervisor, CI cancelling a job, `kill`.
    Terminate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "Ctrl-C (SIGINT)",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// What to do with a rollout interrupted by Ctrl-C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Put every alias back on its old version.
    RollBack,
    /// Leave the weights as they are; `deploy --resume` continues.
    Leave,
}

/// Interruptions (Ctrl-C, SIGTERM) and the answer to them.
#[allow(async_fn_in_trait)]
pub trait Control {
    /// Resolves with the signal when the user or a supervisor interrupts;
    /// never, for an uninterruptible run.
    async fn interrupted(&self) -> Signal;
    fn decide(&self, signal: Signal) -> Decision;
}

/// Never interrupted.
pub struct NoControl;

impl Control for NoControl {
    async fn interrupted(&self) -> Signal {
        std::future::pending::<Signal>().await
    }
    fn decide(&self, _: Signal) -> Decision {
        Decision::RollBack
    }
}

/// One function of a release.
#[derive(Debug, Clone)]
pub struct Member {
    pub function: String,
    pub alias: String,
    /// The version traffic moves to (ignored by resume: the record names it).
    pub to: String,
    /// Alarms, hooks and the error threshold of this function.
    pub deployment: Deployment,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub strategy: Strategy,
    /// Time between health checks (at most a step's bake time).
    pub poll: Duration,
    /// Multiplies the strategy's durations (see [`TIME_SCALE_ENV`]).
    pub time_scale: f64,
}

/// A function of a release, as events and the result show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberView {
    pub function: String,
    pub alias: String,
    pub from: String,
    pub to: String,
}

/// What a rollout reports, one event at a time (`--output json` prints
/// each as one line).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    Start {
        release: String,
        strategy: String,
        /// Percent of traffic on the new version at each step.
        steps: Vec<f64>,
        functions: Vec<MemberView>,
        resumed: bool,
    },
    Hook {
        phase: &'static str,
        function: String,
        hook: String,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    Step {
        release: String,
        /// 1-based.
        step: usize,
        of: usize,
        percent: f64,
        /// Seconds until the next step (none after the last).
        #[serde(skip_serializing_if = "Option::is_none")]
        next_in: Option<u64>,
    },
    Poll {
        poll: u64,
        step: usize,
        percent: f64,
        /// Seconds until the next step.
        next_in: u64,
    },
    Rollback {
        release: String,
        reason: String,
        /// The poll that saw the problem (0: before any poll).
        poll: u64,
        functions: Vec<MemberView>,
    },
    Stopped {
        release: String,
        reason: String,
    },
    Left {
        release: String,
        step: usize,
        percent: f64,
    },
    Done {
        release: String,
        functions: Vec<MemberView>,
    },
}

/// Receives the events of a rollout.
pub trait Observer {
    fn event(&mut self, e: &Event);
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Every alias serves the new version.
    Completed,
    /// Every alias (that was still ours) is back on its old version.
    RolledBack { reason: String },
    /// Someone else changed an alias; nothing was written after that.
    Stopped { reason: String },
    /// Interrupted and left as it was; `deploy --resume` continues.
    Left,
    /// Every alias already served the new version: nothing to shift.
    NothingToDo,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub release: String,
    pub strategy: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub functions: Vec<MemberView>,
}

impl Report {
    /// Where a deploy outcome's alias stands after this rollout.
    pub fn settle(&self, o: &mut super::Outcome) {
        let Some(m) = self.functions.iter().find(|m| m.function == o.function) else {
            return;
        };
        let now = match self.outcome {
            Outcome::Completed => &m.to,
            Outcome::RolledBack { .. } => &m.from,
            _ => return,
        };
        o.alias_version = now.clone();
        o.routing.clear();
    }

    /// An error for the outcomes that are failures of the deploy (rolled
    /// back, stopped), with what to do next.
    pub fn into_result(self) -> Result<Report> {
        match &self.outcome {
            Outcome::RolledBack { reason } => Err(hinted(
                format!("rollout {} rolled back: {reason}", self.release),
                "the aliases serve their old versions again; the new versions stay published for inspection (invoke them with --qualifier VERSION)",
            )),
            Outcome::Stopped { reason } => Err(hinted(
                format!("rollout {} stopped: {reason}", self.release),
                "someone else changed an alias of the release; it was not overwritten. Check the aliases, then run `cargo fn deploy --resume` or `cargo fn rollback FUNCTION` for the others",
            )),
            _ => Ok(self),
        }
    }
}

/// The release's strategy: the one from the flags, else the functions'
/// configured one, which must be the same for all (they shift together).
/// A manual canary (`--canary P` alone) is no rollout.
pub fn release_strategy(
    flag: Option<Strategy>,
    manual_canary: bool,
    functions: &[crate::config::FunctionConfig],
) -> Result<Option<Strategy>> {
    if flag.is_some() {
        return Ok(flag);
    }
    if manual_canary {
        return Ok(None);
    }
    let mut configured = functions
        .iter()
        .filter_map(|f| f.deployment.strategy.map(|s| (f, s)));
    let Some((first, s)) = configured.next() else {
        return Ok(None);
    };
    if let Some((other, t)) = configured.find(|(_, t)| *t != s) {
        return Err(crate::error::UsageError(format!(
            "{} and {} configure different strategies ({s} and {t}), but one deploy is one release that shifts together: pass --strategy NAME, or deploy them separately",
            first.name, other.name
        ))
        .into());
    }
    Ok(Some(s))
}

/// One member while the rollout runs.
struct Live {
    function: String,
    alias: String,
    from: String,
    to: String,
    deployment: Deployment,
    /// The alias as we last wrote or read it.
    seen: AliasState,
}

impl Live {
    fn view(&self) -> MemberView {
        MemberView {
            function: self.function.clone(),
            alias: self.alias.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
        }
    }
}

struct Run<'a, A, C, K, O> {
    api: &'a A,
    clock: &'a C,
    control: &'a K,
    observer: &'a mut O,
    id: String,
    strategy: Strategy,
    steps: Vec<Step>,
    poll_every: Duration,
    polls: u64,
    /// When the first traffic moved.
    t0: SystemTime,
    members: Vec<Live>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn percent(weight: f64) -> f64 {
    (weight * 1000.0).round() / 10.0
}

fn same_weights(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && (va - vb).abs() < 1e-6)
}

fn views(members: &[Live]) -> Vec<MemberView> {
    members.iter().map(Live::view).collect()
}

/// The alias's routing for `weight` on `to`.
fn routing(from: &str, to: &str, weight: f64) -> (String, BTreeMap<String, f64>) {
    if weight >= 1.0 {
        (to.to_string(), BTreeMap::new())
    } else {
        (from.to_string(), BTreeMap::from([(to.to_string(), weight)]))
    }
}

fn running_error(function: &str, alias: &str, r: &Record) -> anyhow::Error {
    let how = match r.state {
        RecordState::Running => "is running",
        RecordState::Left => "was left part-way (Ctrl-C)",
    };
    hinted(
        format!(
            "a rollout of {function}:{alias} {how}: release {} from version {} to {} ({}, step {})",
            r.id,
            r.from,
            r.to,
            r.strategy,
            r.step + 1
        ),
        "finish it first: `cargo fn deploy --resume` continues it, `cargo fn promote FUNCTION` completes it, `cargo fn rollback FUNCTION` reverts it",
    )
}

/// The rollback reason when a health read (DescribeAlarms, GetMetricData)
/// still fails after the SDK's retries: the release's health is unknown,
/// and a split nobody watches is worse than the old version (CodeDeploy
/// stops a deployment the same way unless `ignorePollAlarmFailure` is set).
fn unwatched(e: &crate::aws::ApiError) -> String {
    format!(
        "the release's health cannot be read ({e}, after retries); a rollout nobody can watch is rolled back"
    )
}

/// A failed call on an alias while the rollout is recorded on it. A re-run
/// refuses over the record, so the hint names resume and rollback instead
/// of the generic "re-run the command".
fn while_recorded(e: crate::aws::ApiError, alias: &str, function: &str) -> anyhow::Error {
    let cause = match e.status {
        Some(s) if s >= 500 => "AWS answered with a server error even after retries".to_string(),
        _ if e.is("ConnectionError") || e.is("Timeout") => {
            "the AWS endpoint could not be reached even after retries".to_string()
        }
        _ => e.hint(),
    };
    hinted(
        format!("{e} (alias {alias} of {function})"),
        format!(
            "{cause}. The rollout is recorded on the alias, so a plain re-run refuses: `cargo fn deploy --resume` continues it, `cargo fn rollback {function}` reverts it"
        ),
    )
}

/// An error when `alias` carries a rollout (running or left): a deploy
/// must not move it under the rollout's feet, nor start another one.
pub fn refuse_if_recorded(function: &str, alias: &AliasState) -> Result<()> {
    match Record::parse(&alias.description) {
        Some(r) => Err(running_error(function, &alias.name, &r)),
        None => Ok(()),
    }
}

/// Starts a rollout of `members` (their new versions are published and
/// Active; each alias exists). Refuses when an alias carries a rollout.
pub async fn start<A, C, K, O>(
    api: &A,
    clock: &C,
    control: &K,
    observer: &mut O,
    members: Vec<Member>,
    opts: &Options,
) -> Result<Report>
where
    A: TrafficApi + CloudWatchApi,
    C: Clock,
    K: Control,
    O: Observer,
{
    let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut live = Vec::new();
    let mut done = Vec::new();
    for m in members {
        let Some(a) = api.read_alias(&m.function, &m.alias).await? else {
            return Err(hinted(
                format!("function {} has no alias {}", m.function, m.alias),
                "a gradual rollout shifts an existing alias: deploy once without a strategy to create it",
            ));
        };
        refuse_if_recorded(&m.function, &a)?;
        if a.version == m.to {
            done.push(MemberView {
                function: m.function,
                alias: m.alias,
                from: a.version.clone(),
                to: m.to,
            });
            continue;
        }
        if let Some((v, w)) = a.canary()
            && v != m.to
        {
            return Err(hinted(
                format!(
                    "alias {} of {} already routes {}% to version {v}",
                    m.alias,
                    m.function,
                    percent(w)
                ),
                "finish that canary first with `cargo fn promote` or `cargo fn rollback`",
            ));
        }
        live.push(Live {
            function: m.function,
            alias: m.alias,
            from: a.version.clone(),
            to: m.to,
            deployment: m.deployment,
            seen: a,
        });
    }
    if live.is_empty() {
        return Ok(Report {
            release: id,
            strategy: opts.strategy.name(),
            outcome: Outcome::NothingToDo,
            functions: done,
        });
    }
    let mut run = Run {
        api,
        clock,
        control,
        observer,
        id,
        strategy: opts.strategy,
        steps: schedule::steps(opts.strategy, opts.time_scale),
        poll_every: opts.poll,
        polls: 0,
        t0: clock.now(),
        members: live,
    };
    run.preflight_alarms().await?;
    run.observer.event(&Event::Start {
        release: run.id.clone(),
        strategy: run.strategy.name(),
        steps: run.steps.iter().map(|s| percent(s.weight)).collect(),
        functions: views(&run.members),
        resumed: false,
    });
    if let Some(e) = run.hooks("pre-traffic").await {
        return Err(hinted(
            e,
            "no traffic moved; fix the hook or the function and deploy again",
        ));
    }
    run.drive(0, None).await
}

/// A function whose alias may carry a rollout to resume.
#[derive(Debug, Clone)]
pub struct ResumeTarget {
    pub function: String,
    pub alias: String,
    pub deployment: Deployment,
}

/// Continues the rollout recorded on the targets' aliases (from another
/// process or machine), at the step and time it recorded.
pub async fn resume<A, C, K, O>(
    api: &A,
    clock: &C,
    control: &K,
    observer: &mut O,
    targets: Vec<ResumeTarget>,
    poll: Duration,
    time_scale: f64,
) -> Result<Report>
where
    A: TrafficApi + CloudWatchApi,
    C: Clock,
    K: Control,
    O: Observer,
{
    let mut found: Vec<(Record, Live)> = Vec::new();
    for t in targets {
        let Some(a) = api.read_alias(&t.function, &t.alias).await? else {
            continue;
        };
        if let Some(r) = Record::parse(&a.description) {
            found.push((
                r.clone(),
                Live {
                    function: t.function,
                    alias: t.alias,
                    from: r.from,
                    to: r.to,
                    deployment: t.deployment,
                    seen: a,
                },
            ));
        }
    }
    let Some((first, _)) = found.first() else {
        return Err(hinted(
            "no rollout to resume: none of the selected functions' aliases records one",
            "check --alias and the selected functions; `cargo fn deploy --strategy NAME` starts a new rollout",
        ));
    };
    let first = first.clone();
    if let Some((other, l)) = found.iter().find(|(r, _)| r.id != first.id) {
        return Err(hinted(
            format!(
                "the selected aliases record two rollouts: {} and {} ({})",
                first.id, other.id, l.function
            ),
            "resume one release at a time: name its functions",
        ));
    }
    let strategy = Strategy::parse(&first.strategy).map_err(|e| {
        hinted(
            format!(
                "the recorded strategy `{}` cannot be read: {e}",
                first.strategy
            ),
            "revert with `cargo fn rollback FUNCTION`",
        )
    })?;
    let steps = schedule::steps(strategy, time_scale);
    if first.step >= steps.len() {
        return Err(hinted(
            format!(
                "rollout {} records step {} of a {}-step strategy",
                first.id,
                first.step + 1,
                steps.len()
            ),
            "revert with `cargo fn rollback FUNCTION` or complete with `cargo fn promote FUNCTION`",
        ));
    }
    let members: Vec<Live> = found.into_iter().map(|(_, l)| l).collect();
    let mut run = Run {
        api,
        clock,
        control,
        observer,
        id: first.id.clone(),
        strategy,
        steps,
        poll_every: poll,
        polls: 0,
        t0: UNIX_EPOCH + Duration::from_secs(first.t0),
        members,
    };
    run.observer.event(&Event::Start {
        release: run.id.clone(),
        strategy: run.strategy.name(),
        steps: run.steps.iter().map(|s| percent(s.weight)).collect(),
        functions: views(&run.members),
        resumed: true,
    });
    // A rollout left by Ctrl-C is driven again: say so on the aliases.
    for k in 0..run.members.len() {
        let seen = &run.members[k].seen;
        let Some(mut r) = Record::parse(&seen.description) else {
            continue;
        };
        if r.state == RecordState::Running {
            continue;
        }
        r.state = RecordState::Running;
        let (version, weights) = (seen.version.clone(), seen.weights.clone());
        if let Err(reason) = run.write(k, &version, &weights, &r.description()).await? {
            return Ok(run.stopped(reason));
        }
    }
    let at = UNIX_EPOCH + Duration::from_secs(first.at);
    run.drive(first.step, Some(at)).await
}

enum Check {
    Healthy,
    Unhealthy(String),
    Changed(String),
}

impl<A, C, K, O> Run<'_, A, C, K, O>
where
    A: TrafficApi + CloudWatchApi,
    C: Clock,
    K: Control,
    O: Observer,
{
    fn report(&self, outcome: Outcome) -> Report {
        Report {
            release: self.id.clone(),
            strategy: self.strategy.name(),
            outcome,
            functions: views(&self.members),
        }
    }

    fn alarm_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .members
            .iter()
            .flat_map(|m| m.deployment.alarms.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every configured alarm must exist and not be in ALARM already.
    async fn preflight_alarms(&self) -> Result<()> {
        let names = self.alarm_names();
        if names.is_empty() {
            return Ok(());
        }
        let states = self.api.alarm_states(&names).await?;
        for m in &self.members {
            for n in &m.deployment.alarms {
                match states.get(n).map(String::as_str) {
                    None => {
                        return Err(hinted(
                            format!(
                                "alarm `{n}` (deployment.alarms of {}) does not exist in this account and region",
                                m.function
                            ),
                            "create it, or fix the name in `deployment.alarms`; nothing moved",
                        ));
                    }
                    Some("ALARM") => {
                        return Err(hinted(
                            format!("alarm `{n}` of {} is already in ALARM", m.function),
                            "a rollout starts from a healthy state: fix what the alarm reports first; nothing moved",
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// Runs the `phase` hook of every member; the first failure, said.
    async fn hooks(&mut self, phase: &'static str) -> Option<String> {
        for i in 0..self.members.len() {
            let m = &self.members[i];
            let hook = match phase {
                "pre-traffic" => m.deployment.pre_traffic.clone(),
                _ => m.deployment.post_traffic.clone(),
            };
            let Some(hook) = hook else { continue };
            let payload = serde_json::json!({
                "phase": phase,
                "release": self.id,
                "function": m.function,
                "alias": m.alias,
                "from": m.from,
                "to": m.to,
            });
            let error = match self
                .api
                .invoke_hook(&hook, payload.to_string().as_bytes())
                .await
            {
                Err(e) => Some(e.to_string()),
                Ok(a) if a.function_error.is_some() => Some(format!(
                    "the hook failed ({}): {}",
                    a.function_error.unwrap_or_default(),
                    String::from_utf8_lossy(&a.payload)
                        .chars()
                        .take(300)
                        .collect::<String>()
                )),
                Ok(a) if !(200..300).contains(&a.status) => {
                    Some(format!("the hook answered HTTP {}", a.status))
                }
                Ok(_) => None,
            };
            let function = m.function.clone();
            self.observer.event(&Event::Hook {
                phase,
                function: function.clone(),
                hook: hook.clone(),
                ok: error.is_none(),
                error: error.clone(),
            });
            if let Some(e) = error {
                return Some(format!("{phase} hook {hook} of {function} failed: {e}"));
            }
        }
        None
    }

    /// Steps from `first`; `resumed_at` is when that step began (resume:
    /// it is not shifted again, only its remaining bake time runs).
    async fn drive(&mut self, first: usize, resumed_at: Option<SystemTime>) -> Result<Report> {
        for i in first..self.steps.len() {
            let step = self.steps[i];
            let began = match (i == first, resumed_at) {
                (true, Some(at)) => at,
                _ => {
                    let now = self.clock.now();
                    if i == 0 {
                        self.t0 = now;
                    }
                    let last = i + 1 == self.steps.len();
                    let finished = last
                        && self
                            .members
                            .iter()
                            .all(|m| m.deployment.post_traffic.is_none());
                    if let Some(reason) = self.shift(i, now, finished).await? {
                        return Ok(self.stopped(reason));
                    }
                    now
                }
            };
            let last = i + 1 == self.steps.len();
            self.observer.event(&Event::Step {
                release: self.id.clone(),
                step: i + 1,
                of: self.steps.len(),
                percent: percent(step.weight),
                next_in: (!last).then_some(step.bake.as_secs()),
            });
            if last {
                break;
            }
            let deadline = began + step.bake;
            loop {
                let now = self.clock.now();
                let left = deadline.duration_since(now).unwrap_or(Duration::ZERO);
                if left.is_zero() {
                    break;
                }
                let nap = left.min(self.poll_every);
                // Biased: an interruption wins over a sleep that is also done.
                let interrupted = tokio::select! {
                    biased;
                    signal = self.control.interrupted() => Some(signal),
                    _ = self.clock.sleep(nap) => None,
                };
                if let Some(signal) = interrupted {
                    return self.interrupted(i, signal).await;
                }
                self.polls += 1;
                match self.check().await? {
                    Check::Healthy => {}
                    Check::Unhealthy(reason) => return self.roll_back(reason).await,
                    Check::Changed(reason) => return Ok(self.stopped(reason)),
                }
                let next_in = deadline
                    .duration_since(self.clock.now())
                    .unwrap_or(Duration::ZERO)
                    .as_secs();
                self.observer.event(&Event::Poll {
                    poll: self.polls,
                    step: i + 1,
                    percent: percent(step.weight),
                    next_in,
                });
            }
        }
        // Everything is on the new version.
        if self
            .members
            .iter()
            .any(|m| m.deployment.post_traffic.is_some())
        {
            if let Some(e) = self.hooks("post-traffic").await {
                return self.roll_back(e).await;
            }
            for k in 0..self.members.len() {
                let to = self.members[k].to.clone();
                let desc = record::ended(&self.id, &format!("completed: version {to}"));
                if let Err(reason) = self.write(k, &to, &BTreeMap::new(), &desc).await? {
                    return Ok(self.stopped(reason));
                }
            }
        }
        self.observer.event(&Event::Done {
            release: self.id.clone(),
            functions: views(&self.members),
        });
        Ok(self.report(Outcome::Completed))
    }

    /// Moves every alias to step `i` (recorded on it); on a concurrent
    /// change, what changed.
    async fn shift(&mut self, i: usize, now: SystemTime, finished: bool) -> Result<Option<String>> {
        let weight = self.steps[i].weight;
        for k in 0..self.members.len() {
            let m = &self.members[k];
            let (version, weights) = routing(&m.from, &m.to, weight);
            let desc = if finished {
                record::ended(&self.id, &format!("completed: version {}", m.to))
            } else {
                Record {
                    id: self.id.clone(),
                    n: self.members.len(),
                    from: m.from.clone(),
                    to: m.to.clone(),
                    strategy: self.strategy.name(),
                    step: i,
                    at: unix(now),
                    t0: unix(self.t0),
                    state: RecordState::Running,
                }
                .description()
            };
            if let Err(reason) = self.write(k, &version, &weights, &desc).await? {
                return Ok(Some(reason));
            }
        }
        Ok(None)
    }

    /// One guarded alias write; `Ok(Err(reason))` when the alias changed
    /// under us (412); any other failure is an error of the whole command
    /// (the record on the alias says where the rollout stands).
    async fn write(
        &mut self,
        k: usize,
        version: &str,
        weights: &BTreeMap<String, f64>,
        description: &str,
    ) -> Result<std::result::Result<(), String>> {
        let m = &self.members[k];
        match self
            .api
            .write_alias(
                &m.function,
                &m.alias,
                version,
                weights,
                description,
                m.seen.revision_id.as_deref(),
            )
            .await
        {
            Ok(a) => {
                self.members[k].seen = a;
                Ok(Ok(()))
            }
            Err(e) if e.is("PreconditionFailedException") => Ok(Err(format!(
                "alias {} of {} was changed by someone else (RevisionId no longer matches)",
                m.alias, m.function
            ))),
            Err(e) => Err(while_recorded(e, &m.alias, &m.function)),
        }
    }

    /// The aliases unchanged, then alarms and metrics.
    async fn check(&mut self) -> Result<Check> {
        for m in &self.members {
            let now = self
                .api
                .read_alias(&m.function, &m.alias)
                .await
                .map_err(|e| while_recorded(e, &m.alias, &m.function))?;
            let same = now.as_ref().is_some_and(|a| {
                a.version == m.seen.version
                    && same_weights(&a.weights, &m.seen.weights)
                    && a.description == m.seen.description
                    && (a.revision_id.is_none()
                        || m.seen.revision_id.is_none()
                        || a.revision_id == m.seen.revision_id)
            });
            if !same {
                let what = match now {
                    None => "was deleted".to_string(),
                    Some(a) => format!(
                        "was changed by someone else (now {})",
                        routing_text(&a.version, &a.weights)
                    ),
                };
                return Ok(Check::Changed(format!(
                    "alias {} of {} {what}",
                    m.alias, m.function
                )));
            }
        }
        let names = self.alarm_names();
        if !names.is_empty() {
            let states = match self.api.alarm_states(&names).await {
                Ok(s) => s,
                Err(e) => return Ok(Check::Unhealthy(unwatched(&e))),
            };
            if let Some((n, _)) = states.iter().find(|(_, s)| s.as_str() == "ALARM") {
                return Ok(Check::Unhealthy(format!("alarm `{n}` is in ALARM")));
            }
        }
        let mut queries = Vec::new();
        for m in &self.members {
            for metric in ["Errors", "Throttles", "Invocations"] {
                queries.push(MetricQuery::executed_version(
                    metric,
                    &m.function,
                    &m.alias,
                    &m.to,
                ));
            }
        }
        // One period of margin before the first shift: periods start on
        // the minute; the new version had no traffic before t0 anyway.
        let start = self.t0 - Duration::from_secs(60);
        let end = self.clock.now() + Duration::from_secs(60);
        let sums = match self.api.metric_sums(&queries, start, end).await {
            Ok(s) => s,
            Err(e) => return Ok(Check::Unhealthy(unwatched(&e))),
        };
        for (m, s) in self.members.iter().zip(sums.chunks(3)) {
            let (errors, throttles, invocations) = (s[0], s[1], s[2]);
            let attempts = invocations + throttles;
            if attempts <= 0.0 {
                continue;
            }
            let rate = (errors + throttles) / attempts * 100.0;
            if rate > m.deployment.error_threshold {
                return Ok(Check::Unhealthy(format!(
                    "version {} of {} failed {rate:.1}% of {attempts} calls ({errors} errors, {throttles} throttles), over the error threshold of {}%",
                    m.to, m.function, m.deployment.error_threshold
                )));
            }
        }
        Ok(Check::Healthy)
    }

    /// Every alias back on its old version, no weights. An alias changed by
    /// someone else is left alone (said in the reason).
    async fn roll_back(&mut self, reason: String) -> Result<Report> {
        let mut reason = reason;
        for k in 0..self.members.len() {
            let m = &self.members[k];
            let desc = record::ended(
                &self.id,
                &format!("rolled back to version {}: {reason}", m.from),
            );
            let from = m.from.clone();
            if let Err(why) = self.write(k, &from, &BTreeMap::new(), &desc).await? {
                reason = format!("{reason}; {why}, so it was not rolled back");
            }
        }
        self.observer.event(&Event::Rollback {
            release: self.id.clone(),
            reason: reason.clone(),
            poll: self.polls,
            functions: views(&self.members),
        });
        Ok(self.report(Outcome::RolledBack { reason }))
    }

    fn stopped(&mut self, reason: String) -> Report {
        self.observer.event(&Event::Stopped {
            release: self.id.clone(),
            reason: reason.clone(),
        });
        self.report(Outcome::Stopped { reason })
    }

    async fn interrupted(&mut self, step: usize, signal: Signal) -> Result<Report> {
        match self.control.decide(signal) {
            Decision::RollBack => {
                self.roll_back(format!("interrupted by {}", signal.name()))
                    .await
            }
            Decision::Leave => {
                for k in 0..self.members.len() {
                    let mut r = match Record::parse(&self.members[k].seen.description) {
                        Some(r) => r,
                        None => continue,
                    };
                    r.state = RecordState::Left;
                    let (version, weights) = (
                        self.members[k].seen.version.clone(),
                        self.members[k].seen.weights.clone(),
                    );
                    if let Err(reason) = self.write(k, &version, &weights, &r.description()).await?
                    {
                        return Ok(self.stopped(reason));
                    }
                }
                self.observer.event(&Event::Left {
                    release: self.id.clone(),
                    step: step + 1,
                    percent: percent(self.steps[step].weight),
                });
                Ok(self.report(Outcome::Left))
            }
        }
    }
}

#[cfg(test)]
mod tests;
