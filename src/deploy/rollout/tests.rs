//! The rollout engine against a small in-memory Lambda + CloudWatch (with
//! RevisionId preconditions like Lambda's) in virtual time: whole rollouts
//! run in microseconds.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::record::{Record, RecordState};
use super::*;
use crate::aws::cloudwatch::MetricQuery;
use crate::aws::traffic::HookAnswer;
use crate::aws::{AliasState, ApiError, ApiResult, CloudWatchApi, TrafficApi};
use crate::config::{Deployment, Strategy};

/// An UpdateAlias: (function, version, weights).
type Write = (String, String, BTreeMap<String, f64>);

#[derive(Default)]
struct Fake {
    aliases: RefCell<BTreeMap<String, AliasState>>,
    revision: Cell<u64>,
    writes: RefCell<Vec<Write>>,
    alarms: RefCell<BTreeMap<String, String>>,
    /// The alarm that goes to ALARM at the n-th DescribeAlarms.
    alarm_at: RefCell<Option<(usize, String)>>,
    describe_calls: Cell<usize>,
    metric_calls: Cell<usize>,
    /// (function, metric) -> sum.
    metrics: RefCell<BTreeMap<(String, String), f64>>,
    /// hook -> answer (missing: ResourceNotFoundException).
    hooks: RefCell<BTreeMap<String, HookAnswer>>,
    invoked: RefCell<Vec<(String, serde_json::Value)>>,
    /// Someone else moves this function's alias at the n-th GetAlias.
    external_at: RefCell<Option<(usize, String)>>,
    reads: Cell<usize>,
    /// Answer the next UpdateAlias of this function with 412.
    precondition_fail: RefCell<Option<String>>,
    /// DescribeAlarms answers 503 from this call on (an outage).
    alarms_down_from: Cell<Option<usize>>,
    /// GetMetricData answers 503 from this call on.
    metrics_down_from: Cell<Option<usize>>,
    /// GetAlias answers 503 from this read on.
    reads_down_from: Cell<Option<usize>>,
}

/// What the SDK returns once its retries of a 503 are spent.
fn unavailable(op: &str) -> ApiError {
    let mut e = ApiError::new(op, "ServiceUnavailable", "Service Unavailable");
    e.status = Some(503);
    e
}

impl Fake {
    fn with_alias(function: &str, version: &str) -> Fake {
        let f = Fake::default();
        f.put_alias(function, version);
        f
    }

    fn put_alias(&self, function: &str, version: &str) {
        let rev = self.next_rev();
        self.aliases.borrow_mut().insert(
            function.to_string(),
            AliasState {
                name: "live".into(),
                arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function}:live"),
                version: version.into(),
                weights: BTreeMap::new(),
                revision_id: Some(rev),
                description: String::new(),
            },
        );
    }

    fn next_rev(&self) -> String {
        self.revision.set(self.revision.get() + 1);
        format!("rev-{}", self.revision.get())
    }

    fn alias(&self, function: &str) -> AliasState {
        self.aliases.borrow()[function].clone()
    }

    fn weights_written(&self, function: &str) -> Vec<f64> {
        self.writes
            .borrow()
            .iter()
            .filter(|(f, _, _)| f == function)
            .map(|(_, v, w)| {
                if w.is_empty() {
                    if v == "2" { 100.0 } else { 0.0 }
                } else {
                    w.values().next().unwrap() * 100.0
                }
            })
            .collect()
    }
}

impl TrafficApi for Fake {
    async fn read_alias(&self, function: &str, _alias: &str) -> ApiResult<Option<AliasState>> {
        self.reads.set(self.reads.get() + 1);
        if self
            .reads_down_from
            .get()
            .is_some_and(|n| self.reads.get() >= n)
        {
            return Err(unavailable("lambda:GetAlias"));
        }
        let external = self.external_at.borrow().clone();
        if let Some((n, f)) = external
            && self.reads.get() == n
        {
            let rev = self.next_rev();
            let mut a = self.aliases.borrow_mut();
            let a = a.get_mut(&f).unwrap();
            a.version = "9".into();
            a.weights.clear();
            a.revision_id = Some(rev);
        }
        Ok(self.aliases.borrow().get(function).cloned())
    }

    async fn write_alias(
        &self,
        function: &str,
        _alias: &str,
        version: &str,
        weights: &BTreeMap<String, f64>,
        description: &str,
        revision_id: Option<&str>,
    ) -> ApiResult<AliasState> {
        let op = "lambda:UpdateAlias";
        if self.precondition_fail.borrow().as_deref() == Some(function) {
            *self.precondition_fail.borrow_mut() = None;
            return Err(ApiError::new(op, "PreconditionFailedException", "changed"));
        }
        let rev = self.next_rev();
        let mut aliases = self.aliases.borrow_mut();
        let a = aliases.get_mut(function).unwrap();
        if revision_id.is_some() && revision_id != a.revision_id.as_deref() {
            return Err(ApiError::new(op, "PreconditionFailedException", "changed"));
        }
        a.version = version.into();
        a.weights = weights.clone();
        a.description = description.into();
        a.revision_id = Some(rev);
        self.writes
            .borrow_mut()
            .push((function.into(), version.into(), weights.clone()));
        Ok(a.clone())
    }

    async fn invoke_hook(&self, function: &str, payload: &[u8]) -> ApiResult<HookAnswer> {
        self.invoked
            .borrow_mut()
            .push((function.into(), serde_json::from_slice(payload).unwrap()));
        self.hooks.borrow().get(function).cloned().ok_or_else(|| {
            ApiError::new(
                "lambda:InvokeFunction",
                "ResourceNotFoundException",
                "no such function",
            )
        })
    }
}

impl CloudWatchApi for Fake {
    async fn alarm_states(&self, names: &[String]) -> ApiResult<BTreeMap<String, String>> {
        self.describe_calls.set(self.describe_calls.get() + 1);
        if self
            .alarms_down_from
            .get()
            .is_some_and(|n| self.describe_calls.get() >= n)
        {
            return Err(unavailable("cloudwatch:DescribeAlarms"));
        }
        if let Some((n, name)) = self.alarm_at.borrow().clone()
            && self.describe_calls.get() >= n
        {
            self.alarms.borrow_mut().insert(name, "ALARM".into());
        }
        let alarms = self.alarms.borrow();
        Ok(names
            .iter()
            .filter_map(|n| alarms.get(n).map(|s| (n.clone(), s.clone())))
            .collect())
    }

    async fn metric_sums(
        &self,
        queries: &[MetricQuery],
        _start: SystemTime,
        _end: SystemTime,
    ) -> ApiResult<Vec<f64>> {
        self.metric_calls.set(self.metric_calls.get() + 1);
        if self
            .metrics_down_from
            .get()
            .is_some_and(|n| self.metric_calls.get() >= n)
        {
            return Err(unavailable("cloudwatch:GetMetricData"));
        }
        let m = self.metrics.borrow();
        Ok(queries
            .iter()
            .map(|q| {
                assert_eq!(
                    q.dimensions.len(),
                    3,
                    "FunctionName, Resource, ExecutedVersion"
                );
                assert_eq!(q.dimensions[2].0, "ExecutedVersion");
                *m.get(&(q.dimensions[0].1.clone(), q.metric.clone()))
                    .unwrap_or(&0.0)
            })
            .collect())
    }
}

/// Virtual time: sleeping moves the clock.
struct FakeClock {
    now: Cell<SystemTime>,
    sleeps: Cell<usize>,
}

impl FakeClock {
    fn new() -> Self {
        FakeClock {
            now: Cell::new(SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)),
            sleeps: Cell::new(0),
        }
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        self.now.get()
    }
    async fn sleep(&self, d: Duration) {
        self.sleeps.set(self.sleeps.get() + 1);
        self.now.set(self.now.get() + d);
    }
}

/// `signal` after `after` sleeps, answered with `decision`.
struct CtrlC<'a> {
    clock: &'a FakeClock,
    after: usize,
    decision: Decision,
    signal: Signal,
}

impl Control for CtrlC<'_> {
    async fn interrupted(&self) -> Signal {
        if self.clock.sleeps.get() < self.after {
            std::future::pending::<()>().await
        }
        self.signal
    }
    fn decide(&self, signal: Signal) -> Decision {
        assert_eq!(signal, self.signal);
        self.decision
    }
}

#[derive(Default)]
struct Events(Vec<Event>);

impl Observer for Events {
    fn event(&mut self, e: &Event) {
        self.0.push(e.clone());
    }
}

impl Events {
    fn steps(&self) -> Vec<f64> {
        self.0
            .iter()
            .filter_map(|e| match e {
                Event::Step { percent, .. } => Some(*percent),
                _ => None,
            })
            .collect()
    }
}

fn member(function: &str, deployment: Deployment) -> Member {
    Member {
        function: function.into(),
        alias: "live".into(),
        to: "2".into(),
        deployment,
    }
}

fn opts(strategy: &str) -> Options {
    Options {
        strategy: Strategy::parse(strategy).unwrap(),
        poll: Duration::from_secs(1),
        time_scale: 1.0,
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_healthy_linear_rollout_goes_through_each_weight_to_100() {
    let api = Fake::with_alias("f", "1");
    let clock = FakeClock::new();
    let mut ev = Events::default();
    let report = run(start(
        &api,
        &clock,
        &NoControl,
        &mut ev,
        vec![member("f", Deployment::default())],
        &opts("Linear25PercentEvery2Seconds"),
    ))
    .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(ev.steps(), vec![25.0, 50.0, 75.0, 100.0]);
    assert_eq!(api.weights_written("f"), vec![25.0, 50.0, 75.0, 100.0]);
    let a = api.alias("f");
    assert_eq!((a.version.as_str(), a.weights.len()), ("2", 0));
    assert!(Record::parse(&a.description).is_none(), "{}", a.description);
    assert!(a.description.contains("completed"), "{}", a.description);
    // 3 bakes of 2 s with a 1 s poll: 6 polls, each one DescribeAlarms-free
    // (no alarms) GetMetricData.
    assert_eq!(api.metric_calls.get(), 6);
    assert_eq!(api.describe_calls.get(), 0);
}

#[test]
fn each_step_is_recorded_on_the_alias() {
    let api = Fake::with_alias("f", "1");
    let clock = FakeClock::new();
    let control = CtrlC {
        clock: &clock,
        after: 3,
        decision: Decision::Leave,
        signal: Signal::Interrupt,
    };
    let mut ev = Events::default();
    let report = run(start(
        &api,
        &clock,
        &control,
        &mut ev,
        vec![member("f", Deployment::default())],
        &opts("Linear50PercentEvery5Seconds"),
    ))
    .unwrap();
    assert_eq!(report.outcome, Outcome::Left);
    let a = api.alias("f");
    assert_eq!(a.version, "1");
    assert_eq!(a.weights["2"], 0.5);
    let r = Record::parse(&a.description).expect("a record");
    assert_eq!(
        (r.from.as_str(), r.to.as_str(), r.step, r.n, r.state),
        ("1", "2", 0, 1, RecordState::Left)
    );
    assert_eq!(r.strategy, "Linear50PercentEvery5Seconds");
}

#[test]
fn an_alarm_in_alarm_rolls_every_function_back_at_the_poll_that_sees_it() {
    let api = Fake::with_alias("a", "1");
    api.put_alias("b", "1");
    api.alarms
        .borrow_mut()
        .insert("b-errors".into(), "OK".into());
    // 1st DescribeAlarms is the preflight; the 3rd is the 2nd poll.
    *api.alarm_at.borrow_mut() = Some((3, "b-errors".into()));
    let clock = FakeClock::new();
    let mut ev = Events::default();
    let b = Deployment {
        alarms: vec!["b-errors".into()],
        ..Default::default()
    };
    let report = run(start(
        &api,
        &clock,
        &NoControl,
        &mut ev,
        vec![member("a", Deployment::default()), member("b", b)],
        &opts("Linear10PercentEvery1Minute"),
    ))
    .unwrap();
    assert!(
        matches!(&report.outcome, Outcome::RolledBack { reason } if reason.contains("b-errors")),
        "{report:?}"
    );
    let polled = ev.0.iter().find_map(|e| match e {
        Event::Rollback { poll, .. } => Some(*poll),
        _ => None,
    });
    assert_eq!(polled, Some(2));
    for f in ["a", "b"] {
        let a = api.alias(f);
        assert_eq!((a.version.as_str(), a.weights.len()), ("1", 0), "{f}");
        assert!(a.description.contains("rolled back"), "{}", a.description);
    }
    assert_eq!(api.weights_written("a"), vec![10.0, 0.0]);
    assert!(report.into_result().is_err());
}

#[test]
fn errors_of_the_new_version_over_the_threshold_roll_back() {
    for (errors, rolled_back) in [(3.0, true), (1.0, false)] {
        let api = Fake::with_alias("f", "1");
        api.metrics
            .borrow_mut()
            .insert(("f".into(), "Invocations".into()), 50.0);
        api.metrics
            .borrow_mut()
            .insert(("f".into(), "Errors".into()), errors);
        let clock = FakeClock::new();
        let d = Deployment {
            error_threshold: 5.0,
            ..Default::default()
        };
        let report = run(start(
            &api,
            &clock,
            &NoControl,
            &mut Events::default(),
            vec![member("f", d)],
            &opts("Canary10Percent5Seconds"),
        ))
        .unwrap();
        // 3 of 50 = 6% > 5%; 1 of 50 = 2%.
        assert_eq!(
            matches!(report.outcome, Outcome::RolledBack { .. }),
            rolled_back,
            "{errors}: {report:?}"
        );
    }
}

#[test]
fn a_failing_pre_traffic_hook_moves_nothing() {
    let api = Fake::with_alias("f", "1");
    api.hooks.borrow_mut().insert(
        "pre".into(),
        HookAnswer {
            status: 200,
            function_error: Some("Unhandled".into()),
            payload: br#"{"errorMessage":"smoke test failed"}"#.to_vec(),
        },
    );
    let d = Deployment {
        pre_traffic: Some("pre".into()),
        ..Default::default()
    };
    let clock = FakeClock::new();
    let err = run(start(
        &api,
        &clock,
        &NoControl,
        &mut Events::default(),
        vec![member("f", d)],
        &opts("AllAtOnce"),
    ))
    .unwrap_err();
    assert!(format!("{err}").contains("smoke test failed"), "{err}");
    assert!(api.writes.borrow().is_empty());
    assert_eq!(api.alias("f").description, "");
    let (hook, payload) = api.invoked.borrow()[0].clone();
    assert_eq!(hook, "pre");
    assert_eq!(payload["phase"], "pre-traffic");
    assert_eq!(
        (payload["from"].as_str(), payload["to"].as_str()),
        (Some("1"), Some("2"))
    );
}

#[test]
fn a_failing_post_traffic_hook_rolls_back() {
    let api = Fake::with_alias("f", "1");
    let d = Deployment {
        post_traffic: Some("missing-hook".into()),
        ..Default::default()
    };
    let clock = FakeClock::new();
    let report = run(start(
        &api,
        &clock,
        &NoControl,
        &mut Events::default(),
        vec![member("f", d)],
        &opts("Canary50Percent2Seconds"),
    ))
    .unwrap();
    assert!(
        matches!(report.outcome, Outcome::RolledBack { .. }),
        "{report:?}"
    );
    assert_eq!(api.weights_written("f"), vec![50.0, 100.0, 0.0]);
    assert_eq!(api.alias("f").version, "1");
}

#[test]
fn a_concurrent_alias_change_stops_without_overwriting_it() {
    let api = Fake::with_alias("f", "1");
    // Read 1: start. Read 2: first poll. Read 3: second poll sees "9".
    *api.external_at.borrow_mut() = Some((3, "f".into()));
    let clock = FakeClock::new();
    let report = run(start(
        &api,
        &clock,
        &NoControl,
        &mut Events::default(),
        vec![member("f", Deployment::default())],
        &opts("Linear10PercentEvery1Minute"),
    ))
    .unwrap();
    assert!(
        matches!(report.outcome, Outcome::Stopped { .. }),
        "{report:?}"
    );
    assert_eq!(api.alias("f").version, "9");
    assert_eq!(api.writes.borrow().len(), 1, "only the first shift");
    assert!(report.into_result().is_err());
}

#[test]
fn a_precondition_failure_on_a_shift_stops_the_release() {
    let api = Fake::with_alias("a", "1");
    api.put_alias("b", "1");
    *api.precondition_fail.borrow_mut() = Some("b".into());
    let clock = FakeClock::new();
    let report = run(start(
        &api,
        &clock,
        &NoControl,
        &mut Events::default(),
        vec![
            member("a", Deployment::default()),
            member("b", Deployment::default()),
        ],
        &opts("AllAtOnce"),
    ))
    .unwrap();
    assert!(
        matches!(&report.outcome, Outcome::Stopped { reason } if reason.contains("RevisionId")),
        "{report:?}"
    );
    assert_eq!(api.alias("b").version, "1");
}

#[test]
fn a_second_rollout_refuses_to_start_over_a_running_one() {
    let api = Fake::with_alias("f", "1");
    let clock = FakeClock::new();
    let control = CtrlC {
        clock: &clock,
        after: 1,
        decision: Decision::Leave,
        signal: Signal::Interrupt,
    };
    run(start(
        &api,
        &clock,
        &control,
        &mut Events::default(),
        vec![member("f", Deployment::default())],
        &opts("Linear50PercentEvery5Seconds"),
    ))
    .unwrap();
    let writes = api.writes.borrow().len();
    let err = run(start(
        &api,
        &clock,
        &NoControl,
        &mut Events::default(),
        vec![member("f", Deployment::default())],
        &opts("AllAtOnce"),
    ))
    .unwrap_err();
    assert!(format!("{err}").contains("left part-way"), "{err}");
    assert_eq!(api.writes.borrow().len(), writes);
}

#[test]
fn resume_continues_at_the_recorded_step_with_the_time_left() {
    let api = Fake::with_alias("f", "1");
    let clock = FakeClock::new();
    let control = CtrlC {
        clock: &clock,
        after: 7,
        decision: Decision::Leave,
        signal: Signal::Interrupt,
    };
    // 40% every 5 s with a 1 s poll: 40% (sleeps 1-5), 80% (sleeps 6-7),
    // then Ctrl-C, answered with "leave".
    run(start(
        &api,
        &clock,
        &control,
        &mut Events::default(),
        vec![member("f", Deployment::default())],
        &opts("Linear40PercentEvery5Seconds"),
    ))
    .unwrap();
    let r = Record::parse(&api.alias("f").description).unwrap();
    assert_eq!(r.step, 1, "left at 80%");
    let clock2 = FakeClock::new();
    clock2.now.set(clock.now());
    let mut ev = Events::default();
    let report = run(resume(
        &api,
        &clock2,
        &NoControl,
        &mut ev,
        vec![ResumeTarget {
            function: "f".into(),
            alias: "live".into(),
            deployment: Deployment::default(),
        }],
        Duration::from_secs(1),
        1.0,
    ))
    .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    assert_eq!(ev.steps(), vec![80.0, 100.0]);
    // Step 2 began at sleep 5 (t=5 s); left at t=7 s: 3 s remain.
    assert_eq!(clock2.sleeps.get(), 3);
    assert_eq!(api.alias("f").version, "2");
    assert!(matches!(&ev.0[0], Event::Start { resumed: true, .. }));
    // 80% written by the shift, by "leave" (record left), by resume
    // (record running again), then 100%.
    assert_eq!(
        api.weights_written("f"),
        vec![40.0, 80.0, 80.0, 80.0, 100.0]
    );
}

#[test]
fn ctrl_c_answered_with_roll_back_rolls_back() {
    let api = Fake::with_alias("f", "1");
    let clock = FakeClock::new();
    let control = CtrlC {
        clock: &clock,
        after: 2,
        decision: Decision::RollBack,
        signal: Signal::Interrupt,
    };
    let report = run(start(
        &api,
        &clock,
        &control,
        &mut Events::default(),
        vec![member("f", Deployment::default())],
        &opts("Canary10Percent1Minute"),
    ))
    .unwrap();
    assert!(matches!(report.outcome, Outcome::RolledBack { .. }));
    assert_eq!(api.alias("f").version, "1");
    assert!(api.alias("f").weights.is_empty());
}

#[test]
fn alarms_are_checked_before_anything_moves() {
    for (state, text) in [
        (None, "does not exist"),
        (Some("ALARM"), "already in ALARM"),
    ] {
        let api = Fake::with_alias("f", "1");
        if let Some(s) = state {
            api.alarms.borrow_mut().insert("x".into(), s.into());
        }
        let d = Deployment {
            alarms: vec!["x".into()],
            ..Default::default()
        };
        let clock = FakeClock::new();
        let err = run(start(
            &api,
            &clock,
            &NoControl,
            &mut Events::default(),
            vec![member("f", d)],
            &opts("AllAtOnce"),
        ))
        .unwrap_err();
        assert!(format!("{err}").contains(text), "{err}");
        assert!(api.writes.borrow().is_empty());
    }
}

#[test]
fn an_alias_already_on_the_new_version_needs_nothing() {
    let api = Fake::with_alias("f", "2");
    let clock = FakeClock::new();
    let report = run(start(
        &api,
        &clock,
        &NoControl,
        &mut Events::default(),
        vec![member("f", Deployment::default())],
        &opts("AllAtOnce"),
    ))
    .unwrap();
    assert_eq!(report.outcome, Outcome::NothingToDo);
    assert!(api.writes.borrow().is_empty());
}

/// Issue 25 item 4: a CloudWatch outage mid-shift used to end the deploy
/// with the alias split and the record `running`, nobody watching.
#[test]
fn a_cloudwatch_outage_mid_shift_rolls_every_function_back() {
    for (alarms, metrics, op) in [
        (Some(3), None, "cloudwatch:DescribeAlarms"),
        (None, Some(2), "cloudwatch:GetMetricData"),
    ] {
        let api = Fake::with_alias("a", "1");
        api.put_alias("b", "1");
        api.alarms
            .borrow_mut()
            .insert("b-errors".into(), "OK".into());
        // DescribeAlarms: 1st is the preflight, so the 3rd is the 2nd poll.
        api.alarms_down_from.set(alarms);
        api.metrics_down_from.set(metrics);
        let b = Deployment {
            alarms: vec!["b-errors".into()],
            ..Default::default()
        };
        let clock = FakeClock::new();
        let mut ev = Events::default();
        let report = run(start(
            &api,
            &clock,
            &NoControl,
            &mut ev,
            vec![member("a", Deployment::default()), member("b", b)],
            &opts("Linear10PercentEvery1Minute"),
        ))
        .unwrap();
        let Outcome::RolledBack { reason } = &report.outcome else {
            panic!("{op}: {report:?}");
        };
        assert!(
            reason.contains(op) && reason.contains("cannot be read"),
            "{reason}"
        );
        let polled = ev.0.iter().find_map(|e| match e {
            Event::Rollback { poll, .. } => Some(*poll),
            _ => None,
        });
        assert_eq!(polled, Some(2), "{op}");
        for f in ["a", "b"] {
            let a = api.alias(f);
            assert_eq!((a.version.as_str(), a.weights.len()), ("1", 0), "{f}");
            assert!(Record::parse(&a.description).is_none(), "{}", a.description);
            assert!(a.description.contains("rolled back"), "{}", a.description);
        }
        // The rollback took no more virtual time than the poll that failed.
        assert_eq!(clock.sleeps.get(), 2, "{op}");
    }
}

#[test]
fn a_failed_alias_read_mid_rollout_points_to_resume_or_rollback_not_a_rerun() {
    let api = Fake::with_alias("f", "1");
    // Read 1: start. Read 2: first poll fails.
    api.reads_down_from.set(Some(2));
    let clock = FakeClock::new();
    let err = run(start(
        &api,
        &clock,
        &NoControl,
        &mut Events::default(),
        vec![member("f", Deployment::default())],
        &opts("Linear10PercentEvery1Minute"),
    ))
    .unwrap_err();
    let hint = &err
        .chain()
        .find_map(|e| e.downcast_ref::<crate::error::Hinted>())
        .expect("a hint")
        .hint;
    assert!(
        hint.contains("cargo fn deploy --resume") && hint.contains("cargo fn rollback f"),
        "{hint}"
    );
    assert!(!hint.contains("converges"), "{hint}");
}

#[test]
fn sigterm_rolls_back_with_a_reason_that_names_it() {
    let api = Fake::with_alias("f", "1");
    let clock = FakeClock::new();
    let control = CtrlC {
        clock: &clock,
        after: 2,
        decision: Decision::RollBack,
        signal: Signal::Terminate,
    };
    let report = run(start(
        &api,
        &clock,
        &control,
        &mut Events::default(),
        vec![member("f", Deployment::default())],
        &opts("Canary10Percent1Minute"),
    ))
    .unwrap();
    let Outcome::RolledBack { reason } = &report.outcome else {
        panic!("{report:?}");
    };
    assert_eq!(reason, "interrupted by SIGTERM");
    assert!(!reason.contains("Ctrl-C"), "{reason}");
}
