//! The Invoke API's errors as AWS answers them (restJson1): a status, the
//! `x-amzn-ErrorType` header and a JSON body `{"Type": "User", <member>:
//! message}`, so unmodified SDK clients raise the error they would against
//! Lambda. Handlers return `Result<_, ApiError>` and use `?`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One refusal of the Invoke API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    status: StatusCode,
    /// The exception's name (`x-amzn-ErrorType`).
    name: &'static str,
    /// The body member holding the message (`message` or `Message`, as
    /// Lambda's model spells it for that exception).
    member: &'static str,
    message: String,
    /// A throttle's `Reason`; it comes with `Retry-After: 1`.
    reason: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, name: &'static str, member: &'static str, message: String) -> Self {
        ApiError {
            status,
            name,
            member,
            message,
            reason: None,
        }
    }

    /// 400 `InvalidParameterValueException`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            "message",
            message.into(),
        )
    }

    /// 400 `ValidationException`: a value outside the model's constraints.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "message",
            message.into(),
        )
    }

    /// 400 `InvalidRequestContentException`: a body or header that does not parse.
    pub fn invalid_content(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            "message",
            message.into(),
        )
    }

    /// 404 `ResourceNotFoundException` for a function ARN.
    pub fn function_not_found(arn: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "Message",
            format!("Function not found: {arn}"),
        )
    }

    /// 404 `UnknownOperationException`.
    pub fn unknown_operation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "message",
            message.into(),
        )
    }

    /// 413 `RequestEntityTooLargeException`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            "message",
            message.into(),
        )
    }

    /// 429 `TooManyRequestsException` with the limit that was reached.
    pub fn throttled(reason: &'static str) -> Self {
        ApiError {
            reason: Some(reason),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "message",
                "Rate Exceeded.".into(),
            )
        }
    }

    /// 500 `ServiceException`: the emulator itself failed.
    pub fn service(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "Message",
            message.into(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("Type".into(), "User".into());
        body.insert(self.member.into(), self.message.into());
        if let Some(reason) = self.reason {
            body.insert("Reason".into(), reason.into());
        }
        let mut resp = (
            self.status,
            [("content-type", "application/json")],
            serde_json::Value::Object(body).to_string(),
        )
            .into_response();
        let headers = resp.headers_mut();
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.name));
        if self.reason.is_some() {
            headers.insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parts(e: ApiError) -> (StatusCode, Vec<(String, String)>, serde_json::Value) {
        let resp = e.into_response();
        let status = resp.status();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn errors_render_as_rest_json_with_the_error_type_header() {
        let (status, headers, body) = parts(ApiError::function_not_found("arn:x")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(headers.contains(&(
            "x-amzn-errortype".into(),
            "ResourceNotFoundException".into()
        )));
        assert!(headers.contains(&("content-type".into(), "application/json".into())));
        assert_eq!(
            body,
            serde_json::json!({"Type": "User", "Message": "Function not found: arn:x"})
        );
        let (status, _, body) = parts(ApiError::invalid_parameter("bad")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, serde_json::json!({"Type": "User", "message": "bad"}));
    }

    #[tokio::test]
    async fn throttles_carry_their_reason_and_retry_after() {
        let (status, headers, body) =
            parts(ApiError::throttled("ConcurrentInvocationLimitExceeded")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(headers.contains(&("retry-after".into(), "1".into())));
        assert!(headers.contains(&("x-amzn-errortype".into(), "TooManyRequestsException".into())));
        assert_eq!(
            body,
            serde_json::json!({"Type": "User", "message": "Rate Exceeded.", "Reason": "ConcurrentInvocationLimitExceeded"})
        );
    }
}
