//! The HTTP API (an API Gateway HTTP API, payload 2.0):
//!
//! - `POST /orders` with an order accepts it (202) or says why not (400);
//! - `GET /orders/{id}` answers the order's status.
//!
//! Configuration is read once in `main` (the cold start).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response, service_fn};
use orders::Order;
use serde_json::{Value, json};

/// Settings read once from the environment.
struct Config {
    max_quantity: u32,
}

async fn handler(config: &Config, request: Request) -> Result<Response<Body>, Error> {
    let id = request
        .path_parameters_ref()
        .and_then(|params| params.first("id"))
        .map(str::to_string);
    match (request.method(), id) {
        (&Method::POST, None) => accept(config, request.body()),
        (&Method::GET, Some(id)) => {
            tracing::info!(order_id = %id, "order looked up");
            json(
                StatusCode::OK,
                json!({ "order_id": id, "status": "accepted" }),
            )
        }
        _ => json(
            StatusCode::NOT_FOUND,
            json!({ "error": "no such route: use POST /orders or GET /orders/{id}" }),
        ),
    }
}

/// `POST /orders`: checks the order; a real application would now send it
/// to the `orders` queue.
fn accept(config: &Config, body: &Body) -> Result<Response<Body>, Error> {
    let order: Order = match serde_json::from_slice(body.as_ref()) {
        Ok(order) => order,
        Err(err) => {
            return json(
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("invalid order: {err}") }),
            );
        }
    };
    if let Err(err) = order.validate(config.max_quantity) {
        tracing::warn!(order_id = %order.order_id, error = %err, "order refused");
        return json(StatusCode::BAD_REQUEST, json!({ "error": err }));
    }
    tracing::info!(order_id = %order.order_id, product = %order.product, quantity = order.quantity, "order accepted");
    json(
        StatusCode::ACCEPTED,
        json!({ "order_id": order.order_id, "status": "accepted" }),
    )
}

fn json(status: StatusCode, body: Value) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string().into())?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs when AWS_LAMBDA_LOG_FORMAT=JSON; level from AWS_LAMBDA_LOG_LEVEL.
    lambda_http::tracing::init_default_subscriber();
    let config = Config {
        max_quantity: orders::max_quantity()?,
    };
    // The secret's name, never its value: the function would fetch the value
    // from Secrets Manager here, with the permission deploy grants.
    match std::env::var("PAYMENT_API_KEY") {
        Ok(name) => tracing::info!(secret = %name, "payment API key: reading secret by name"),
        Err(_) => tracing::warn!("PAYMENT_API_KEY is not set: payments are disabled"),
    }
    let config = &config;
    lambda_http::run(service_fn(move |request| handler(config, request))).await
}
