//! AWS behind a narrow seam: the few Lambda and IAM operations `deploy`,
//! `promote` and `rollback` use, as plain Rust types ([`LambdaApi`],
//! [`IamApi`]), with one SDK adapter ([`sdk`]) and, in tests only, one
//! in-memory fake (`fake`) for fast tests of the plan logic.
//!
//! This module knows nothing about cargo, the project or the configuration
//! model: it speaks Lambda's vocabulary (names, versions, aliases, settings)
//! and reports every failure as an [`ApiError`] that carries the operation
//! (as its IAM action, e.g. `lambda:UpdateAlias`) and the service's error
//! code. It never logs or formats credentials, and error text never contains
//! request bodies (which hold environment values).

use std::collections::BTreeMap;
use std::fmt;

pub mod capacity;
pub mod cloudwatch;
pub mod durable;
pub mod ecr;
#[cfg(test)]
pub mod fake;
#[cfg(test)]
mod fake_capacity;
#[cfg(test)]
mod fake_triggers;
pub mod invoke;
pub mod logs;
pub mod permissions;
pub mod progress;
pub mod sdk;
mod sdk_capacity;
mod sdk_ecr;
mod sdk_triggers;
pub mod traffic;
pub mod triggers;

pub use capacity::{CapacityApi, CapacityConfig};
pub use cloudwatch::CloudWatchApi;
pub use ecr::EcrApi;
pub use traffic::TrafficApi;
pub use triggers::TriggerApi;

/// Tag put on every function, role and repository cargo-fn creates.
pub const MANAGED_BY_KEY: &str = "managed-by";
pub const MANAGED_BY_VALUE: &str = "cargo-fn";

/// The function handler for `provided.*` runtimes: the binary is `bootstrap`.
pub const HANDLER: &str = "bootstrap";

/// The configuration fields of a function that deploy manages and diffs.
/// Lists (layers, subnets, security groups) keep Lambda's order for layers
/// (order matters) and are sorted for the VPC (order does not).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings {
    /// Empty for an image function (PackageType Image has no runtime).
    pub runtime: String,
    pub architecture: String,
    pub memory: u32,
    pub timeout: u32,
    pub ephemeral_storage: u32,
    pub env: BTreeMap<String, String>,
    pub layers: Vec<String>,
    pub role: String,
    /// `Active` or `PassThrough`.
    pub tracing: String,
    pub vpc: Option<VpcSettings>,
    /// `Text` or `JSON`.
    pub log_format: String,
    pub log_level: Option<String>,
    /// A custom CloudWatch log group; `None` is Lambda's default
    /// `/aws/lambda/<function>`.
    pub log_group: Option<String>,
    /// Lambda Managed Instances: the capacity provider the function's
    /// versions run on (`None`: Lambda's own fleet).
    pub capacity: Option<CapacityConfig>,
    /// `DurableConfig`: `None` for an ordinary function.
    pub durable: Option<DurableSettings>,
}

/// A durable function's `DurableConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableSettings {
    /// `ExecutionTimeout`, seconds.
    pub execution_timeout: u32,
    /// `RetentionPeriodInDays`.
    pub retention_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VpcSettings {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
}

impl VpcSettings {
    /// `None` for an empty VPC config (what Lambda reports for "no VPC").
    pub fn normalized(mut self) -> Option<VpcSettings> {
        self.subnets.sort();
        self.security_groups.sort();
        if self.subnets.is_empty() && self.security_groups.is_empty() {
            None
        } else {
            Some(self)
        }
    }
}

/// `$LATEST` or a published version of a function, as Lambda reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FunctionState {
    pub name: String,
    /// Unqualified function ARN.
    pub arn: String,
    /// `$LATEST` or a version number.
    pub version: String,
    /// Base64 SHA-256 of the deployment package.
    pub code_sha256: String,
    pub revision_id: Option<String>,
    pub description: String,
    /// `Pending`, `Active`, `Failed`, ...
    pub state: Option<String>,
    /// `InProgress`, `Successful`, `Failed`.
    pub last_update_status: Option<String>,
    pub last_update_reason: Option<String>,
    pub settings: Settings,
    /// Only filled by `get_function` on `$LATEST`.
    pub tags: BTreeMap<String, String>,
    /// Only filled by `get_function` on `$LATEST`.
    pub reserved_concurrency: Option<u32>,
    /// `Zip` or `Image` (empty when not reported: Zip).
    pub package_type: String,
    /// `Code.ImageUri` (or `ResolvedImageUri`) of an image function; only
    /// filled by `get_function`.
    pub image_uri: Option<String>,
}

impl FunctionState {
    pub fn is_image(&self) -> bool {
        self.package_type == "Image"
    }
}

/// A version's code as `GetFunction` (with a qualifier) reports it: what
/// `deploy --from` copies.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CodeSource {
    /// The version (the alias resolved), with its CodeSha256.
    pub version: FunctionState,
    /// `Code.Location`: a pre-signed URL of the zip, valid ten minutes
    /// (zip functions; `None` when the service gave none).
    pub location: Option<String>,
    /// The image, pinned by digest (image functions).
    pub image_uri: Option<String>,
}

/// Where the code of a create or update comes from.
#[derive(Debug, Clone)]
pub enum Code {
    /// The zip bytes, sent in the request (up to the direct-upload limit).
    Zip(Vec<u8>),
    /// A zip already uploaded to S3.
    S3 { bucket: String, key: String },
    /// A container image in ECR, pinned by digest (`<repo uri>@sha256:...`):
    /// PackageType Image, no runtime, handler or layers.
    Image { uri: String },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct AliasState {
    pub name: String,
    pub arn: String,
    /// The primary version.
    pub version: String,
    /// `RoutingConfig.AdditionalVersionWeights`: version -> weight (0..=1).
    pub weights: BTreeMap<String, f64>,
    pub revision_id: Option<String>,
    pub description: String,
}

impl AliasState {
    /// The canary version and its weight, if the alias splits traffic.
    pub fn canary(&self) -> Option<(&str, f64)> {
        self.weights
            .iter()
            .find(|(_, w)| **w > 0.0)
            .map(|(v, w)| (v.as_str(), *w))
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct VersionInfo {
    pub version: String,
    pub description: String,
    pub code_sha256: String,
}

/// A function URL configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UrlSettings {
    /// `NONE` or `AWS_IAM`.
    pub auth: String,
    /// `BUFFERED` or `RESPONSE_STREAM`.
    pub invoke_mode: String,
    pub cors: Option<UrlCors>,
}

/// The CORS settings of a function URL (and of an HTTP API: `HttpCors`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct UrlCors {
    pub allow_origins: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Option<u32>,
}

impl From<&crate::config::Cors> for UrlCors {
    /// The configured CORS settings as both services' APIs take them.
    fn from(c: &crate::config::Cors) -> Self {
        UrlCors {
            allow_origins: c.allow_origins.clone(),
            allow_methods: c.allow_methods.clone(),
            allow_headers: c.allow_headers.clone(),
            expose_headers: c.expose_headers.clone(),
            allow_credentials: c.allow_credentials,
            max_age: c.max_age,
        }
    }
}

/// One statement of a function's (alias's) resource-based policy, as
/// `AddPermission` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permission {
    pub sid: String,
    pub action: String,
    pub principal: String,
    /// Adds the condition `lambda:FunctionUrlAuthType` = this.
    pub function_url_auth_type: Option<String>,
    /// Adds the condition `lambda:InvokedViaFunctionUrl` = true.
    pub invoked_via_function_url: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UrlState {
    pub url: String,
    pub settings: UrlSettings,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayerVersion {
    pub arn: String,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoleState {
    pub arn: String,
    pub tags: BTreeMap<String, String>,
}

/// A failed AWS call: which operation, the service's error code, its message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The IAM action of the operation, e.g. `lambda:PublishVersion`.
    pub operation: String,
    /// The service error code (`ResourceConflictException`, ...) or, for a
    /// failure before any answer, `ConnectionError` / `Timeout`.
    pub code: String,
    pub message: String,
    pub status: Option<u16>,
}

impl ApiError {
    pub fn new(operation: &str, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            operation: operation.to_string(),
            code: code.to_string(),
            message: message.into(),
            status: None,
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }

    pub fn is_not_found(&self) -> bool {
        self.code == "ResourceNotFoundException" || self.code == "NoSuchEntity"
    }

    /// Refused by IAM: an AccessDenied code, or a bare 403 some services
    /// (and doubles) send without a parseable code.
    pub fn is_access_denied(&self) -> bool {
        let code = self.code.as_str();
        code.contains("AccessDenied")
            || code == "UnauthorizedOperation"
            || code == "AuthorizationError"
            || (self.status == Some(403) && code.starts_with("HTTP"))
    }

    /// What the user should do next.
    pub fn hint(&self) -> String {
        let code = self.code.as_str();
        if self.is_access_denied() {
            return format!(
                "the credentials in use are not allowed to call {op}: grant the IAM action `{op}` \
                 to the user or role running cargo-fn (`cargo fn deploy --print-policy` prints \
                 every action a deploy needs)",
                op = self.operation
            );
        }
        match code {
            "PreconditionFailedException" => "the function or alias was changed by someone else \
                 while this deploy ran (its RevisionId or CodeSha256 no longer matches); nothing was \
                 published from the other change. Re-run the command to deploy on top of it"
                .into(),
            "ResourceConflictException" => "another update to this function is still in progress \
                 or the resource already exists; wait a moment and re-run the command (it picks up \
                 where it stopped)"
                .into(),
            "TooManyRequestsException" | "ThrottlingException" => "Lambda throttled the \
                 requests even after retries; wait a minute and re-run, or raise the control-plane \
                 quota"
                .into(),
            "ConnectionError" | "Timeout" => "the AWS endpoint could not be reached: check the \
                 network, --region and --endpoint-url / AWS_ENDPOINT_URL, then re-run"
                .into(),
            "ExpiredTokenException"
            | "ExpiredToken"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "InvalidSignatureException"
            | "SignatureDoesNotMatch" => {
                "the AWS credentials are missing, invalid or expired: refresh them (aws sso login, \
                 new keys) or pick another --profile"
                    .into()
            }
            "CodeStorageExceededException" => "the account's code storage is full: delete old \
                 versions of your functions"
                .into(),
            "RequestEntityTooLargeException" => "the zip is too large for a direct upload: pass \
                 --s3-bucket to upload it through S3"
                .into(),
            "ResourceNotFoundException" | "NoSuchEntity" => "the resource does not exist in this \
                 account and region: check the name, --region and --profile"
                .into(),
            _ if self.status.is_some_and(|s| s >= 500) => {
                "AWS answered with a server error even after retries: re-run the command; it \
                 converges from where it stopped"
                    .into()
            }
            _ => "fix the cause named above and re-run the command".into(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed with {}", self.operation, self.code)?;
        if let Some(s) = self.status {
            write!(f, " (HTTP {s})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl From<ApiError> for crate::error::Hinted {
    fn from(e: ApiError) -> Self {
        crate::error::Hinted {
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The inputs of `CreateFunction`.
#[derive(Debug, Clone)]
pub struct CreateFunction {
    pub name: String,
    pub settings: Settings,
    pub code: Code,
    pub description: String,
    pub tags: BTreeMap<String, String>,
}

/// What one `Invoke` (RequestResponse, `LogType=Tail`) returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Invoked {
    pub status: i32,
    /// `Unhandled` (or `Handled`) when the function failed.
    pub function_error: Option<String>,
    pub payload: Vec<u8>,
    /// The decoded log tail (last 4 KB: the function's lines, END, REPORT).
    pub log: String,
}

/// The Lambda operations deploy, promote and rollback use. Reads return
/// `Ok(None)` for a resource that does not exist.
#[allow(async_fn_in_trait)] // used from one task; no Send bound needed
pub trait LambdaApi {
    /// The region the client talks to (ARNs of secrets are built with it).
    fn region(&self) -> String;
    async fn get_function(&self, name: &str) -> ApiResult<Option<FunctionState>>;
    /// `GetFunctionConfiguration` of a version or alias.
    async fn get_version(&self, name: &str, qualifier: &str) -> ApiResult<Option<FunctionState>>;
    /// `GetFunction` of a version or alias: its configuration and where
    /// its code can be had.
    async fn get_code(&self, name: &str, qualifier: &str) -> ApiResult<Option<CodeSource>>;
    /// The bytes at a [`CodeSource::location`] (a plain HTTPS GET of a
    /// pre-signed URL: no credentials are sent).
    async fn download_code(&self, location: &str) -> ApiResult<Vec<u8>>;
    async fn create_function(&self, input: &CreateFunction) -> ApiResult<FunctionState>;
    async fn update_code(
        &self,
        name: &str,
        code: &Code,
        architecture: &str,
        revision_id: Option<&str>,
    ) -> ApiResult<FunctionState>;
    async fn update_configuration(
        &self,
        name: &str,
        settings: &Settings,
        revision_id: Option<&str>,
    ) -> ApiResult<FunctionState>;
    /// Waits (SDK waiter) until `$LATEST` is Active after a create.
    async fn wait_active(&self, name: &str) -> ApiResult<FunctionState>;
    /// Waits (SDK waiter) until `LastUpdateStatus` is Successful.
    async fn wait_updated(&self, name: &str) -> ApiResult<FunctionState>;
    async fn publish_version(
        &self,
        name: &str,
        code_sha256: &str,
        revision_id: Option<&str>,
        description: &str,
    ) -> ApiResult<FunctionState>;
    /// Waits (SDK waiter) until a published version is Active.
    async fn wait_version_active(&self, name: &str, version: &str) -> ApiResult<FunctionState>;
    async fn list_versions(&self, name: &str) -> ApiResult<Vec<VersionInfo>>;
    async fn get_alias(&self, name: &str, alias: &str) -> ApiResult<Option<AliasState>>;
    async fn create_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        weights: &BTreeMap<String, f64>,
    ) -> ApiResult<AliasState>;
    async fn update_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        weights: &BTreeMap<String, f64>,
        revision_id: Option<&str>,
    ) -> ApiResult<AliasState>;
    async fn delete_alias(&self, name: &str, alias: &str) -> ApiResult<()>;
    /// `DeleteFunction` of one published version (never `$LATEST`).
    async fn delete_version(&self, name: &str, version: &str) -> ApiResult<()>;
    /// A synchronous invocation of `qualifier` with the log tail.
    async fn invoke(&self, name: &str, qualifier: &str, payload: &[u8]) -> ApiResult<Invoked>;
    async fn put_reserved_concurrency(&self, name: &str, n: u32) -> ApiResult<()>;
    async fn delete_reserved_concurrency(&self, name: &str) -> ApiResult<()>;
    async fn get_provisioned_concurrency(&self, name: &str, alias: &str) -> ApiResult<Option<u32>>;
    async fn put_provisioned_concurrency(&self, name: &str, alias: &str, n: u32) -> ApiResult<()>;
    async fn get_url(&self, name: &str, alias: &str) -> ApiResult<Option<UrlState>>;
    async fn create_url(&self, name: &str, alias: &str, url: &UrlSettings) -> ApiResult<UrlState>;
    async fn update_url(&self, name: &str, alias: &str, url: &UrlSettings) -> ApiResult<UrlState>;
    /// Deletes the URL configuration; an absent one is not an error.
    async fn delete_url(&self, name: &str, alias: &str) -> ApiResult<()>;
    /// The resource-based policy (JSON) of the alias, if it has one.
    async fn get_policy(&self, name: &str, alias: &str) -> ApiResult<Option<String>>;
    /// Adds a statement; one with the same id already there is not an error.
    async fn add_permission(
        &self,
        name: &str,
        alias: &str,
        permission: &Permission,
    ) -> ApiResult<()>;
    /// Removes a statement by id; an absent one is not an error.
    async fn remove_permission(&self, name: &str, alias: &str, sid: &str) -> ApiResult<()>;
    async fn tag(&self, arn: &str, tags: &BTreeMap<String, String>) -> ApiResult<()>;
    async fn untag(&self, arn: &str, keys: &[String]) -> ApiResult<()>;
    async fn publish_layer(
        &self,
        layer: &str,
        zip: Vec<u8>,
        architectures: &[String],
        runtimes: &[String],
        description: &str,
    ) -> ApiResult<LayerVersion>;
}

/// An object cargo-fn uploaded to S3 (a zip over the direct-upload limit).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredObject {
    pub key: String,
    /// Seconds since the epoch.
    pub last_modified: i64,
}

/// The S3 operations for zips too large to send in the request.
#[allow(async_fn_in_trait)]
pub trait ObjectStore {
    async fn put_object(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> ApiResult<()>;
    async fn list_objects(&self, bucket: &str, prefix: &str) -> ApiResult<Vec<StoredObject>>;
    async fn delete_objects(&self, bucket: &str, keys: &[String]) -> ApiResult<()>;
}

/// The IAM operations for the execution role cargo-fn creates.
#[allow(async_fn_in_trait)]
pub trait IamApi {
    async fn get_role(&self, name: &str) -> ApiResult<Option<RoleState>>;
    /// `description` says what the role is for (shown in the IAM console).
    async fn create_role(
        &self,
        name: &str,
        trust_policy: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> ApiResult<RoleState>;
    /// Creates or replaces an inline policy.
    async fn put_role_policy(&self, role: &str, policy_name: &str, document: &str)
    -> ApiResult<()>;
    /// The documents (JSON) of every policy of a role: its inline ones and
    /// the default versions of its attached managed ones.
    async fn role_policies(&self, role: &str) -> ApiResult<Vec<String>>;
}

/// Gives an error whose chain holds an [`ApiError`] that error's hint (what
/// to do next), keeping the context lines above it.
pub fn with_api_hint(err: anyhow::Error) -> anyhow::Error {
    match err.chain().find_map(|e| e.downcast_ref::<ApiError>()) {
        Some(api) => crate::error::hinted(format!("{err:#}"), api.hint()),
        None => err,
    }
}
