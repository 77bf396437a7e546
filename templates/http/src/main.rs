//! An HTTP function behind a Lambda function URL or an API Gateway HTTP API.
//!
//! `GET /hello?name=you` and `POST /hello` with `{"name": "you"}` answer with a
//! JSON greeting (`world` when no name is given). Configuration is read once in `main` (the cold start); the
//! handler only does per-request work.

use lambda_http::ext::request::JsonPayloadError;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, RequestPayloadExt, Response, service_fn};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
struct Greet {
    #[serde(default = "world")]
    name: String,
}

fn world() -> String {
    "world".to_string()
}

#[derive(Debug, Serialize)]
struct Greeting {
    message: String,
}

/// Settings read once from the environment (see `[package.metadata.fn] env`).
#[derive(Debug)]
struct Config {
    greeting: String,
}

impl Config {
    fn from_env() -> Self {
        Config {
            greeting: std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_string()),
        }
    }
}

async fn handler(config: &Config, request: Request) -> Result<Response<Body>, Error> {
    tracing::info!(method = %request.method(), path = %request.raw_http_path(), "request");
    let name = match *request.method() {
        Method::GET => request
            .query_string_parameters_ref()
            .and_then(|params| params.first("name"))
            .map_or_else(world, str::to_string),
        Method::POST => match request.json::<Greet>() {
            Ok(Some(greet)) => greet.name,
            Ok(None) => return json(StatusCode::BAD_REQUEST, &error("the body is empty")),
            Err(JsonPayloadError::Parsing(err)) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    &error(&format!("invalid JSON body: {err}")),
                );
            }
            Err(_) => return json(StatusCode::BAD_REQUEST, &error("invalid JSON body")),
        },
        _ => return json(StatusCode::METHOD_NOT_ALLOWED, &error("use GET or POST")),
    };
    let greeting = Greeting {
        message: format!("{}, {name}!", config.greeting),
    };
    json(StatusCode::OK, &greeting)
}

fn error(message: &str) -> serde_json::Value {
    serde_json::json!({ "error": message })
}

fn json(status: StatusCode, body: &impl Serialize) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(serde_json::to_string(body)?.into())?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs when AWS_LAMBDA_LOG_FORMAT=JSON; level from AWS_LAMBDA_LOG_LEVEL or RUST_LOG.
    lambda_http::tracing::init_default_subscriber();
    let config = Config::from_env();
    let config = &config;
    lambda_http::run(service_fn(move |request| handler(config, request))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config() -> Config {
        Config {
            greeting: "Hello".to_string(),
        }
    }

    fn body_json(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).unwrap()
    }

    #[tokio::test]
    async fn greets_from_a_function_url_event() {
        let request =
            lambda_http::request::from_str(include_str!("../events/function-url.json")).unwrap();
        let response = handler(&config(), request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_json(&response)["message"], "Hello, world!");
    }

    #[tokio::test]
    async fn greets_from_the_query_string() {
        let request = Request::default().with_query_string_parameters(HashMap::from([(
            "name".to_string(),
            "Ferris".to_string(),
        )]));
        let response = handler(&config(), request).await.unwrap();
        assert_eq!(body_json(&response)["message"], "Hello, Ferris!");
    }

    #[tokio::test]
    async fn rejects_a_bad_json_body() {
        let request = lambda_http::http::Request::builder()
            .method("POST")
            .header("content-type", "application/json")
            .body(Body::from("{not json"))
            .unwrap();
        let response = handler(&config(), request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}
