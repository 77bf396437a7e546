//! The pure parts of the trigger diff: names, defaults, comparisons, policies.

use super::iam::pull_policy;
use super::mappings::{
    epoch_seconds, mapping_diff, needs_replacement, sqs_spec, stream_spec, update_spec,
};
use super::schedules::{
    schedule_diff, schedule_prefix, schedule_spec, scheduler_policy, scheduler_role_name,
};
use super::*;
use crate::config::triggers::{ScheduleTrigger, SqsTrigger, StartingPosition, StreamTrigger};
use crate::config::{Trigger, TriggerKind};

fn target() -> Target {
    Target::from_function_arn(
        "arn:aws:lambda:us-east-1:123456789012:function:orders",
        "live",
        Some("cargo-fn-orders".into()),
    )
    .unwrap()
}

fn sqs(queue: &str) -> SqsTrigger {
    SqsTrigger {
        queue: queue.into(),
        batch_size: None,
        maximum_batching_window: None,
        maximum_concurrency: None,
        report_batch_item_failures: true,
        filters: vec![],
        enabled: true,
    }
}

fn stream() -> StreamTrigger {
    StreamTrigger {
        stream: "arn:aws:kinesis:us-east-1:123456789012:stream/clicks".into(),
        starting_position: StartingPosition::Latest,
        starting_position_timestamp: None,
        batch_size: None,
        maximum_batching_window: None,
        parallelization_factor: Some(4),
        bisect_batch_on_function_error: None,
        maximum_retry_attempts: None,
        maximum_record_age: None,
        tumbling_window: None,
        on_failure: Some("arn:aws:sqs:us-east-1:123456789012:dlq".into()),
        report_batch_item_failures: true,
        filters: vec![],
        enabled: true,
        local_shards: None,
    }
}

#[test]
fn triggers_target_the_alias_never_latest() {
    let t = target();
    assert_eq!(
        t.alias_arn(),
        "arn:aws:lambda:us-east-1:123456789012:function:orders:live"
    );
    assert_eq!(
        queue_arn(&t, "jobs"),
        "arn:aws:sqs:us-east-1:123456789012:jobs"
    );
    assert_eq!(
        queue_arn(&t, "arn:aws:sqs:eu-west-1:1:x"),
        "arn:aws:sqs:eu-west-1:1:x"
    );
}

#[test]
fn names_fit_aws_limits() {
    let long = "f".repeat(64);
    assert!(schedule_prefix(&long).len() <= 23);
    assert!(schedule_prefix(&long).len() + 40 <= 64);
    assert_eq!(schedule_prefix("orders"), "orders.");
    assert!(scheduler_role_name(&long).len() <= 64);
    assert_eq!(scheduler_role_name("orders"), "cargo-fn-orders-scheduler");
    // Different long names keep different prefixes.
    assert_ne!(
        schedule_prefix(&format!("{}a", "f".repeat(40))),
        schedule_prefix(&format!("{}b", "f".repeat(40)))
    );
}

#[test]
fn defaults_compare_equal_to_what_aws_reports() {
    let t = target();
    let want = sqs_spec(&t, &sqs("jobs"));
    // What Lambda answers for a mapping made from it.
    let have = MappingSpec {
        maximum_batching_window: None,
        ..want.clone()
    };
    assert!(mapping_diff(&want, &have).is_empty());
    let want = stream_spec(&stream());
    let have = MappingSpec {
        bisect_batch_on_function_error: None,
        maximum_retry_attempts: None,
        maximum_record_age: None,
        tumbling_window: None,
        ..want.clone()
    };
    assert!(
        mapping_diff(&want, &have).is_empty(),
        "{:?}",
        mapping_diff(&want, &have)
    );
}

#[test]
fn changed_settings_are_listed_and_cleared_values_sent() {
    let t = target();
    let mut s = sqs("jobs");
    let have = MappingSpec {
        maximum_concurrency: Some(5),
        ..sqs_spec(&t, &s)
    };
    s.batch_size = Some(5);
    let want = sqs_spec(&t, &s);
    let fields = mapping_diff(&want, &have);
    assert!(
        fields.contains(&"batch-size 10 -> 5".to_string()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"maximum-concurrency 5 -> -".to_string()),
        "{fields:?}"
    );
    let update = update_spec(&want, &have);
    assert_eq!(update.maximum_concurrency, Some(0));
    let mut st = stream();
    let have = stream_spec(&st);
    st.on_failure = None;
    let update = update_spec(&stream_spec(&st), &have);
    assert_eq!(update.on_failure.as_deref(), Some(""));
    assert_eq!(update.starting_position, None);
}

#[test]
fn a_new_source_or_starting_point_replaces_the_mapping() {
    let t = target();
    let a = sqs_spec(&t, &sqs("a"));
    let b = sqs_spec(&t, &sqs("b"));
    assert!(needs_replacement(&b, &a));
    assert!(!needs_replacement(&a, &a));
    let mut s = stream();
    let old = stream_spec(&s);
    s.starting_position = StartingPosition::TrimHorizon;
    assert!(needs_replacement(&stream_spec(&s), &old));
}

#[test]
fn at_timestamp_is_converted_to_epoch_seconds() {
    assert_eq!(epoch_seconds("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(epoch_seconds("2000-03-01T00:00:01Z"), Some(951_868_801));
    assert_eq!(epoch_seconds("2030-01-01T00:00:00Z"), Some(1_893_456_000));
}

#[test]
fn pull_policy_is_least_privilege() {
    let t = target();
    let triggers = vec![
        Trigger {
            name: "jobs".into(),
            kind: TriggerKind::Sqs(sqs("jobs")),
        },
        Trigger {
            name: "clicks".into(),
            kind: TriggerKind::Kinesis(stream()),
        },
    ];
    let doc = pull_policy(&t, &triggers).unwrap();
    let st = doc["Statement"].as_array().unwrap();
    assert_eq!(st.len(), 3);
    assert_eq!(st[0]["Resource"], "arn:aws:sqs:us-east-1:123456789012:jobs");
    assert_eq!(
        st[0]["Action"],
        serde_json::json!([
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes"
        ])
    );
    assert_eq!(
        st[1]["Resource"],
        "arn:aws:kinesis:us-east-1:123456789012:stream/clicks"
    );
    assert_eq!(st[2]["Action"], "sqs:SendMessage");
    assert_eq!(st[2]["Resource"], "arn:aws:sqs:us-east-1:123456789012:dlq");
    for s in st {
        assert_ne!(s["Resource"], "*");
    }
    assert!(pull_policy(&t, &[]).is_none());
    let sp = scheduler_policy(&t);
    assert_eq!(sp["Statement"][0]["Resource"], t.alias_arn());
    assert_eq!(sp["Statement"][0]["Action"], "lambda:InvokeFunction");
}

#[test]
fn schedule_defaults_compare_equal() {
    let t = target();
    let s = ScheduleTrigger {
        expression: "rate(5 minutes)".into(),
        timezone: None,
        flexible_window: None,
        input: Some("{\"a\": 1}".into()),
        maximum_event_age: None,
        maximum_retry_attempts: None,
        enabled: true,
    };
    let want = schedule_spec(&t, "tick", &s);
    assert_eq!(want.name, "orders.tick");
    assert_eq!(want.target_arn, t.alias_arn());
    let mut have = want.clone();
    have.timezone = Some("UTC".into());
    have.input = Some("{\"a\":1}".into());
    assert!(schedule_diff(&want, &have).is_empty());
    have.expression = "rate(1 hour)".into();
    assert_eq!(
        schedule_diff(&want, &have),
        vec!["expression rate(1 hour) -> rate(5 minutes)"]
    );
}
