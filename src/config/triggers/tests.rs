//! Every trigger rule, each with a value it refuses.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::config::{
    FunctionConfig, Overrides, Source, TriggerKind, display_rows, resolve_with_env,
};
use crate::project::{FunctionTarget, Project};

fn resolve(workspace: Value, package: Value) -> anyhow::Result<FunctionConfig> {
    let p = Project {
        workspace_root: PathBuf::from("/ws"),
        workspace_manifest: PathBuf::from("/ws/Cargo.toml"),
        target_dir: PathBuf::from("/ws/target"),
        workspace_metadata: workspace,
        functions: vec![FunctionTarget {
            package: "pkg".into(),
            bin: "hello".into(),
            manifest_path: PathBuf::from("/ws/pkg/Cargo.toml"),
            package_metadata: package,
            src_path: PathBuf::from("/ws/pkg/src/main.rs"),
        }],
    };
    Ok(resolve_with_env(&p, &Overrides::default(), &BTreeMap::new())?.remove(0))
}

fn accepted(trigger: Value) -> FunctionConfig {
    resolve(Value::Null, json!({ "fn": { "triggers": [trigger] } }))
        .unwrap_or_else(|e| panic!("refused: {e:#}"))
}

/// The error for one trigger; it must name the file and the key.
fn rejected(trigger: Value) -> String {
    match resolve(
        Value::Null,
        json!({ "fn": { "triggers": [trigger.clone()] } }),
    ) {
        Ok(c) => panic!("{trigger} was accepted: {:?}", c.triggers),
        Err(e) => {
            let text = format!("{e:#}");
            assert!(text.contains("/ws/pkg/Cargo.toml"), "no file in: {text}");
            assert!(text.contains("triggers"), "no key in: {text}");
            text
        }
    }
}

fn with(base: Value, key: &str, value: Value) -> Value {
    let mut b = base;
    b[key] = value;
    b
}

fn sqs() -> Value {
    json!({ "type": "sqs", "name": "orders", "queue": "orders" })
}

fn kinesis() -> Value {
    json!({ "type": "kinesis", "name": "clicks",
            "stream": "arn:aws:kinesis:us-east-1:123456789012:stream/clicks" })
}

fn dynamodb() -> Value {
    json!({ "type": "dynamodb", "name": "changes",
            "stream": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000" })
}

fn schedule(expr: &str) -> Value {
    json!({ "type": "schedule", "name": "tick", "expression": expr })
}

fn s3() -> Value {
    json!({ "type": "s3", "name": "uploads", "bucket": "my-bucket" })
}

fn http() -> Value {
    json!({ "type": "http-api", "name": "api" })
}

#[test]
fn every_type_parses_with_defaults() {
    let c = resolve(
        Value::Null,
        json!({ "fn": { "triggers": [sqs(), kinesis(), dynamodb(), schedule("rate(5 minutes)"), s3(), http()] } }),
    )
    .unwrap();
    assert_eq!(c.triggers.len(), 6);
    match &c.triggers[0].kind {
        TriggerKind::Sqs(s) => {
            assert!(s.report_batch_item_failures && s.enabled);
            assert_eq!(s.batch_size, None);
        }
        other => panic!("{other:?}"),
    }
    match &c.triggers[1].kind {
        TriggerKind::Kinesis(s) => assert_eq!(s.starting_position.as_str(), "LATEST"),
        other => panic!("{other:?}"),
    }
    match &c.triggers[4].kind {
        TriggerKind::S3(s) => assert_eq!(s.events, vec!["s3:ObjectCreated:*"]),
        other => panic!("{other:?}"),
    }
    match &c.triggers[5].kind {
        TriggerKind::HttpApi(h) => {
            assert_eq!(h.routes, vec!["$default"]);
            assert_eq!(
                (h.payload_format.as_str(), h.stage.as_str()),
                ("2.0", "$default")
            );
        }
        other => panic!("{other:?}"),
    }
    // `cargo fn config` shows each trigger with the key it came from.
    let rows = display_rows(&c);
    let row = rows.iter().find(|r| r.0 == "triggers.orders").unwrap();
    assert!(row.1.contains("sqs orders"), "{row:?}");
    assert_eq!(
        row.2,
        Source::Manifest {
            file: "/ws/pkg/Cargo.toml".into(),
            key: "package.metadata.fn.triggers".into()
        }
    );
}

#[test]
fn per_function_table_replaces_the_package_list() {
    let c = resolve(
        Value::Null,
        json!({ "fn": {
            "triggers": [sqs()],
            "functions": { "hello": { "triggers": [schedule("rate(1 hour)")] } }
        } }),
    )
    .unwrap();
    assert_eq!(c.triggers.len(), 1);
    assert_eq!(c.triggers[0].name, "tick");
    assert!(
        matches!(&c.sources["triggers"], Source::Manifest { key, .. } if key == "package.metadata.fn.functions.hello.triggers")
    );
}

#[test]
fn workspace_triggers_are_refused() {
    let e = resolve(json!({ "fn": { "triggers": [sqs()] } }), Value::Null).unwrap_err();
    assert!(format!("{e:#}").contains("belong to one function"), "{e:#}");
}

#[test]
fn common_rules() {
    let e = resolve(Value::Null, json!({ "fn": { "triggers": {"a": 1} } })).unwrap_err();
    assert!(format!("{e:#}").contains("a list of trigger tables"));
    assert!(rejected(json!("sqs")).contains("a table with `type` and `name`"));
    assert!(rejected(json!({ "type": "sqs", "queue": "q" })).contains("name"));
    assert!(rejected(with(sqs(), "name", json!("has space"))).contains("1-40 characters"));
    assert!(rejected(with(sqs(), "name", json!("x".repeat(41)))).contains("1-40"));
    assert!(rejected(json!({ "name": "a" })).contains("type"));
    assert!(rejected(with(sqs(), "type", json!("sns"))).contains("one of sqs, kinesis"));
    assert!(rejected(with(sqs(), "bogus", json!(1))).contains("unknown key"));
    let dup = resolve(Value::Null, json!({ "fn": { "triggers": [sqs(), sqs()] } })).unwrap_err();
    assert!(format!("{dup:#}").contains("no other trigger"));
    assert!(rejected(with(sqs(), "enabled", json!("yes"))).contains("true or false"));
}

#[test]
fn sqs_rules() {
    assert!(rejected(json!({ "type": "sqs", "name": "q" })).contains("queue"));
    assert!(rejected(with(sqs(), "queue", json!("bad name!"))).contains("queue name"));
    assert!(
        rejected(with(
            sqs(),
            "queue",
            json!("arn:aws:sns:us-east-1:123456789012:t")
        ))
        .contains("queue ARN")
    );
    assert!(rejected(with(sqs(), "queue", json!("q".repeat(81)))).contains("1-80"));
    assert!(rejected(with(sqs(), "batch-size", json!(0))).contains("1-10000"));
    assert!(rejected(with(sqs(), "batch-size", json!(10_001))).contains("1-10000"));
    let fifo = with(sqs(), "queue", json!("orders.fifo"));
    assert!(rejected(with(fifo.clone(), "batch-size", json!(11))).contains("1-10 (a FIFO queue)"));
    accepted(with(fifo.clone(), "batch-size", json!(10)));
    assert!(rejected(with(fifo, "maximum-batching-window", json!(1))).contains("FIFO"));
    // Above 10 messages, a batching window of at least one second.
    let big = with(sqs(), "batch-size", json!(100));
    assert!(rejected(big.clone()).contains("at least 1 second"));
    assert!(
        rejected(with(big.clone(), "maximum-batching-window", json!(0)))
            .contains("at least 1 second")
    );
    accepted(with(big, "maximum-batching-window", json!(1)));
    assert!(rejected(with(sqs(), "maximum-batching-window", json!(301))).contains("0-300"));
    assert!(rejected(with(sqs(), "maximum-concurrency", json!(1))).contains("2-1000"));
    assert!(rejected(with(sqs(), "maximum-concurrency", json!(1001))).contains("2-1000"));
    assert!(
        rejected(with(sqs(), "report-batch-item-failures", json!(1))).contains("true or false")
    );
    accepted(with(
        sqs(),
        "queue",
        json!("arn:aws:sqs:eu-west-1:123456789012:orders"),
    ));
}

#[test]
fn filter_rules() {
    let c = accepted(with(
        sqs(),
        "filters",
        json!([{ "body": { "kind": ["order"] } }, "{\"x\":[1]}"]),
    ));
    let TriggerKind::Sqs(s) = &c.triggers[0].kind else {
        panic!()
    };
    assert_eq!(s.filters[0], r#"{"body":{"kind":["order"]}}"#);
    assert!(rejected(with(sqs(), "filters", json!(["not json"]))).contains("filter pattern"));
    assert!(rejected(with(sqs(), "filters", json!([1]))).contains("filter pattern"));
    assert!(
        rejected(with(sqs(), "filters", json!({ "a": 1 }))).contains("list of filter patterns")
    );
    let six: Vec<Value> = (0..6).map(|i| json!({ "n": [i] })).collect();
    assert!(rejected(with(sqs(), "filters", Value::Array(six))).contains("at most 5"));
    let long = json!([{ "a": ["x".repeat(4100)] }]);
    assert!(rejected(with(sqs(), "filters", long)).contains("4096"));
}

#[test]
fn stream_rules() {
    for base in [kinesis(), dynamodb()] {
        assert!(rejected(with(base.clone(), "batch-size", json!(0))).contains("1-10000"));
        assert!(rejected(with(base.clone(), "batch-size", json!(10_001))).contains("1-10000"));
        assert!(
            rejected(with(base.clone(), "maximum-batching-window", json!(-1))).contains("0-300")
        );
        assert!(rejected(with(base.clone(), "parallelization-factor", json!(0))).contains("1-10"));
        assert!(rejected(with(base.clone(), "parallelization-factor", json!(11))).contains("1-10"));
        assert!(
            rejected(with(base.clone(), "maximum-retry-attempts", json!(-2))).contains("-1-10000")
        );
        assert!(
            rejected(with(base.clone(), "maximum-retry-attempts", json!(10_001)))
                .contains("-1-10000")
        );
        assert!(
            rejected(with(base.clone(), "maximum-record-age", json!(59))).contains("60-604800")
        );
        assert!(
            rejected(with(base.clone(), "maximum-record-age", json!(604_801)))
                .contains("60-604800")
        );
        assert!(rejected(with(base.clone(), "maximum-record-age", json!(0))).contains("60-604800"));
        accepted(with(base.clone(), "maximum-record-age", json!(-1)));
        assert!(rejected(with(base.clone(), "tumbling-window", json!(901))).contains("0-900"));
        assert!(
            rejected(with(
                base.clone(),
                "bisect-batch-on-function-error",
                json!("y")
            ))
            .contains("true or false")
        );
        assert!(
            rejected(with(base.clone(), "on-failure", json!("arn:aws:s3:::b")))
                .contains("SNS topic ARN")
        );
        accepted(with(
            base.clone(),
            "on-failure",
            json!("arn:aws:sns:us-east-1:123456789012:alarms"),
        ));
        assert!(
            rejected(with(base.clone(), "starting-position", json!("EARLIEST")))
                .contains("TRIM_HORIZON")
        );
        assert!(
            rejected(with(
                base.clone(),
                "starting-position-timestamp",
                json!("2030-01-01T00:00:00Z")
            ))
            .contains("only with")
        );
        assert!(
            rejected(with(
                base.clone(),
                "stream",
                json!("arn:aws:sqs:us-east-1:123456789012:q")
            ))
            .contains("stream ARN")
        );
        let mut none = base.clone();
        none.as_object_mut().unwrap().remove("stream");
        assert!(rejected(none).contains("required"));
    }
    // AT_TIMESTAMP is a Kinesis position, with a timestamp.
    assert!(
        rejected(with(dynamodb(), "starting-position", json!("AT_TIMESTAMP")))
            .contains("Kinesis only")
    );
    let at = with(kinesis(), "starting-position", json!("AT_TIMESTAMP"));
    assert!(rejected(at.clone()).contains("required with AT_TIMESTAMP"));
    assert!(
        rejected(with(
            at.clone(),
            "starting-position-timestamp",
            json!("2030-02-30T00:00:00Z")
        ))
        .contains("yyyy-mm-ddThh:mm:ssZ")
    );
    accepted(with(
        at,
        "starting-position-timestamp",
        json!("2030-01-01T00:00:00Z"),
    ));
}

#[test]
fn schedule_expressions() {
    for ok in [
        "rate(1 minute)",
        "rate(5 minutes)",
        "rate(1 hour)",
        "rate(12 hours)",
        "rate(1 day)",
        "rate(7 days)",
        "cron(0 12 * * ? *)",
        "cron(15 10 ? * 6L 2030)",
        "cron(0/15 8-17 ? * MON-FRI *)",
        "cron(0 0 L * ? *)",
        "cron(0 0 15W * ? *)",
        "cron(0 9 ? * 2#1 *)",
        "cron(5,35 14 * JAN,JUL ? 2029-2031)",
        "at(2030-02-28T23:59:59)",
        "at(2028-02-29T00:00:00)",
    ] {
        accepted(schedule(ok));
    }
    let cases = [
        ("rate(1 minutes)", "singular for 1"),
        ("rate(5 minute)", "plural above 1"),
        ("rate(0 minutes)", "positive whole number"),
        ("rate(5 weeks)", "minute|hour|day"),
        ("rate(five minutes)", "positive whole number"),
        ("cron(0 12 * * ?)", "6 fields"),
        ("cron(0 12 * * ? * *)", "6 fields"),
        ("cron(60 12 * * ? *)", "minutes"),
        ("cron(0 24 * * ? *)", "hours"),
        ("cron(0 12 32 * ? *)", "day-of-month"),
        ("cron(0 12 * 13 ? *)", "month"),
        ("cron(0 12 ? * 8 *)", "day-of-week"),
        ("cron(0 12 * * ? 1969)", "year"),
        ("cron(0 12 * * * *)", "exactly one"),
        ("cron(0 12 ? * ? *)", "exactly one"),
        ("cron(? 12 * * ? *)", "`?` only"),
        ("cron(0/0 12 * * ? *)", "increment"),
        ("cron(0 9 ? * 2#6 *)", "1-5"),
        ("cron(0 12 * FOO ? *)", "JAN-DEC"),
        ("at(2030-02-29T00:00:00)", "yyyy-mm-ddThh:mm:ss"),
        ("at(2030-01-01 00:00:00)", "yyyy-mm-ddThh:mm:ss"),
        ("at(2030-01-01T24:00:00)", "yyyy-mm-ddThh:mm:ss"),
        ("every 5 minutes", "rate(N unit)"),
    ];
    for (expr, what) in cases {
        let e = rejected(schedule(expr));
        assert!(e.contains(what), "{expr}: {e}");
        assert!(e.contains("triggers.tick.expression"), "{e}");
    }
    assert!(rejected(json!({ "type": "schedule", "name": "t" })).contains("required"));
}

#[test]
fn schedule_options() {
    let base = schedule("rate(1 hour)");
    assert!(rejected(with(base.clone(), "flexible-window", json!(0))).contains("1-1440"));
    assert!(rejected(with(base.clone(), "flexible-window", json!(1441))).contains("1-1440"));
    assert!(rejected(with(base.clone(), "maximum-event-age", json!(59))).contains("60-86400"));
    assert!(rejected(with(base.clone(), "maximum-event-age", json!(86_401))).contains("60-86400"));
    assert!(rejected(with(base.clone(), "maximum-retry-attempts", json!(186))).contains("0-185"));
    assert!(rejected(with(base.clone(), "maximum-retry-attempts", json!(-1))).contains("0-185"));
    assert!(rejected(with(base.clone(), "timezone", json!("Not a zone"))).contains("IANA"));
    // Well formed but not in the tz database.
    assert!(rejected(with(base.clone(), "timezone", json!("Mars/Olympus"))).contains("IANA"));
    accepted(with(
        base.clone(),
        "timezone",
        json!("America/Argentina/Buenos_Aires"),
    ));
    assert!(rejected(with(base.clone(), "input", json!("{oops"))).contains("valid JSON"));
    assert!(rejected(with(base.clone(), "input", json!(5))).contains("JSON text or a table"));
    let big = format!("\"{}\"", "x".repeat(9000));
    assert!(rejected(with(base.clone(), "input", json!(big))).contains("8192"));
    let c = accepted(with(base, "input", json!({ "job": "nightly" })));
    let TriggerKind::Schedule(s) = &c.triggers[0].kind else {
        panic!()
    };
    assert_eq!(s.input.as_deref(), Some(r#"{"job":"nightly"}"#));
}

#[test]
fn s3_rules() {
    assert!(rejected(json!({ "type": "s3", "name": "u" })).contains("bucket"));
    assert!(rejected(with(s3(), "bucket", json!("Upper"))).contains("bucket name"));
    assert!(rejected(with(s3(), "bucket", json!("ab"))).contains("3-63"));
    assert!(rejected(with(s3(), "bucket", json!("a..b"))).contains("bucket name"));
    assert!(rejected(with(s3(), "events", json!([]))).contains("at least one"));
    assert!(rejected(with(s3(), "events", json!(["s3:ObjectCreated"]))).contains("S3 event types"));
    assert!(rejected(with(s3(), "prefix", json!(""))).contains("1-1024"));
    assert!(rejected(with(s3(), "suffix", json!("x".repeat(1025)))).contains("1-1024"));
    let c = accepted(with(s3(), "bucket", json!("arn:aws:s3:::my-bucket")));
    let TriggerKind::S3(s) = &c.triggers[0].kind else {
        panic!()
    };
    assert_eq!(s.bucket, "my-bucket");
}

#[test]
fn http_api_rules() {
    accepted(with(
        http(),
        "routes",
        json!(["GET /items/{id}", "ANY /{proxy+}", "POST /", "$default"]),
    ));
    for bad in [
        "GET items",
        "FETCH /x",
        "GET /{proxy+}/x",
        "GET /a b",
        "GET /{}",
        "GET //x",
    ] {
        let e = rejected(with(http(), "routes", json!([bad])));
        assert!(e.contains("`METHOD /path`"), "{bad}: {e}");
    }
    assert!(rejected(with(http(), "routes", json!([]))).contains("1-300"));
    assert!(
        rejected(with(http(), "routes", json!(["GET /a", "GET /a"]))).contains("each route once")
    );
    assert!(rejected(with(http(), "payload-format", json!("3.0"))).contains("\"2.0\" or \"1.0\""));
    assert!(rejected(with(http(), "stage", json!("a b"))).contains("$default"));
    assert!(rejected(with(http(), "cors", json!("*"))).contains("a table"));
    assert!(rejected(with(http(), "cors", json!({ "max-age": 86_401 }))).contains("0-86400"));
    assert!(
        rejected(with(http(), "cors", json!({ "allow-methods": ["FETCH"] })))
            .contains("one of GET")
    );
    assert!(rejected(with(http(), "cors", json!({ "nope": 1 }))).contains("unknown key"));
    assert!(
        rejected(with(
            http(),
            "cors",
            json!({ "allow-origins": ["*"], "allow-credentials": true })
        ))
        .contains("explicit origins")
    );
}

#[test]
fn local_shards_is_for_kinesis_only_and_bounded() {
    let c = accepted(with(kinesis(), "local-shards", json!(4)));
    let TriggerKind::Kinesis(s) = &c.triggers[0].kind else {
        panic!()
    };
    assert_eq!(s.local_shards, Some(4));
    assert!(rejected(with(kinesis(), "local-shards", json!(0))).contains("1-64"));
    assert!(rejected(with(kinesis(), "local-shards", json!(65))).contains("1-64"));
    assert!(rejected(with(dynamodb(), "local-shards", json!(2))).contains("kinesis triggers"));
}
