//! The HTTP front through a real HTTP client: a lambda_http handler and a
//! plain JSON handler (both on the official runtime crates) behind a
//! function URL, an HTTP API, a REST API and an ALB.

use cargo_fn::emulator::{CorsPolicy, HttpEventFormat};
use serde_json::{Value, json};

use crate::support::emulator::{http, spec, start};

fn json_body(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lambda_http_handler_behind_a_function_url() {
    let (emu, _client, _logs) = start(vec![spec("api", "http"), spec("plain", "plain")]).await;
    let base = format!("{}/lambda-url/api", emu.endpoint());

    for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
        let (status, headers, body) = http(
            method,
            &format!("{base}/items/7?tag=a&tag=b&q=x%20y"),
            &[("cookie", "s=1; t=2"), ("content-type", "text/plain")],
            b"hello".to_vec(),
        )
        .await;
        assert_eq!(status, 201, "{method}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers["x-handler"], "lambda_http");
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2"], "{method}");
        let seen = json_body(&body);
        assert_eq!(seen["method"], method);
        assert_eq!(seen["path"], "/items/7");
        let query = seen["query"].as_array().unwrap();
        assert!(query.contains(&json!(["tag", ["a", "b"]])), "{seen}");
        assert!(query.contains(&json!(["q", ["x y"]])), "{seen}");
        assert_eq!(seen["cookie"], json!(["s=1; t=2"]));
        assert_eq!(seen["bodyLength"], 5);
    }

    // Binary both ways: every byte value survives the base64 round trip.
    let upload: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let (status, headers, body) = http(
        "POST",
        &format!("{base}/binary"),
        &[("content-type", "application/octet-stream")],
        upload.clone(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(body, upload);

    // A handler error is a 502, like the real function URL.
    let (status, _, body) = http("GET", &format!("{base}/fail"), &[], vec![]).await;
    assert_eq!(status, 502);
    assert_eq!(body, b"Internal Server Error");

    // An unknown function is a 404 naming it.
    let (status, _, body) = http(
        "GET",
        &format!("{}/lambda-url/nope/x", emu.endpoint()),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("nope"));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_json_handler_inference_and_errors() {
    let mut broken = spec("broken", "fail");
    broken.http.format = HttpEventFormat::HttpApi;
    let (emu, _client, logs) = start(vec![spec("plain", "plain"), broken]).await;
    let base = format!("{}/lambda-url/plain", emu.endpoint());

    // JSON without statusCode: 200, application/json, the JSON as body.
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let (status, headers, body) = http(
        "POST",
        &format!("{base}/items?tag=a&tag=b"),
        &[
            ("cookie", "s=1; t=2"),
            ("x-tag", "one"),
            ("x-tag", "two"),
            ("x-amzn-trace-id", trace),
            ("content-type", "application/json"),
        ],
        br#"{"k":1}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-amzn-trace-id"], trace);
    let out = json_body(&body);
    assert_eq!(out["trace"], trace, "the trace header reaches the function");
    let xray = "XRAY TraceId: 1-5759e988-bd862e3fe1be46a994272793\tSegmentId: 53995c3f42cd8ad8\tSampled: true";
    assert_eq!(logs.count_when(xray, 1).await, 1, "{:#?}", logs.lines());
    let event = &out["event"];
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["rawPath"], "/items");
    assert_eq!(event["rawQueryString"], "tag=a&tag=b");
    assert_eq!(event["queryStringParameters"]["tag"], "a,b");
    assert_eq!(event["headers"]["x-tag"], "one,two");
    assert_eq!(event["cookies"], json!(["s=1", "t=2"]));
    assert_eq!(event["body"], r#"{"k":1}"#);
    assert_eq!(event["isBase64Encoded"], false);
    assert_eq!(event["requestContext"]["http"]["method"], "POST");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");

    // A bare string is sent as its JSON text.
    let (status, _, body) = http("GET", &format!("{base}/string"), &[], vec![]).await;
    assert_eq!((status, body.as_slice()), (200, br#""Hello""#.as_slice()));

    // An explicit response object: status, headers, cookies.
    let (status, headers, body) = http("GET", &format!("{base}/explicit"), &[], vec![]).await;
    assert_eq!(status, 418);
    assert_eq!(headers["x-plain"], "yes");
    let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["c=3", "d=4"]);
    assert_eq!(body, b"teapot");

    // Binary upload reaches a plain handler base64-encoded.
    let (_, _, body) = http(
        "PUT",
        &format!("{base}/bin"),
        &[("content-type", "image/png")],
        vec![0x89, 0x50, 0x4e, 0x47, 0, 0xff],
    )
    .await;
    let event = &json_body(&body)["event"];
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "iVBORwD/");

    // A function error behind an HTTP API is API Gateway's 502.
    let (status, _, body) = http(
        "GET",
        &format!("{}/lambda-url/broken/", emu.endpoint()),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(
        json_body(&body),
        json!({"message": "Internal Server Error"})
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_api_and_alb_formats() {
    let mut rest = spec("rest", "plain");
    rest.http.format = HttpEventFormat::RestApi;
    let mut rest_http = spec("rest-http", "http");
    rest_http.http.format = HttpEventFormat::RestApi;
    let mut alb_http = spec("alb-http", "http");
    alb_http.http.format = HttpEventFormat::Alb;
    let (emu, _client, _logs) = start(vec![rest, rest_http, alb_http]).await;

    // A plain handler answering without statusCode is a 502 behind REST.
    let url = format!("{}/lambda-url/rest/a/b?k=1&k=2", emu.endpoint());
    let (status, _, _) = http("GET", &url, &[("x-m", "1"), ("x-m", "2")], vec![]).await;
    assert_eq!(status, 502);

    // lambda_http understands the 1.0 event, repeats included.
    let url = format!("{}/lambda-url/rest-http/items?tag=a&tag=b", emu.endpoint());
    let (status, headers, body) = http("DELETE", &url, &[("cookie", "s=1")], vec![]).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers.get_all("set-cookie").iter().count(), 2);
    let seen = json_body(&body);
    assert_eq!(seen["method"], "DELETE");
    assert_eq!(seen["path"], "/items");
    assert!(
        seen["query"]
            .as_array()
            .unwrap()
            .contains(&json!(["tag", ["a", "b"]])),
        "{seen}"
    );
    assert_eq!(seen["cookie"], json!(["s=1"]));

    // And the ALB event.
    let url = format!("{}/lambda-url/alb-http/items?tag=a", emu.endpoint());
    let (status, _, body) = http("POST", &url, &[], b"xyz".to_vec()).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let seen = json_body(&body);
    assert_eq!(seen["path"], "/items");
    assert_eq!(seen["bodyLength"], 3);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_function_serves_every_path_with_cors() {
    let mut plain = spec("plain", "plain");
    plain.http.cors = Some(CorsPolicy {
        allow_origins: vec!["http://localhost:5173".into()],
        allow_methods: vec!["*".into()],
        allow_headers: vec!["content-type".into()],
        max_age: Some(300),
        ..CorsPolicy::default()
    });
    let (emu, _client, logs) = start(vec![plain]).await;
    let origin = ("origin", "http://localhost:5173");

    let (status, headers, body) = http(
        "GET",
        &format!("{}/any/path?x=1", emu.endpoint()),
        &[origin],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert_eq!(json_body(&body)["event"]["rawPath"], "/any/path");

    // The preflight is answered by the front; the function never sees it.
    let before = logs.count("START RequestId");
    let (status, headers, _) = http(
        "OPTIONS",
        &format!("{}/any/path", emu.endpoint()),
        &[
            origin,
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type"),
        ],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["access-control-allow-methods"], "PUT");
    assert_eq!(headers["access-control-allow-headers"], "content-type");
    assert_eq!(headers["access-control-max-age"], "300");
    assert_eq!(logs.count("START RequestId"), before);

    // Another origin gets no CORS headers.
    let (_, headers, _) = http(
        "GET",
        &format!("{}/x", emu.endpoint()),
        &[("origin", "http://evil.example")],
        vec![],
    )
    .await;
    assert!(!headers.contains_key("access-control-allow-origin"));

    // The Invoke API's paths stay the Invoke API's.
    let (status, headers, _) = http(
        "GET",
        &format!("{}/2015-03-31/functions", emu.endpoint()),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(headers["x-amzn-errortype"], "UnknownOperationException");
    emu.shutdown().await;
}

#[test]
fn watch_rejects_an_unknown_event_format() {
    let out = crate::support::cargo_fn()
        .args(["watch", "--event-format", "graphql"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--event-format"), "{err}");
    assert!(err.contains("rest-api"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streaming_handler_answers_through_the_front_buffered() {
    let (emu, _client, _logs) = start(vec![spec("stream", "stream")]).await;
    let (status, headers, body) = http(
        "GET",
        &format!("{}/lambda-url/stream/a/b", emu.endpoint()),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 203, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["set-cookie"], "s=1");
    assert_eq!(body, b"streamed /a/b");
    emu.shutdown().await;
}

/// Every event of an `InvokeWithResponseStream` answer, read by the SDK
/// (which checks the event-stream framing and checksums).
async fn stream_events(
    client: &aws_sdk_lambda::Client,
    function: &str,
    payload: &str,
) -> (
    Vec<u8>,
    Option<aws_sdk_lambda::types::InvokeWithResponseStreamCompleteEvent>,
) {
    use aws_sdk_lambda::types::InvokeWithResponseStreamResponseEvent as Event;
    let mut out = client
        .invoke_with_response_stream()
        .function_name(function)
        .payload(aws_sdk_lambda::primitives::Blob::new(payload))
        .send()
        .await
        .expect("InvokeWithResponseStream succeeds at the API level");
    let mut bytes = Vec::new();
    let mut complete = None;
    while let Some(event) = out.event_stream.recv().await.expect("a valid event stream") {
        match event {
            Event::PayloadChunk(chunk) => {
                bytes.extend_from_slice(chunk.payload().map(|b| b.as_ref()).unwrap_or_default())
            }
            Event::InvokeComplete(c) => complete = Some(c),
            other => panic!("unexpected event {other:?}"),
        }
    }
    (bytes, complete)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invoke_with_response_stream_frames_events_for_the_sdk() {
    let (emu, client, _logs) = start(vec![spec("echo", "echo"), spec("fail", "fail")]).await;
    let (bytes, complete) = stream_events(&client, "echo", r#"{"a":1}"#).await;
    assert_eq!(json_body(&bytes), json!({"a": 1}));
    let complete = complete.expect("InvokeComplete");
    assert_eq!(complete.error_code(), None);

    let (bytes, complete) = stream_events(&client, "fail", "{}").await;
    assert!(bytes.is_empty());
    let complete = complete.expect("InvokeComplete");
    assert!(complete.error_code().is_some());
    assert!(
        complete
            .error_details()
            .unwrap_or("")
            .contains("fixture failure"),
        "{complete:?}"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_whose_event_exceeds_the_payload_limit_gets_413() {
    let (emu, _client, logs) = start(vec![spec("plain", "plain")]).await;
    let url = format!("{}/lambda-url/plain/upload", emu.endpoint());
    // Under 6 MB as a body, over it as an event (base64 grows it by a third).
    let body = vec![0xABu8; 5_000_000];
    let (status, _, answer) = http(
        "POST",
        &url,
        &[("content-type", "application/octet-stream")],
        body,
    )
    .await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(
        logs.count("START RequestId"),
        0,
        "never reaches the function"
    );
    // A body whose event fits still goes through.
    let (status, _, _) = http(
        "POST",
        &url,
        &[("content-type", "application/octet-stream")],
        vec![0xABu8; 4_000_000],
    )
    .await;
    assert_eq!(status, 200);
    emu.shutdown().await;
}

/// boto3, unmodified, calling DynamoDB (JSON protocol) and STS (query
/// protocol) at `endpoint`: `{service: [code, message, status]}`.
fn boto3_unserved_calls(endpoint: &str) -> Value {
    let script = r#"
import json, sys
import boto3, botocore.config, botocore.exceptions
out = {}
calls = {
    "dynamodb": lambda c: c.put_item(TableName="t", Item={"k": {"S": "v"}}),
    "sts": lambda c: c.get_caller_identity(),
}
for name, call in calls.items():
    c = boto3.client(name, endpoint_url=sys.argv[1], region_name="us-east-1",
                     aws_access_key_id="test", aws_secret_access_key="test",
                     config=botocore.config.Config(retries={"max_attempts": 1}))
    try:
        call(c)
        out[name] = "answered"
    except botocore.exceptions.ClientError as e:
        out[name] = [e.response["Error"]["Code"], e.response["Error"]["Message"],
                     e.response["ResponseMetadata"]["HTTPStatusCode"]]
print(json.dumps(out))
"#;
    let python = crate::support::tools_dir().join("venv/bin/python");
    let out = std::process::Command::new(&python)
        .args(["-c", script, endpoint])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask setup`)", python.display()));
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_body(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_for_unserved_aws_services_get_unknown_operation_not_the_default_function() {
    use cargo_fn::emulator::Emulator;
    use cargo_fn::local::LocalTriggers;
    let logs = crate::support::emulator::Logs::default();
    let local = LocalTriggers::new();
    let mut opts = crate::support::emulator::options(&logs);
    opts.routes = Some(local.router());
    opts.front = Some(local.front());
    let emu = Emulator::start(opts, vec![spec("web", "reflect")])
        .await
        .unwrap();
    local
        .start(
            &emu,
            &[("web".to_string(), vec![])],
            cargo_fn::ui::Ui::silent(),
        )
        .unwrap();
    emu.set_default(Some("web")).unwrap();
    let base = emu.endpoint();

    // An AWS JSON-protocol call for a service not served.
    let (status, headers, body) = http(
        "POST",
        &format!("{base}/"),
        &[
            ("x-amz-target", "DynamoDB_20120810.PutItem"),
            ("content-type", "application/x-amz-json-1.0"),
        ],
        br#"{"TableName": "t", "Item": {}}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/x-amz-json-1.0");
    let error = json_body(&body);
    assert_eq!(error["__type"], "UnknownOperationException", "{error}");
    let message = error["message"].as_str().unwrap();
    for named in ["DynamoDB_20120810.PutItem", "AmazonSQS", "Kinesis_20131202"] {
        assert!(message.contains(named), "{message}");
    }

    // An AWS query-protocol call (form with Action and Version).
    let (status, headers, body) = http(
        "POST",
        &format!("{base}/"),
        &[("content-type", "application/x-www-form-urlencoded")],
        b"Action=GetCallerIdentity&Version=2011-06-15".to_vec(),
    )
    .await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{text}");
    assert_eq!(headers["content-type"], "text/xml");
    assert!(
        text.contains("<Code>UnknownOperationException</Code>")
            && text.contains("GetCallerIdentity"),
        "{text}"
    );

    // Unmodified boto3 sees AWS's error for both protocols.
    let seen = boto3_unserved_calls(&base);
    for service in ["dynamodb", "sts"] {
        assert_eq!(seen[service][0], "UnknownOperationException", "{seen}");
        assert_eq!(seen[service][2], 400, "{seen}");
    }
    assert!(
        seen["sts"][1].as_str().unwrap().contains("AmazonSQS"),
        "{seen}"
    );
    assert_eq!(
        logs.count("START RequestId"),
        0,
        "no AWS call reached `web`"
    );

    // A plain HTML form post is the function's, with its body intact.
    let (status, _, body) = http(
        "POST",
        &format!("{base}/signup"),
        &[("content-type", "application/x-www-form-urlencoded")],
        b"name=ada&Action=join".to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let event = json_body(&body);
    assert_eq!(event["rawPath"], "/signup", "{event}");
    let sent = event["body"].as_str().unwrap();
    let sent = if event["isBase64Encoded"] == true {
        use base64::Engine;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(sent)
                .unwrap(),
        )
        .unwrap()
    } else {
        sent.to_string()
    };
    assert_eq!(sent, "name=ada&Action=join");
    local.stop();
    emu.shutdown().await;
}
