//! Local triggers without a local service: schedules (fired by the test's
//! clock and by `cargo fn invoke --trigger`), S3 notifications, and HTTP API
//! routes, each through a real `lambda_runtime` function; every event is
//! read back with the `aws_lambda_events` types.

use aws_lambda_events::event::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use cargo_fn::emulator::{HttpRoute, PayloadFormat};
use serde_json::Value;

use crate::emulator::{http, spec, start};

fn route(function: &str, key: &str, stage: &str, payload: PayloadFormat) -> HttpRoute {
    HttpRoute {
        function: function.into(),
        route_key: key.into(),
        stage: stage.into(),
        payload,
        cors: None,
        api: "api".into(),
    }
}

/// The event the `reflect` fixture got, from its answer.
fn reflected(status: u16, body: &[u8]) -> Value {
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(body));
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_api_routes_fill_route_key_path_parameters_and_stage() {
    let (emu, _client, _logs) =
        start(vec![spec("items", "reflect"), spec("orders", "reflect")]).await;
    emu.set_http_routes(vec![
        route("items", "GET /items/{id}", "$default", PayloadFormat::V2),
        route("items", "GET /items/new", "$default", PayloadFormat::V2),
        route("items", "ANY /files/{path+}", "$default", PayloadFormat::V2),
        route("orders", "POST /orders/{order}", "prod", PayloadFormat::V1),
    ])
    .unwrap();
    let base = emu.endpoint();

    // A parameter: payload 2.0 as API Gateway sends it.
    let (status, _, body) = http("GET", &format!("{base}/items/42?tag=a"), &[], vec![]).await;
    let raw = reflected(status, &body);
    let event: ApiGatewayV2httpRequest = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(event.route_key.as_deref(), Some("GET /items/{id}"));
    assert_eq!(event.raw_path.as_deref(), Some("/items/42"));
    assert_eq!(
        event.path_parameters.get("id").map(String::as_str),
        Some("42")
    );
    assert_eq!(
        event.request_context.route_key.as_deref(),
        Some("GET /items/{id}")
    );
    assert_eq!(event.request_context.stage.as_deref(), Some("$default"));
    assert_eq!(raw["queryStringParameters"]["tag"], "a");

    // A literal segment beats the parameter; no parameters, no field.
    let (status, _, body) = http("GET", &format!("{base}/items/new"), &[], vec![]).await;
    let raw = reflected(status, &body);
    assert_eq!(raw["routeKey"], "GET /items/new");
    assert!(raw.get("pathParameters").is_none(), "{raw}");

    // Greedy: the rest of the path, any method.
    let (status, _, body) = http(
        "DELETE",
        &format!("{base}/files/a/b%20c/d.txt"),
        &[],
        vec![],
    )
    .await;
    let event: ApiGatewayV2httpRequest = serde_json::from_value(reflected(status, &body)).unwrap();
    assert_eq!(event.route_key.as_deref(), Some("ANY /files/{path+}"));
    assert_eq!(
        event.path_parameters.get("path").map(String::as_str),
        Some("a/b c/d.txt")
    );

    // Payload 1.0 on a named stage: the stage prefixes the path.
    let (status, _, body) = http(
        "POST",
        &format!("{base}/prod/orders/o-7"),
        &[("content-type", "application/json")],
        br#"{"qty":2}"#.to_vec(),
    )
    .await;
    let raw = reflected(status, &body);
    let event: ApiGatewayProxyRequest = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(raw["version"], "1.0");
    assert_eq!(event.resource.as_deref(), Some("/orders/{order}"));
    assert_eq!(event.path.as_deref(), Some("/prod/orders/o-7"));
    assert_eq!(
        event.path_parameters.get("order").map(String::as_str),
        Some("o-7")
    );
    assert_eq!(event.request_context.stage.as_deref(), Some("prod"));
    assert_eq!(
        event.request_context.resource_path.as_deref(),
        Some("/orders/{order}")
    );
    assert_eq!(raw["requestContext"]["routeKey"], "POST /orders/{order}");
    assert_eq!(event.body.as_deref(), Some(r#"{"qty":2}"#));

    // Unmatched: API Gateway's 404, whatever the cause.
    for (method, path) in [
        ("POST", "/items/42"),
        ("GET", "/orders/o-7"),
        ("GET", "/prod/items/42"),
        ("GET", "/files"),
        ("GET", "/"),
    ] {
        let (status, headers, body) = http(method, &format!("{base}{path}"), &[], vec![]).await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body, br#"{"message":"Not Found"}"#, "{method} {path}");
    }

    // Function URLs stay where they were, with the function's own front.
    let (status, _, body) = http(
        "GET",
        &format!("{base}/lambda-url/items/anything"),
        &[],
        vec![],
    )
    .await;
    let raw = reflected(status, &body);
    assert_eq!(raw["routeKey"], "$default");
    assert_eq!(raw["rawPath"], "/anything");

    // --default-function serves what no route matches.
    emu.set_default(Some("orders")).unwrap();
    let (status, _, body) = http("GET", &format!("{base}/elsewhere"), &[], vec![]).await;
    assert_eq!(reflected(status, &body)["rawPath"], "/elsewhere");
    emu.shutdown().await;
}
