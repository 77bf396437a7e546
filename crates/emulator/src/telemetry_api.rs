//! The routes of the Telemetry API (`2022-07-01`) and the legacy Logs API
//! (`2020-08-15`) on an environment's listener: a subscription is checked
//! against the caller's extension identifier and handed to the
//! environment's telemetry (`telemetry.rs`); this module only speaks HTTP.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;

use super::env_state::EnvShared;
use super::extensions::Refusal;
use super::extensions_api::{identifier, refusal};
use super::telemetry::{Api, parse_subscription};

/// The route table of the Telemetry API and the legacy Logs API.
pub(crate) fn router(env: Arc<EnvShared>) -> Router {
    Router::new()
        .route("/2022-07-01/telemetry", put(telemetry_subscribe))
        .route("/2020-08-15/logs", put(logs_subscribe))
        .with_state(env)
}

async fn telemetry_subscribe(
    State(env): State<Arc<EnvShared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    subscribe(&env, &headers, &body, Api::Telemetry)
}

async fn logs_subscribe(
    State(env): State<Arc<EnvShared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    subscribe(&env, &headers, &body, Api::Logs)
}

fn subscribe(env: &EnvShared, headers: &HeaderMap, body: &[u8], api: Api) -> Response {
    let id = match identifier(headers) {
        Ok(id) => id,
        Err(r) => return refusal(r),
    };
    let name = match env.extensions.name_of(&id) {
        Ok(name) => name,
        Err(r) => return refusal(r),
    };
    let sub = match parse_subscription(body, api) {
        Ok(sub) => sub,
        Err(message) => {
            return refusal(Refusal {
                status: 400,
                error_type: "ValidationError",
                message,
            });
        }
    };
    env.telemetry.subscribe(id, &name, api, sub);
    (StatusCode::OK, "OK").into_response()
}
