//! The Lambda calls a gradual rollout makes beyond [`super::LambdaApi`]:
//! reading an alias, moving it with its description (where a rollout is
//! recorded), and invoking a traffic hook. Separate from `LambdaApi` so the
//! rollout engine is tested against a small fake of exactly these calls.

use std::collections::BTreeMap;

use aws_sdk_lambda::primitives::Blob;

use super::sdk::{SdkAws, alias_state, api_err, not_found, routing};
use super::{AliasState, ApiResult};

/// What an invocation of a hook answered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HookAnswer {
    pub status: i32,
    /// `X-Amz-Function-Error` (`Handled`/`Unhandled`): the function failed.
    pub function_error: Option<String>,
    pub payload: Vec<u8>,
}

#[allow(async_fn_in_trait)] // used from one task
pub trait TrafficApi {
    async fn read_alias(&self, function: &str, alias: &str) -> ApiResult<Option<AliasState>>;
    /// UpdateAlias with routing weights and description, guarded by
    /// `revision_id` (Lambda answers 412 when the alias changed since).
    async fn write_alias(
        &self,
        function: &str,
        alias: &str,
        version: &str,
        weights: &BTreeMap<String, f64>,
        description: &str,
        revision_id: Option<&str>,
    ) -> ApiResult<AliasState>;
    /// A synchronous (RequestResponse) Invoke of `function` (a name, an ARN
    /// or `name:qualifier`).
    async fn invoke_hook(&self, function: &str, payload: &[u8]) -> ApiResult<HookAnswer>;
}

impl TrafficApi for SdkAws {
    async fn read_alias(&self, function: &str, alias: &str) -> ApiResult<Option<AliasState>> {
        match self
            .lambda
            .get_alias()
            .function_name(function)
            .name(alias)
            .send()
            .await
        {
            Ok(a) => Ok(Some(alias_state!(&a))),
            Err(e) => not_found(api_err("lambda:GetAlias", e)),
        }
    }

    async fn write_alias(
        &self,
        function: &str,
        alias: &str,
        version: &str,
        weights: &BTreeMap<String, f64>,
        description: &str,
        revision_id: Option<&str>,
    ) -> ApiResult<AliasState> {
        let a = self
            .lambda
            .update_alias()
            .function_name(function)
            .name(alias)
            .function_version(version)
            .routing_config(routing(weights))
            .description(description)
            .set_revision_id(revision_id.map(str::to_string))
            .send()
            .await
            .map_err(|e| api_err("lambda:UpdateAlias", e))?;
        Ok(alias_state!(&a))
    }

    async fn invoke_hook(&self, function: &str, payload: &[u8]) -> ApiResult<HookAnswer> {
        let out = self
            .lambda
            .invoke()
            .function_name(function)
            .payload(Blob::new(payload.to_vec()))
            .send()
            .await
            .map_err(|e| api_err("lambda:InvokeFunction", e))?;
        Ok(HookAnswer {
            status: out.status_code(),
            function_error: out.function_error().map(str::to_string),
            payload: out
                .payload()
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default(),
        })
    }
}
