//! The AWS operations triggers need, behind one narrow trait
//! ([`TriggerApi`]) in plain Rust types: Lambda event source mappings and
//! resource-based permissions, EventBridge Scheduler schedules, S3 bucket
//! notifications, API Gateway v2 HTTP APIs, and the inline IAM policies of
//! the roles cargo-fn owns. Adapted to the SDK in `sdk_triggers.rs`.
//!
//! Like the rest of `aws`, this knows nothing of cargo or the configuration
//! model; reads return `Ok(None)` (or an empty list) for what does not exist.

use std::collections::BTreeMap;

use super::ApiResult;

/// The CORS configuration of an HTTP API: the same six fields as a
/// function URL's, so the same type.
pub use super::UrlCors as HttpCors;

/// The settings of an event source mapping that deploy manages. Fields that
/// do not apply to a source stay `None` (never sent, never compared).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MappingSpec {
    pub event_source_arn: String,
    pub batch_size: Option<i32>,
    pub maximum_batching_window: Option<i32>,
    pub parallelization_factor: Option<i32>,
    /// `TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP` (streams; fixed at creation).
    pub starting_position: Option<String>,
    /// Seconds since the epoch, with `AT_TIMESTAMP`.
    pub starting_position_timestamp: Option<i64>,
    pub bisect_batch_on_function_error: Option<bool>,
    pub maximum_retry_attempts: Option<i32>,
    pub maximum_record_age: Option<i32>,
    pub tumbling_window: Option<i32>,
    /// On-failure destination ARN (streams); `Some("")` removes one.
    pub on_failure: Option<String>,
    /// SQS `ScalingConfig.MaximumConcurrency`; `Some(0)` removes it.
    pub maximum_concurrency: Option<i32>,
    pub report_batch_item_failures: bool,
    /// Filter patterns (JSON text, normalised).
    pub filters: Vec<String>,
    pub enabled: bool,
}

/// An event source mapping as Lambda reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MappingState {
    pub uuid: String,
    /// `EventSourceMappingArn` (the tagging resource).
    pub arn: String,
    pub function_arn: String,
    /// `Creating`, `Enabling`, `Enabled`, `Disabling`, `Disabled`,
    /// `Updating`, `Deleting`.
    pub state: String,
    pub spec: MappingSpec,
    /// Filled by [`TriggerApi::list_mappings`] (ListTags per mapping).
    pub tags: BTreeMap<String, String>,
}

impl MappingState {
    /// A state from which Lambda accepts no update yet.
    pub fn is_transitional(&self) -> bool {
        matches!(
            self.state.as_str(),
            "Creating" | "Enabling" | "Disabling" | "Updating" | "Deleting"
        )
    }
}

/// One statement of a function's resource-based policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Permission {
    pub sid: String,
    /// Service principal, e.g. `s3.amazonaws.com`.
    pub principal: String,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
}

/// An EventBridge Scheduler schedule (default group) targeting a function.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScheduleSpec {
    pub name: String,
    pub description: String,
    pub expression: String,
    pub timezone: Option<String>,
    /// Minutes of the flexible window; `None` is `OFF`.
    pub flexible_window: Option<i32>,
    /// The function (alias) ARN invoked.
    pub target_arn: String,
    /// The role Scheduler assumes to invoke it.
    pub role_arn: String,
    pub input: Option<String>,
    pub maximum_event_age: Option<i32>,
    pub maximum_retry_attempts: Option<i32>,
    pub enabled: bool,
}

/// Which kind of destination a bucket notification has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    Lambda,
    Queue,
    Topic,
}

/// One entry of a bucket's notification configuration (any kind: foreign
/// entries are read so they can be written back unchanged).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: Option<String>,
    pub kind: NotificationKind,
    /// Function, queue or topic ARN.
    pub arn: String,
    pub events: Vec<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

/// A bucket's whole notification configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BucketNotifications {
    pub entries: Vec<Notification>,
    /// `EventBridgeConfiguration` present.
    pub eventbridge: bool,
}

/// Where the credentials in use create things.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    pub partition: String,
    pub account: String,
    /// The client's region.
    pub region: String,
}

/// An API Gateway v2 HTTP API.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpApi {
    pub id: String,
    pub name: String,
    /// `https://<id>.execute-api.<region>.amazonaws.com`.
    pub endpoint: String,
    pub tags: BTreeMap<String, String>,
    pub cors: Option<HttpCors>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Integration {
    pub id: String,
    /// The function (alias) ARN.
    pub uri: String,
    /// `2.0` or `1.0`.
    pub payload_format: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    pub id: String,
    /// `GET /items/{id}` or `$default`.
    pub key: String,
    /// `integrations/<id>`.
    pub target: Option<String>,
}

/// The trigger operations. Every write is idempotent or guarded by a read
/// in the plan, so a re-run after a failure converges.
#[allow(async_fn_in_trait)] // used from one task; no Send bound needed
pub trait TriggerApi {
    /// `sts:GetCallerIdentity` and the client's region: where ARNs point.
    async fn caller(&self) -> ApiResult<Caller>;

    // Lambda event source mappings.
    /// Mappings whose function is exactly `function` (a qualified ARN),
    /// each with its tags.
    async fn list_mappings(&self, function: &str) -> ApiResult<Vec<MappingState>>;
    async fn get_mapping(&self, uuid: &str) -> ApiResult<Option<MappingState>>;
    async fn create_mapping(
        &self,
        function: &str,
        spec: &MappingSpec,
        tags: &BTreeMap<String, String>,
    ) -> ApiResult<MappingState>;
    /// Changes the updatable settings (never the source or starting position).
    async fn update_mapping(&self, uuid: &str, spec: &MappingSpec) -> ApiResult<MappingState>;
    async fn delete_mapping(&self, uuid: &str) -> ApiResult<()>;

    // Lambda resource-based policy of a qualified function ARN.
    async fn list_trigger_permissions(&self, function: &str) -> ApiResult<Vec<Permission>>;
    /// `lambda:InvokeFunction` for `p.principal`, limited by source ARN and account.
    async fn add_trigger_permission(&self, function: &str, p: &Permission) -> ApiResult<()>;
    async fn remove_trigger_permission(&self, function: &str, sid: &str) -> ApiResult<()>;

    // EventBridge Scheduler (default group).
    async fn list_schedules(&self, prefix: &str) -> ApiResult<Vec<String>>;
    async fn get_schedule(&self, name: &str) -> ApiResult<Option<ScheduleSpec>>;
    async fn create_schedule(&self, spec: &ScheduleSpec) -> ApiResult<()>;
    async fn update_schedule(&self, spec: &ScheduleSpec) -> ApiResult<()>;
    async fn delete_schedule(&self, name: &str) -> ApiResult<()>;

    // IAM inline policies and roles (beyond `IamApi`).
    async fn get_role_policy(&self, role: &str, policy: &str) -> ApiResult<Option<String>>;
    async fn delete_role_policy(&self, role: &str, policy: &str) -> ApiResult<()>;
    async fn delete_role(&self, role: &str) -> ApiResult<()>;

    // S3 bucket notifications (read-modify-write of the whole configuration).
    async fn get_notifications(&self, bucket: &str) -> ApiResult<BucketNotifications>;
    async fn put_notifications(&self, bucket: &str, n: &BucketNotifications) -> ApiResult<()>;

    // API Gateway v2 HTTP APIs.
    async fn list_http_apis(&self) -> ApiResult<Vec<HttpApi>>;
    async fn create_http_api(
        &self,
        name: &str,
        cors: Option<&HttpCors>,
        tags: &BTreeMap<String, String>,
    ) -> ApiResult<HttpApi>;
    /// Sets (or, with `None`, removes) the API's CORS configuration.
    async fn update_http_api_cors(&self, api: &str, cors: Option<&HttpCors>) -> ApiResult<()>;
    async fn delete_http_api(&self, api: &str) -> ApiResult<()>;
    async fn list_integrations(&self, api: &str) -> ApiResult<Vec<Integration>>;
    async fn create_integration(
        &self,
        api: &str,
        uri: &str,
        payload_format: &str,
    ) -> ApiResult<Integration>;
    async fn update_integration(
        &self,
        api: &str,
        id: &str,
        uri: &str,
        payload_format: &str,
    ) -> ApiResult<()>;
    async fn list_routes(&self, api: &str) -> ApiResult<Vec<Route>>;
    async fn create_route(&self, api: &str, key: &str, target: &str) -> ApiResult<()>;
    async fn delete_route(&self, api: &str, id: &str) -> ApiResult<()>;
    async fn list_stages(&self, api: &str) -> ApiResult<Vec<String>>;
    /// A stage that deploys every change automatically.
    async fn create_stage(&self, api: &str, name: &str) -> ApiResult<()>;
}
