//! Triggers deployed by `cargo fn deploy` against moto (through the
//! counting, fault-injecting proxy): create, change and remove by
//! configuration, read back from AWS state; ownership; least-privilege
//! policies; alias targeting; convergence after a fault.

use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};

use crate::support::deploy::{cargo_fn_in, deploy, ok, project, zip};
use crate::support::doubles::{Double, Kind};
use crate::support::moto::{FaultAction, http_as, http_with};
use crate::support::tempdir;

const ACCOUNT: &str = "123456789012";
const ALIAS_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:hello:live";

fn json_call(aws: &Double, service: &str, target: &str, version: &str, body: Value) -> Value {
    let content_type = format!("application/x-amz-json-{version}");
    let (status, out) = http_with(
        aws.port,
        service,
        "POST",
        "/",
        &[("Content-Type", &content_type), ("X-Amz-Target", target)],
        body.to_string().as_bytes(),
    );
    assert!(
        (200..300).contains(&status),
        "{target}: HTTP {status} {}",
        String::from_utf8_lossy(&out)
    );
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}

fn queue(aws: &Double, name: &str) -> String {
    json_call(
        aws,
        "sqs",
        "AmazonSQS.CreateQueue",
        "1.0",
        json!({ "QueueName": name }),
    );
    format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}")
}

fn kinesis_stream(aws: &Double, name: &str) -> String {
    json_call(
        aws,
        "kinesis",
        "Kinesis_20131202.CreateStream",
        "1.1",
        json!({ "StreamName": name, "ShardCount": 1 }),
    );
    format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{name}")
}

fn dynamodb_stream(aws: &Double, table: &str) -> String {
    let out = json_call(
        aws,
        "dynamodb",
        "DynamoDB_20120810.CreateTable",
        "1.0",
        json!({
            "TableName": table,
            "KeySchema": [{ "AttributeName": "id", "KeyType": "HASH" }],
            "AttributeDefinitions": [{ "AttributeName": "id", "AttributeType": "S" }],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": { "StreamEnabled": true, "StreamViewType": "NEW_IMAGE" },
        }),
    );
    out["TableDescription"]["LatestStreamArn"]
        .as_str()
        .expect("stream ARN")
        .to_string()
}

fn encode(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

/// Event source mappings whose function is the `live` alias.
fn mappings(aws: &Double) -> Vec<Value> {
    let v = aws.get_json(&format!(
        "/2015-03-31/event-source-mappings?FunctionName={}",
        encode(ALIAS_ARN)
    ));
    v["EventSourceMappings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn mapping_tags(aws: &Double, arn: &str) -> Value {
    aws.get_json(&format!("/2017-03-31/tags/{}", encode(arn)))["Tags"].clone()
}

fn get(aws: &Double, service: &str, path: &str) -> Option<Value> {
    let (status, out) = http_as(aws.port, service, "GET", path, b"");
    match status {
        200..=299 => Some(serde_json::from_slice(&out).expect("JSON")),
        404 => None,
        s => panic!("GET {path}: HTTP {s} {}", String::from_utf8_lossy(&out)),
    }
}

fn schedule(aws: &Double, name: &str) -> Option<Value> {
    get(aws, "scheduler", &format!("/schedules/{name}"))
}

fn apis(aws: &Double) -> Vec<Value> {
    get(aws, "apigateway", "/v2/apis").unwrap()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn routes(aws: &Double, api: &str) -> Vec<String> {
    let mut keys: Vec<String> = get(aws, "apigateway", &format!("/v2/apis/{api}/routes")).unwrap()
        ["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["routeKey"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

/// The statements of the alias's resource-based policy.
fn alias_policy(aws: &Double) -> Vec<Value> {
    match get(aws, "lambda", "/2015-03-31/functions/hello:live/policy") {
        None => Vec::new(),
        Some(v) => {
            let p: Value = serde_json::from_str(v["Policy"].as_str().unwrap()).unwrap();
            p["Statement"].as_array().cloned().unwrap_or_default()
        }
    }
}

fn unescape_xml(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// An inline role policy read back from IAM, or `None`.
fn role_policy(aws: &Double, role: &str, policy: &str) -> Option<Value> {
    let body =
        format!("Action=GetRolePolicy&RoleName={role}&PolicyName={policy}&Version=2010-05-08");
    let (status, out) = http_with(
        aws.port,
        "iam",
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    if status == 404 {
        return None;
    }
    let text = String::from_utf8_lossy(&out).to_string();
    assert_eq!(status, 200, "{text}");
    let start = text.find("<PolicyDocument>").unwrap() + "<PolicyDocument>".len();
    let end = text.find("</PolicyDocument>").unwrap();
    let doc = unescape_xml(&text[start..end]);
    let doc = if doc.starts_with('%') {
        percent_decode(&doc)
    } else {
        doc
    };
    Some(serde_json::from_str(&doc).unwrap_or_else(|e| panic!("{e}: {doc}")))
}

fn role_exists(aws: &Double, role: &str) -> bool {
    let body = format!("Action=GetRole&RoleName={role}&Version=2010-05-08");
    let (status, _) = http_with(
        aws.port,
        "iam",
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    status == 200
}

const SQS: &str = r#"
[[package.metadata.fn.triggers]]
type = "sqs"
name = "jobs"
queue = "jobs"
batch-size = 10
"#;

const SCHEDULE: &str = r#"
[[package.metadata.fn.triggers]]
type = "schedule"
name = "tick"
expression = "rate(5 minutes)"
input = '{"job":"tick"}'
"#;

const HTTP: &str = r#"
[[package.metadata.fn.triggers]]
type = "http-api"
name = "api"
routes = ["GET /items/{id}"]
"#;

/// Calls of a no-change redeploy with the SQS, schedule and HTTP API
/// triggers above: the identity check and the reads (see "Versions and
/// aliases" in docs/src/deploying.md).
const NOOP_READS: usize = 16;

/// The IAM description of a role.
fn role_description(aws: &Double, role: &str) -> String {
    let body = format!("Action=GetRole&RoleName={role}&Version=2010-05-08");
    let (status, out) = http_with(
        aws.port,
        "iam",
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    let text = String::from_utf8_lossy(&out).to_string();
    assert_eq!(status, 200, "{text}");
    let start = text.find("<Description>").expect("a description") + "<Description>".len();
    let end = text.find("</Description>").unwrap();
    text[start..end].to_string()
}

/// Issue 25 item 7: the triggers policy went before the mappings that need
/// it, a deploy that only removed triggers said "deployed, version 1", and
/// the scheduler role called itself a Lambda execution role.
#[test]
fn removing_triggers_deletes_mappings_before_their_permission_and_publishes_nothing() {
    let aws = Double::start(Kind::Moto);
    queue(&aws, "jobs");
    let dir = tempdir();
    let code = zip(dir.path(), "v1.zip", "one");
    write(dir.path(), &format!("{SQS}{SCHEDULE}"));
    ok(deploy(&aws, dir.path(), &code, &[]));
    let scheduler = role_description(&aws, "cargo-fn-hello-scheduler");
    assert_eq!(
        scheduler,
        "EventBridge Scheduler role created by cargo-fn to invoke hello"
    );
    assert_eq!(
        role_description(&aws, "cargo-fn-hello"),
        "Lambda execution role created by cargo-fn"
    );

    write(dir.path(), "triggers = []");
    aws.proxy.reset_calls();
    let run = cargo_fn_in(
        &aws,
        dir.path(),
        &["deploy", "--zip", code.to_str().unwrap()],
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("hello: updated, no new version (still 1), alias live -> 1"),
        "{}",
        run.stdout
    );
    let writes = aws.proxy.writes();
    assert!(
        !writes.iter().any(|w| w.ends_with("/versions")),
        "{writes:?}"
    );
    let mapping = writes
        .iter()
        .position(|w| w.starts_with("DELETE /2015-03-31/event-source-mappings/"))
        .expect("the mapping is deleted");
    // The first DeleteRolePolicy is cargo-fn-triggers (the scheduler's
    // policy goes with its schedules, after it).
    let policy = writes
        .iter()
        .position(|w| w == "iam:DeleteRolePolicy")
        .expect("the policy is deleted");
    assert!(mapping < policy, "{writes:?}");
    assert!(mappings(&aws).is_empty());
    assert!(role_policy(&aws, "cargo-fn-hello", "cargo-fn-triggers").is_none());
}

fn write(dir: &Path, triggers: &str) {
    project(dir, "hello", &format!("timeout = 10\n{triggers}"));
}

#[test]
fn sqs_schedule_and_http_api_are_created_changed_and_removed() {
    let aws = Double::start(Kind::Moto);
    let queue_arn = queue(&aws, "jobs");
    let dir = tempdir();
    let code = zip(dir.path(), "v1.zip", "one");

    // Baseline in the same run: a first deploy without triggers.
    let base = tempdir();
    project(base.path(), "hello", "name = \"plain\"");
    let started = Instant::now();
    ok(deploy(&aws, base.path(), &code, &[]));
    let (base_calls, base_time) = (aws.proxy.calls().len(), started.elapsed());
    aws.proxy.reset_calls();

    // First deploy with three triggers.
    write(dir.path(), &format!("{SQS}{SCHEDULE}{HTTP}"));
    let started = Instant::now();
    let out = ok(deploy(&aws, dir.path(), &code, &[]));
    let (first_calls, first_time) = (aws.proxy.calls().len(), started.elapsed());
    let f = &out["functions"][0];
    let url = f["triggers"]["api"]
        .as_str()
        .expect("invoke URL")
        .to_string();
    assert!(url.contains("execute-api"), "{url}");

    // The queue is mapped to the alias, tagged as ours, with partial failures.
    let m = mappings(&aws);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["EventSourceArn"], queue_arn.as_str());
    assert_eq!(m[0]["BatchSize"], 10);
    assert_eq!(
        m[0]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert!(!m[0]["FunctionArn"].as_str().unwrap().ends_with("$LATEST"));
    let tags = mapping_tags(&aws, m[0]["EventSourceMappingArn"].as_str().unwrap());
    assert_eq!(tags["cargo-fn:trigger"], "jobs");
    assert_eq!(tags["managed-by"], "cargo-fn");

    // Least privilege: the execution role reads exactly that queue.
    let p = role_policy(&aws, "cargo-fn-hello", "cargo-fn-triggers").expect("policy");
    let st = p["Statement"].as_array().unwrap();
    assert_eq!(st.len(), 1, "{p}");
    assert_eq!(st[0]["Resource"], queue_arn.as_str());
    assert_eq!(
        st[0]["Action"],
        json!([
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes"
        ])
    );

    // The schedule invokes the alias through its own role, which may invoke
    // only the alias.
    let s = schedule(&aws, "hello.tick").expect("schedule");
    assert_eq!(s["ScheduleExpression"], "rate(5 minutes)");
    assert_eq!(s["Target"]["Arn"], ALIAS_ARN);
    assert_eq!(s["Target"]["Input"], r#"{"job":"tick"}"#);
    assert!(
        s["Target"]["RoleArn"]
            .as_str()
            .unwrap()
            .ends_with(":role/cargo-fn-hello-scheduler")
    );
    let sp = role_policy(&aws, "cargo-fn-hello-scheduler", "cargo-fn-invoke").expect("policy");
    assert_eq!(
        sp["Statement"],
        json!([{ "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": ALIAS_ARN }])
    );

    // The HTTP API routes to the alias; API Gateway may invoke it from that API only.
    let a = apis(&aws);
    assert_eq!(a.len(), 1);
    let api_id = a[0]["apiId"].as_str().unwrap().to_string();
    assert_eq!(routes(&aws, &api_id), vec!["GET /items/{id}"]);
    let integ = get(
        &aws,
        "apigateway",
        &format!("/v2/apis/{api_id}/integrations"),
    )
    .unwrap();
    assert_eq!(integ["items"][0]["integrationUri"], ALIAS_ARN);
    assert_eq!(integ["items"][0]["payloadFormatVersion"], "2.0");
    let pol = alias_policy(&aws);
    let http = pol
        .iter()
        .find(|s| s["Sid"] == "cargo-fn-http-api")
        .expect("statement");
    assert_eq!(http["Principal"]["Service"], "apigateway.amazonaws.com");
    assert_eq!(
        http["Condition"]["ArnLike"]["AWS:SourceArn"],
        format!("arn:aws:execute-api:us-east-1:{ACCOUNT}:{api_id}/*")
    );
    assert_eq!(
        http["Condition"]["StringEquals"]["AWS:SourceAccount"],
        ACCOUNT
    );

    // No change: no write at all.
    aws.proxy.reset_calls();
    let started = Instant::now();
    ok(deploy(&aws, dir.path(), &code, &[]));
    let (noop_calls, noop_time) = (aws.proxy.calls().len(), started.elapsed());
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.writes());
    // The read count docs/src/deploying.md states for these three triggers.
    assert_eq!(noop_calls, NOOP_READS, "{:?}", aws.proxy.calls());
    eprintln!(
        "triggers bench: first deploy without triggers {base_calls} calls {base_time:?}; \
         with sqs+schedule+http-api {first_calls} calls {first_time:?}; \
         no-change redeploy {noop_calls} calls (0 writes) {noop_time:?}"
    );

    // A code change moves the alias; the triggers, on the alias, stay wired
    // (no mapping, schedule or API call).
    let v2 = zip(dir.path(), "v2.zip", "two");
    aws.proxy.reset_calls();
    ok(deploy(&aws, dir.path(), &v2, &[]));
    let rewired: Vec<String> = aws
        .proxy
        .writes()
        .into_iter()
        .filter(|w| {
            w.contains("event-source-mappings") || w.contains("schedules") || w.contains("/v2/apis")
        })
        .collect();
    assert!(rewired.is_empty(), "{rewired:?}");
    assert_eq!(mappings(&aws).len(), 1);

    // The dry run shows each change, and changes nothing.
    let sqs5 = SQS.replace("batch-size = 10", "batch-size = 5");
    let schedule2 = SCHEDULE.replace("rate(5 minutes)", "rate(2 hours)");
    let http2 = HTTP.replace(
        r#"["GET /items/{id}"]"#,
        r#"["GET /items/{id}", "POST /items"]"#,
    );
    write(dir.path(), &format!("{sqs5}{schedule2}{http2}"));
    aws.proxy.reset_calls();
    let dry = cargo_fn_in(
        &aws,
        dir.path(),
        &["deploy", "--zip", v2.to_str().unwrap(), "--dry-run"],
    );
    assert!(dry.ok, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("UpdateEventSourceMapping"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("batch-size: 10 -> 5"), "{}", dry.stdout);
    assert!(
        dry.stdout
            .contains("expression: rate(5 minutes) -> rate(2 hours)"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("route POST /items"), "{}", dry.stdout);
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.writes());

    // Change each of them.
    ok(deploy(&aws, dir.path(), &v2, &[]));
    assert_eq!(mappings(&aws)[0]["BatchSize"], 5);
    assert_eq!(
        schedule(&aws, "hello.tick").unwrap()["ScheduleExpression"],
        "rate(2 hours)"
    );
    assert_eq!(
        routes(&aws, &api_id),
        vec!["GET /items/{id}", "POST /items"]
    );

    // Remove them all: `triggers = []`.
    project(dir.path(), "hello", "timeout = 10\ntriggers = []");
    ok(deploy(&aws, dir.path(), &code, &[]));
    assert!(mappings(&aws).is_empty());
    assert!(schedule(&aws, "hello.tick").is_none());
    assert!(apis(&aws).is_empty());
    assert!(!role_exists(&aws, "cargo-fn-hello-scheduler"));
    assert!(role_policy(&aws, "cargo-fn-hello", "cargo-fn-triggers").is_none());
    assert!(
        !alias_policy(&aws)
            .iter()
            .any(|s| s["Sid"] == "cargo-fn-http-api")
    );
    // And nothing more to do.
    aws.proxy.reset_calls();
    ok(deploy(&aws, dir.path(), &code, &[]));
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.writes());
}

#[test]
fn a_foreign_mapping_survives_and_is_never_touched() {
    let aws = Double::start(Kind::Moto);
    queue(&aws, "jobs");
    let other = queue(&aws, "other");
    let dir = tempdir();
    let code = zip(dir.path(), "v1.zip", "one");
    write(dir.path(), SQS);
    ok(deploy(&aws, dir.path(), &code, &[]));

    // Someone maps another queue to the same alias by hand.
    let (status, body) = http_as(
        aws.port,
        "lambda",
        "POST",
        "/2015-03-31/event-source-mappings",
        json!({ "EventSourceArn": other, "FunctionName": ALIAS_ARN })
            .to_string()
            .as_bytes(),
    );
    assert!(
        (200..300).contains(&status),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(mappings(&aws).len(), 2);

    // Removing our trigger removes ours only.
    project(dir.path(), "hello", "timeout = 10\ntriggers = []");
    ok(deploy(&aws, dir.path(), &code, &[]));
    let m = mappings(&aws);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["EventSourceArn"], other.as_str());

    // A trigger on the foreign mapping's queue is refused before any write.
    let clash = SQS.replace("queue = \"jobs\"", "queue = \"other\"");
    write(dir.path(), &clash);
    aws.proxy.reset_calls();
    let run = deploy(&aws, dir.path(), &code, &[]);
    assert!(!run.ok);
    assert!(run.stderr.contains("did not create"), "{}", run.stderr);
    assert!(
        !aws.proxy
            .writes()
            .iter()
            .any(|w| w.contains("event-source-mappings")),
        "{:?}",
        aws.proxy.writes()
    );
    assert_eq!(mappings(&aws).len(), 1);
}

#[test]
fn stream_triggers_are_created_changed_and_removed() {
    let aws = Double::start(Kind::Moto);
    let kinesis = kinesis_stream(&aws, "clicks");
    let ddb = dynamodb_stream(&aws, "orders");
    let dlq = queue(&aws, "dlq");
    let dir = tempdir();
    let code = zip(dir.path(), "v1.zip", "one");
    let triggers = format!(
        r#"
[[package.metadata.fn.triggers]]
type = "kinesis"
name = "clicks"
stream = "{kinesis}"
starting-position = "TRIM_HORIZON"
parallelization-factor = 2
on-failure = "{dlq}"

[[package.metadata.fn.triggers]]
type = "dynamodb"
name = "orders"
stream = "{ddb}"
batch-size = 50
"#
    );
    write(dir.path(), &triggers);
    ok(deploy(&aws, dir.path(), &code, &[]));
    let m = mappings(&aws);
    assert_eq!(m.len(), 2, "{m:?}");
    let k = m
        .iter()
        .find(|m| m["EventSourceArn"] == kinesis.as_str())
        .unwrap();
    assert_eq!(k["StartingPosition"], "TRIM_HORIZON");
    assert_eq!(k["ParallelizationFactor"], 2);
    assert_eq!(
        k["DestinationConfig"]["OnFailure"]["Destination"],
        dlq.as_str()
    );
    let d = m
        .iter()
        .find(|m| m["EventSourceArn"] == ddb.as_str())
        .unwrap();
    assert_eq!(d["BatchSize"], 50);
    assert_eq!(d["StartingPosition"], "LATEST");

    // Least privilege: stream reads on each stream, SendMessage on the DLQ.
    let p = role_policy(&aws, "cargo-fn-hello", "cargo-fn-triggers").unwrap();
    let st = p["Statement"].as_array().unwrap();
    let on = |r: &str| st.iter().filter(|s| s["Resource"] == r).count();
    assert_eq!((on(&kinesis), on(&ddb), on(&dlq)), (1, 1, 1), "{p}");
    assert!(
        st.iter()
            .any(|s| s["Resource"] == dlq.as_str() && s["Action"] == "sqs:SendMessage")
    );

    // No change, no write.
    aws.proxy.reset_calls();
    ok(deploy(&aws, dir.path(), &code, &[]));
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.writes());

    // Change in place; a new starting position replaces the mapping.
    let changed = triggers
        .replace("parallelization-factor = 2", "parallelization-factor = 5")
        .replace(
            "batch-size = 50",
            "batch-size = 60\nstarting-position = \"TRIM_HORIZON\"",
        );
    write(dir.path(), &changed);
    let old_ddb_uuid = d["UUID"].clone();
    ok(deploy(&aws, dir.path(), &code, &[]));
    let m = mappings(&aws);
    assert_eq!(m.len(), 2, "{m:?}");
    let k = m
        .iter()
        .find(|m| m["EventSourceArn"] == kinesis.as_str())
        .unwrap();
    assert_eq!(k["ParallelizationFactor"], 5);
    let d = m
        .iter()
        .find(|m| m["EventSourceArn"] == ddb.as_str())
        .unwrap();
    assert_eq!(d["BatchSize"], 60);
    assert_eq!(d["StartingPosition"], "TRIM_HORIZON");
    assert_ne!(d["UUID"], old_ddb_uuid);

    // The function records that it has triggers on this alias, so removing
    // the key altogether removes them too (and then the record).
    let tags = || aws.get_json("/2015-03-31/functions/hello")["Tags"].clone();
    assert_eq!(tags()["cargo-fn:triggers:live"], "2");
    project(dir.path(), "hello", "timeout = 10");
    ok(deploy(&aws, dir.path(), &code, &[]));
    assert!(mappings(&aws).is_empty());
    assert!(tags().get("cargo-fn:triggers:live").is_none(), "{}", tags());
    assert!(role_policy(&aws, "cargo-fn-hello", "cargo-fn-triggers").is_none());
    // Without triggers or records, deploy makes no trigger call at all.
    aws.proxy.reset_calls();
    ok(deploy(&aws, dir.path(), &code, &[]));
    let calls = aws.proxy.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("event-source-mappings") || c.contains("schedules")),
        "{calls:?}"
    );
}

#[test]
fn a_fault_in_the_middle_converges_on_rerun() {
    let aws = Double::start(Kind::Moto);
    queue(&aws, "jobs");
    let dir = tempdir();
    let code = zip(dir.path(), "v1.zip", "one");
    write(dir.path(), &format!("{SQS}{SCHEDULE}{HTTP}"));
    // The schedule's creation fails after the mapping exists.
    aws.proxy.inject(
        "POST /schedules/",
        FaultAction::Error(500, "InternalServerException"),
        10,
    );
    let run = deploy(&aws, dir.path(), &code, &[]);
    assert!(!run.ok, "{}", run.stdout);
    assert_eq!(mappings(&aws).len(), 1);
    assert!(schedule(&aws, "hello.tick").is_none());

    aws.proxy.clear_faults();
    ok(deploy(&aws, dir.path(), &code, &[]));
    assert_eq!(mappings(&aws).len(), 1, "no second mapping");
    assert!(schedule(&aws, "hello.tick").is_some());
    assert_eq!(apis(&aws).len(), 1);

    aws.proxy.reset_calls();
    ok(deploy(&aws, dir.path(), &code, &[]));
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.writes());
}

#[test]
fn a_lost_answer_to_a_mapping_create_converges_to_one_mapping() {
    let aws = Double::start(Kind::Moto);
    queue(&aws, "jobs");
    let dir = tempdir();
    let code = zip(dir.path(), "v1.zip", "one");
    write(dir.path(), SQS);
    // moto creates the mapping but the answer never arrives: the SDK
    // retries, and the retry may create a second one.
    aws.proxy.inject(
        "=POST /2015-03-31/event-source-mappings",
        FaultAction::DropAfterForward,
        1,
    );
    let _ = deploy(&aws, dir.path(), &code, &[]);
    aws.proxy.clear_faults();
    ok(deploy(&aws, dir.path(), &code, &[]));
    let m = mappings(&aws);
    assert_eq!(m.len(), 1, "{m:?}");
    aws.proxy.reset_calls();
    ok(deploy(&aws, dir.path(), &code, &[]));
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.writes());
}

#[test]
fn s3_notifications_keep_foreign_entries() {
    let aws = Double::start(Kind::Moto);
    let (status, _) = http_as(aws.port, "s3", "PUT", "/uploads-bucket", b"");
    assert_eq!(status, 200);
    let other = queue(&aws, "audit");
    // A notification someone else configured.
    let foreign = format!(
        "<NotificationConfiguration><QueueConfiguration><Id>audit</Id><Queue>{other}</Queue>\
         <Event>s3:ObjectRemoved:*</Event></QueueConfiguration></NotificationConfiguration>"
    );
    let (status, body) = http_with(
        aws.port,
        "s3",
        "PUT",
        "/uploads-bucket?notification",
        &[("Content-Type", "application/xml")],
        foreign.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let dir = tempdir();
    let code = zip(dir.path(), "v1.zip", "one");
    let s3 = r#"
[[package.metadata.fn.triggers]]
type = "s3"
name = "uploads"
bucket = "uploads-bucket"
prefix = "in/"
"#;
    write(dir.path(), s3);
    ok(deploy(&aws, dir.path(), &code, &[]));
    let read = || {
        let (status, body) = http_as(aws.port, "s3", "GET", "/uploads-bucket?notification", b"");
        assert_eq!(status, 200);
        String::from_utf8_lossy(&body).to_string()
    };
    let n = read();
    assert!(n.contains("<Id>audit</Id>"), "{n}");
    assert!(n.contains("cargo-fn.hello.uploads"), "{n}");
    assert!(n.contains(ALIAS_ARN), "{n}");
    assert!(n.contains("in/"), "{n}");
    let pol = alias_policy(&aws);
    let s = pol
        .iter()
        .find(|s| s["Sid"] == "cargo-fn-s3-uploads")
        .expect("statement");
    assert_eq!(s["Principal"]["Service"], "s3.amazonaws.com");
    assert_eq!(
        s["Condition"]["ArnLike"]["AWS:SourceArn"],
        "arn:aws:s3:::uploads-bucket"
    );
    assert_eq!(s["Condition"]["StringEquals"]["AWS:SourceAccount"], ACCOUNT);

    aws.proxy.reset_calls();
    ok(deploy(&aws, dir.path(), &code, &[]));
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.writes());

    project(dir.path(), "hello", "timeout = 10\ntriggers = []");
    ok(deploy(&aws, dir.path(), &code, &[]));
    let n = read();
    assert!(n.contains("<Id>audit</Id>"), "{n}");
    assert!(!n.contains("cargo-fn.hello.uploads"), "{n}");
    assert!(
        !alias_policy(&aws)
            .iter()
            .any(|s| s["Sid"] == "cargo-fn-s3-uploads")
    );
}

/// Each template's trigger passes validation: the active ones as generated,
/// the commented ones once uncommented with a real-looking ARN.
#[test]
fn templates_generate_triggers_that_validate() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("t-sqs", &["--event", "sqs"], "sqs"),
        ("t-kinesis", &["--event", "kinesis"], "kinesis"),
        (
            "t-dynamodb",
            &["--template", "stream", "--var", "source=dynamodb"],
            "dynamodb",
        ),
        ("t-scheduled", &["--event", "scheduled"], "schedule"),
        ("t-s3", &["--event", "s3"], "s3"),
        ("t-http", &["--http"], "http-api"),
    ];
    for (name, flags, ty) in cases {
        let tmp = tempdir();
        let out = crate::support::cargo_fn()
            .current_dir(tmp.path())
            .arg("new")
            .arg(name)
            .args(*flags)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest = tmp.path().join(name).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        assert!(
            text.contains("[[package.metadata.fn.triggers]]"),
            "{name}: {text}"
        );
        // Uncomment a commented trigger block and fill in its placeholders.
        let mut lines = Vec::new();
        let mut in_block = false;
        for line in text.lines() {
            if line == "# [[package.metadata.fn.triggers]]" {
                in_block = true;
            } else if !line.starts_with("# ") {
                in_block = false;
            }
            match line.strip_prefix("# ") {
                Some(rest) if in_block => lines.push(rest.to_string()),
                _ => lines.push(line.to_string()),
            }
        }
        let filled = lines
            .join("\n")
            .replace("<region>", "us-east-1")
            .replace("<account>", "123456789012")
            .replace("<name>", "clicks")
            .replace("<table>", "orders")
            .replace("<label>", "2024-01-01T00:00:00.000");
        std::fs::write(&manifest, filled).unwrap();
        let out = crate::support::cargo_fn()
            .args(["config", "--output", "json", "--manifest-path"])
            .arg(&manifest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v[0]["triggers"][0]["type"], *ty, "{name}: {v}");
    }
}

#[test]
fn a_first_deploy_dry_run_lists_each_trigger_and_writes_nothing() {
    let aws = Double::start(Kind::Moto);
    queue(&aws, "jobs");
    let dir = tempdir();
    let code = zip(dir.path(), "v1.zip", "one");
    write(dir.path(), &format!("{SQS}{SCHEDULE}{HTTP}"));
    let dry = cargo_fn_in(
        &aws,
        dir.path(),
        &["deploy", "--zip", code.to_str().unwrap(), "--dry-run"],
    );
    assert!(dry.ok, "{}", dry.stderr);
    for expected in [
        "CreateEventSourceMapping arn:aws:sqs:us-east-1:123456789012:jobs",
        "iam:CreateRole cargo-fn-hello-scheduler",
        "scheduler:CreateSchedule hello.tick rate(5 minutes)",
        "create API hello-api",
        "route GET /items/{id}",
        ALIAS_ARN,
    ] {
        assert!(dry.stdout.contains(expected), "{expected}: {}", dry.stdout);
    }
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.writes());
}
