use serde_json::json;

use super::*;

const ARN: &str =
    "arn:aws:lambda:us-east-1:012345678912:function:f:$LATEST/durable-execution/n/id-1";

fn execution(now: Seconds) -> Execution {
    execution_with_timeout(now, 900)
}

fn execution_with_timeout(now: Seconds, timeout: u32) -> Execution {
    Execution::new(
        ARN.into(),
        "n".into(),
        "f".into(),
        "arn:aws:lambda:us-east-1:012345678912:function:f:$LATEST".into(),
        r#"{"a":1}"#.into(),
        timeout,
        14,
        now,
    )
}

fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("cb-{n}")
    }
}

fn step(id: &str, action: &str, payload: Option<&str>) -> Value {
    let mut v =
        json!({ "Id": id, "Type": "STEP", "SubType": "Step", "Name": "s", "Action": action });
    if let Some(p) = payload {
        v["Payload"] = json!(p);
    }
    v
}

#[test]
fn the_envelope_carries_the_execution_operation_and_a_fresh_token() {
    let mut ex = execution(100.0);
    let env = ex.begin_invocation("t1".into());
    assert_eq!(env["DurableExecutionArn"], ARN);
    assert_eq!(env["CheckpointToken"], "t1");
    let first = &env["InitialExecutionState"]["Operations"][0];
    assert_eq!(first["Type"], "EXECUTION");
    assert_eq!(first["ExecutionDetails"]["InputPayload"], r#"{"a":1}"#);
    assert!(env["InitialExecutionState"].get("NextMarker").is_none());
    assert!(!ex.needs_invoke);
}

#[test]
fn checkpoints_rotate_tokens_and_refuse_stale_ones() {
    let mut ex = execution(0.0);
    ex.begin_invocation("t1".into());
    let (out, _) = ex
        .checkpoint(
            "t1",
            &[step("s1", "START", None)],
            "t2".into(),
            1.0,
            &mut ids(),
        )
        .unwrap();
    assert_eq!(out["CheckpointToken"], "t2");
    assert_eq!(
        out["NewExecutionState"]["Operations"][0]["Status"],
        "STARTED"
    );
    let stale = ex
        .checkpoint(
            "t1",
            &[step("s1", "SUCCEED", Some("1"))],
            "t3".into(),
            2.0,
            &mut ids(),
        )
        .unwrap_err();
    assert!(
        stale.message.starts_with("Invalid Checkpoint Token"),
        "{stale:?}"
    );
    ex.checkpoint(
        "t2",
        &[step("s1", "SUCCEED", Some("1"))],
        "t3".into(),
        2.0,
        &mut ids(),
    )
    .unwrap();
    assert_eq!(ex.op("s1").unwrap().result.as_deref(), Some("1"));
    let kinds: Vec<&str> = ex
        .events
        .iter()
        .map(|e| e["EventType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ExecutionStarted", "StepStarted", "StepSucceeded"]);
}

#[test]
fn a_diverging_replay_is_refused_and_nothing_is_written() {
    let mut ex = execution(0.0);
    ex.begin_invocation("t1".into());
    ex.checkpoint(
        "t1",
        &[step("s1", "SUCCEED", Some("1"))],
        "t2".into(),
        1.0,
        &mut ids(),
    )
    .unwrap();
    let wait = json!({ "Id": "s1", "Type": "WAIT", "Action": "START", "WaitOptions": { "WaitSeconds": 5 } });
    let err = ex
        .checkpoint(
            "t2",
            &[step("s2", "START", None), wait],
            "t3".into(),
            2.0,
            &mut ids(),
        )
        .unwrap_err();
    assert!(err.message.contains("diverged"), "{err:?}");
    assert!(
        ex.op("s2").is_none(),
        "nothing of a refused checkpoint is kept"
    );
    let again = ex
        .checkpoint(
            "t2",
            &[step("s1", "SUCCEED", Some("2"))],
            "t3".into(),
            2.0,
            &mut ids(),
        )
        .unwrap_err();
    assert!(again.message.contains("already finished"), "{again:?}");
}

#[test]
fn waits_retries_and_callbacks_fire_on_the_clock() {
    let mut ex = execution_with_timeout(0.0, 200_000);
    ex.begin_invocation("t1".into());
    let updates = [
        json!({ "Id": "w", "Type": "WAIT", "Action": "START", "WaitOptions": { "WaitSeconds": 86400 } }),
        json!({ "Id": "r", "Type": "STEP", "Action": "RETRY", "StepOptions": { "NextAttemptDelaySeconds": 10 },
                "Error": { "ErrorType": "E", "ErrorMessage": "m" } }),
        json!({ "Id": "c", "Type": "CALLBACK", "Action": "START", "CallbackOptions": { "TimeoutSeconds": 100000 } }),
    ];
    let (out, _) = ex
        .checkpoint("t1", &updates, "t2".into(), 0.0, &mut ids())
        .unwrap();
    assert_eq!(
        out["NewExecutionState"]["Operations"][2]["CallbackDetails"]["CallbackId"],
        "cb-1"
    );
    assert_eq!(ex.next_due(), Some((10.0, true)));
    assert!(ex.fire_due(10.0));
    assert_eq!(ex.op("r").unwrap().status, "READY");
    assert_eq!(ex.op("r").unwrap().attempt, 1);
    assert_eq!(ex.next_due(), Some((86400.0, true)));
    assert!(ex.fire_due(86400.0));
    assert_eq!(ex.op("w").unwrap().status, "SUCCEEDED");
    assert_eq!(
        ex.next_due(),
        Some((100_000.0, false)),
        "the callback's timeout"
    );
    ex.complete_callback("cb-1", CallbackOutcome::Success("\"ok\"".into()), 5.0)
        .unwrap();
    assert_eq!(ex.op("c").unwrap().status, "SUCCEEDED");
    assert!(
        ex.complete_callback("cb-1", CallbackOutcome::Heartbeat, 6.0)
            .is_err()
    );
}

#[test]
fn the_execution_times_out_on_its_deadline() {
    let mut ex = execution(0.0);
    assert!(!ex.fire_due(900.0));
    assert_eq!(ex.status, ExecStatus::TimedOut);
    assert_eq!(ex.events.last().unwrap()["EventType"], "ExecutionTimedOut");
}

#[test]
fn state_and_history_page_with_markers() {
    let mut ex = execution(0.0);
    ex.begin_invocation("t1".into());
    let updates: Vec<Value> = (0..5)
        .map(|i| step(&format!("s{i}"), "START", None))
        .collect();
    ex.checkpoint("t1", &updates, "t2".into(), 1.0, &mut ids())
        .unwrap();
    let first = ex.state_page("t2", None, 4).unwrap();
    assert_eq!(first["Operations"].as_array().unwrap().len(), 4);
    let next = first["NextMarker"].as_str().unwrap();
    let rest = ex.state_page("t2", Some(next), 4).unwrap();
    assert_eq!(rest["Operations"].as_array().unwrap().len(), 2);
    assert!(rest.get("NextMarker").is_none());
    let history = ex.history(false, true, None, 100).unwrap();
    assert_eq!(history["Events"][0]["EventType"], "StepStarted");
    assert!(
        history["Events"].as_array().unwrap().last().unwrap()["ExecutionStartedDetails"]
            .get("Input")
            .and_then(|i| i.get("Payload"))
            .is_none()
    );
}
