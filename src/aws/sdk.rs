//! The one adapter from [`LambdaApi`]/[`IamApi`] to the AWS SDK for Rust.
//!
//! Connection: credentials and region from aws-config's standard chain
//! (environment, shared files, profiles, SSO, container and instance roles),
//! `--profile`, `--region`, `--endpoint-url` and the AWS_ENDPOINT_URL /
//! AWS_ENDPOINT_URL_LAMBDA variables (read by aws-config itself). Throttling
//! and transient errors are retried by the SDK's standard retry strategy,
//! tuned here; there is no retry loop on top of it. Nothing here formats a
//! credential, and errors carry only the service's code and message.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types as lt;
use aws_smithy_runtime_api::client::waiters::error::WaiterError;

use super::permissions::CallLog;
use super::progress::UploadProgress;
use super::{
    AliasState, ApiError, ApiResult, Code, CodeSource, CreateFunction, DurableSettings,
    FunctionState, HANDLER, IamApi, Invoked, LambdaApi, LayerVersion, ObjectStore, Permission,
    RoleState, Settings, StoredObject, UrlSettings, UrlState, VersionInfo, VpcSettings,
};
use crate::config::default_log_group;

/// How to reach AWS (all optional: the standard chain fills the rest).
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    /// Show a byte bar for large request bodies (zips, layers).
    pub upload_progress: Option<crate::ui::Ui>,
}

/// Longest wait for one function update or version to settle.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Longest wait for a published version to become Active.
const VERSION_WAIT: Duration = Duration::from_secs(900);

/// The SDK clients behind the traits.
#[derive(Debug, Clone)]
pub struct SdkAws {
    pub(super) lambda: aws_sdk_lambda::Client,
    pub(super) iam: aws_sdk_iam::Client,
    pub(super) s3: aws_sdk_s3::Client,
    pub(super) ecr: aws_sdk_ecr::Client,
    pub(super) scheduler: aws_sdk_scheduler::Client,
    pub(super) apigw: aws_sdk_apigatewayv2::Client,
    pub(super) sts: aws_sdk_sts::Client,
    pub(super) cloudwatch: aws_sdk_cloudwatch::Client,
    pub region: String,
    /// Who the credentials belong to, once asked (they do not change
    /// while the connection lives).
    pub(super) caller: std::sync::Arc<tokio::sync::OnceCell<super::triggers::Caller>>,
}

/// Loads the configuration chain and builds the clients.
pub async fn connect(opts: &ConnectOptions) -> anyhow::Result<SdkAws> {
    let (config, region) = load_config(opts).await?;
    // Emulators (moto, LocalStack) serve buckets by path, not by host.
    let mut s3 = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(config.endpoint_url().is_some())
        .interceptor(CallLog);
    let mut lambda = aws_sdk_lambda::config::Builder::from(&config).interceptor(CallLog);
    if let Some(ui) = opts.upload_progress {
        s3 = s3.interceptor(UploadProgress { ui });
        lambda = lambda.interceptor(UploadProgress { ui });
    }
    Ok(SdkAws {
        lambda: aws_sdk_lambda::Client::from_conf(lambda.build()),
        iam: logged_client!(aws_sdk_iam, &config),
        s3: aws_sdk_s3::Client::from_conf(s3.build()),
        ecr: logged_client!(aws_sdk_ecr, &config),
        scheduler: logged_client!(aws_sdk_scheduler, &config),
        apigw: logged_client!(aws_sdk_apigatewayv2, &config),
        sts: logged_client!(aws_sdk_sts, &config),
        cloudwatch: logged_client!(aws_sdk_cloudwatch, &config),
        region,
        caller: Default::default(),
    })
}

/// A client of `$sdk` with the [`CallLog`] interceptor (every call and its
/// IAM action at debug level).
macro_rules! logged_client {
    ($sdk:ident, $config:expr) => {
        $sdk::Client::from_conf(
            $sdk::config::Builder::from($config)
                .interceptor($crate::aws::permissions::CallLog)
                .build(),
        )
    };
}
pub(super) use logged_client;

/// The shared configuration chain (credentials, region, endpoint, retries)
/// every SDK client here is built from, and the region it resolved.
pub(super) async fn load_config(
    opts: &ConnectOptions,
) -> anyhow::Result<(aws_config::SdkConfig, String)> {
    // Lambda's control plane throttles at ~15 req/s: more attempts and a
    // longer backoff ceiling than the SDK default ride out a burst.
    let retry = RetryConfig::standard()
        .with_max_attempts(6)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(10));
    let config = loader(opts).retry_config(retry).load().await;
    let profile = opts.profile.as_deref().unwrap_or("default");
    let Some(region) = config.region().map(|r| r.to_string()) else {
        return Err(crate::error::hinted(
            "no AWS region configured",
            format!(
                "looked in --region, AWS_REGION, AWS_DEFAULT_REGION and `region` of profile \
                 `{profile}` in {}: pass --region or set one of them",
                shared_file("AWS_CONFIG_FILE", "~/.aws/config")
            ),
        ));
    };
    check_credentials(&config, profile).await?;
    Ok((config, region))
}

/// Resolves the credentials once, before anything is built or sent, so a
/// missing key is one short line instead of a connection error later. The
/// SDK's own message (the whole provider chain) is left out on purpose.
async fn check_credentials(config: &aws_config::SdkConfig, profile: &str) -> anyhow::Result<()> {
    use aws_sdk_lambda::config::ProvideCredentials;
    let found = match config.credentials_provider() {
        Some(p) => p.provide_credentials().await.is_ok(),
        None => false,
    };
    if found {
        return Ok(());
    }
    Err(crate::error::hinted(
        "no AWS credentials found",
        format!(
            "looked in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile `{profile}` in {} and {}, \
             SSO, web identity, container and instance roles: run `aws configure` (or `aws sso \
             login`) or pass --profile",
            shared_file("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
            shared_file("AWS_CONFIG_FILE", "~/.aws/config"),
        ),
    ))
}

/// Where a shared AWS file is read from: its variable's value, else the
/// default path.
fn shared_file(var: &str, default: &str) -> String {
    match std::env::var(var) {
        Ok(path) if !path.is_empty() => format!("{path} ({var})"),
        _ => default.to_string(),
    }
}

/// A Lambda client for `invoke --remote`: the standard chain plus
/// `--profile`, `--region` and `--endpoint-url`, the SDK's default retries.
pub(super) async fn remote_lambda_client(opts: &ConnectOptions) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&loader(opts).load().await)
}

/// The standard configuration chain with `--profile`, `--region` and
/// `--endpoint-url` applied.
fn loader(opts: &ConnectOptions) -> aws_config::ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(p) = &opts.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &opts.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(u) = &opts.endpoint_url {
        loader = loader.endpoint_url(u);
    }
    loader
}

/// A Lambda client for the local emulator. The emulator ignores
/// signatures; fixed local credentials keep the developer's real ones out
/// of local traffic, and a local failure is reported, not retried.
pub(super) fn local_lambda_client(endpoint: &str) -> aws_sdk_lambda::Client {
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_lambda::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "AKIDLOCALEMULATOR",
            "local-emulator",
            None,
            None,
            "cargo-fn-local",
        ))
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_lambda::Client::from_conf(conf)
}

/// The developer's credentials (standard chain, optional profile) as the
/// variables Lambda gives a function, for `watch --aws-credentials`. The
/// values are never printed or logged.
pub async fn developer_credentials(
    profile: Option<&str>,
) -> anyhow::Result<BTreeMap<String, String>> {
    use aws_sdk_lambda::config::ProvideCredentials;
    let conf = loader(&ConnectOptions {
        profile: profile.map(str::to_string),
        ..Default::default()
    })
    .load()
    .await;
    let provider = conf.credentials_provider().ok_or_else(|| {
        crate::error::hinted(
            "--aws-credentials: no AWS credentials provider is configured",
            "configure credentials (aws configure, AWS_PROFILE) or drop --aws-credentials",
        )
    })?;
    let creds = provider.provide_credentials().await.map_err(|e| {
        crate::error::hinted(
            format!("--aws-credentials: could not load your AWS credentials: {e}"),
            "check `aws sts get-caller-identity` works for the profile, or drop --aws-credentials",
        )
    })?;
    let mut env = BTreeMap::new();
    env.insert(
        "AWS_ACCESS_KEY_ID".into(),
        creds.access_key_id().to_string(),
    );
    env.insert(
        "AWS_SECRET_ACCESS_KEY".into(),
        creds.secret_access_key().to_string(),
    );
    if let Some(token) = creds.session_token() {
        env.insert("AWS_SESSION_TOKEN".into(), token.to_string());
    }
    Ok(env)
}

/// Turns an SDK error into an [`ApiError`] naming the operation.
pub(super) fn api_err<E>(operation: &str, err: SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &err {
        SdkError::ServiceError(s) => {
            let e = s.err();
            let status = Some(s.raw().status().as_u16());
            ApiError {
                operation: operation.to_string(),
                code: e
                    .code()
                    .map(str::to_string)
                    .unwrap_or_else(|| status_code_name(status)),
                message: e.message().unwrap_or_default().to_string(),
                status,
            }
        }
        SdkError::TimeoutError(_) => ApiError::new(operation, "Timeout", "the request timed out"),
        SdkError::DispatchFailure(d) => {
            let what = if d.is_timeout() {
                "timed out"
            } else if d.is_io() {
                "connection failed or was dropped"
            } else {
                "could not be sent"
            };
            ApiError::new(
                operation,
                "ConnectionError",
                format!("the request {what}: {}", cause_chain(&err)),
            )
        }
        _ => ApiError::new(
            operation,
            "InvalidResponse",
            aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        ),
    }
}

/// An error's causes on one line, without the SDK's debug dump of the
/// whole request (which made the line a thousand characters long).
fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        parts.push(err.to_string());
    }
    parts.join(": ")
}

fn status_code_name(status: Option<u16>) -> String {
    match status {
        Some(429) => "TooManyRequestsException".into(),
        // IAM refused the call; the body had no code the SDK could read.
        Some(403) => "AccessDenied".into(),
        Some(s) => format!("HTTP{s}"),
        None => "Unknown".into(),
    }
}

pub(super) fn not_found<T>(e: ApiError) -> ApiResult<Option<T>> {
    if e.is_not_found() { Ok(None) } else { Err(e) }
}

macro_rules! function_state {
    ($c:expr) => {{
        let c = $c;
        FunctionState {
            name: c.function_name().unwrap_or_default().to_string(),
            arn: unqualified(c.function_arn().unwrap_or_default()),
            version: c.version().unwrap_or("$LATEST").to_string(),
            code_sha256: c.code_sha256().unwrap_or_default().to_string(),
            revision_id: c.revision_id().map(str::to_string),
            description: c.description().unwrap_or_default().to_string(),
            state: c.state().map(|s| s.as_str().to_string()),
            last_update_status: c.last_update_status().map(|s| s.as_str().to_string()),
            last_update_reason: c.last_update_status_reason().map(str::to_string),
            settings: Settings {
                runtime: c
                    .runtime()
                    .map(|r| r.as_str().to_string())
                    .unwrap_or_default(),
                architecture: c
                    .architectures()
                    .first()
                    .map(|a| a.as_str().to_string())
                    .unwrap_or_else(|| "x86_64".to_string()),
                memory: c.memory_size().unwrap_or(128) as u32,
                timeout: c.timeout().unwrap_or(3) as u32,
                ephemeral_storage: c.ephemeral_storage().map(|e| e.size()).unwrap_or(512) as u32,
                env: c
                    .environment()
                    .and_then(|e| e.variables())
                    .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                layers: c
                    .layers()
                    .iter()
                    .filter_map(|l| l.arn().map(str::to_string))
                    .collect(),
                role: c.role().unwrap_or_default().to_string(),
                tracing: c
                    .tracing_config()
                    .and_then(|t| t.mode())
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_else(|| "PassThrough".to_string()),
                vpc: c.vpc_config().and_then(|v| {
                    VpcSettings {
                        subnets: v.subnet_ids().to_vec(),
                        security_groups: v.security_group_ids().to_vec(),
                    }
                    .normalized()
                }),
                log_format: c
                    .logging_config()
                    .and_then(|l| l.log_format())
                    .map(|f| f.as_str().to_string())
                    .unwrap_or_else(|| "Text".to_string()),
                log_level: c
                    .logging_config()
                    .and_then(|l| l.application_log_level())
                    .map(|l| l.as_str().to_string()),
                log_group: c
                    .logging_config()
                    .and_then(|l| l.log_group())
                    .filter(|g| Some(*g) != c.function_name().map(default_log_group).as_deref())
                    .map(str::to_string),
                capacity: capacity_from(c.capacity_provider_config()),
                durable: c.durable_config().map(|d| DurableSettings {
                    execution_timeout: d.execution_timeout().unwrap_or(0).max(0) as u32,
                    // The API's default when unset.
                    retention_days: d.retention_period_in_days().unwrap_or(14).max(0) as u32,
                }),
            },
            tags: BTreeMap::new(),
            reserved_concurrency: None,
            package_type: c
                .package_type()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "Zip".to_string()),
            image_uri: None,
        }
    }};
}

macro_rules! alias_state {
    ($a:expr) => {{
        let a = $a;
        AliasState {
            name: a.name().unwrap_or_default().to_string(),
            arn: a.alias_arn().unwrap_or_default().to_string(),
            version: a.function_version().unwrap_or_default().to_string(),
            weights: a
                .routing_config()
                .and_then(|r| r.additional_version_weights())
                .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
                .unwrap_or_default(),
            revision_id: a.revision_id().map(str::to_string),
            description: a.description().unwrap_or_default().to_string(),
        }
    }};
}
pub(super) use alias_state;

macro_rules! url_state {
    ($u:expr) => {{
        let u = $u;
        UrlState {
            url: u.function_url().to_string(),
            settings: UrlSettings {
                auth: u.auth_type().as_str().to_string(),
                invoke_mode: u
                    .invoke_mode()
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_else(|| "BUFFERED".to_string()),
                cors: u.cors().map(|c| super::UrlCors {
                    allow_origins: c.allow_origins().to_vec(),
                    allow_methods: c.allow_methods().to_vec(),
                    allow_headers: c.allow_headers().to_vec(),
                    expose_headers: c.expose_headers().to_vec(),
                    allow_credentials: c.allow_credentials().unwrap_or(false),
                    max_age: c.max_age().map(|m| m as u32),
                }),
            },
        }
    }};
}

/// A function's `CapacityProviderConfig` as the API takes it.
fn capacity_provider_config(c: &super::CapacityConfig) -> Option<lt::CapacityProviderConfig> {
    let inner = lt::LambdaManagedInstancesCapacityProviderConfig::builder()
        .capacity_provider_arn(&c.provider_arn)
        .set_per_execution_environment_max_concurrency(c.max_concurrency.map(|n| n as i32))
        .set_execution_environment_memory_gib_per_v_cpu(c.memory_gib_per_vcpu)
        .build()
        .ok()?;
    Some(
        lt::CapacityProviderConfig::builder()
            .lambda_managed_instances_capacity_provider_config(inner)
            .build(),
    )
}

/// A function's `CapacityProviderConfig` as Lambda reports it.
fn capacity_from(c: Option<&lt::CapacityProviderConfig>) -> Option<super::CapacityConfig> {
    let m = c?.lambda_managed_instances_capacity_provider_config()?;
    Some(super::CapacityConfig {
        provider_arn: m.capacity_provider_arn().to_string(),
        max_concurrency: m
            .per_execution_environment_max_concurrency()
            .map(|n| n as u32),
        memory_gib_per_vcpu: m.execution_environment_memory_gib_per_v_cpu(),
    })
}

/// `arn:...:function:name:qualifier` -> `arn:...:function:name`.
fn unqualified(arn: &str) -> String {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() > 7 {
        parts[..7].join(":")
    } else {
        arn.to_string()
    }
}

fn function_code(code: &Code) -> lt::FunctionCode {
    match code {
        Code::Zip(bytes) => lt::FunctionCode::builder()
            .zip_file(Blob::new(bytes.clone()))
            .build(),
        Code::S3 { bucket, key } => lt::FunctionCode::builder()
            .s3_bucket(bucket)
            .s3_key(key)
            .build(),
        Code::Image { uri } => lt::FunctionCode::builder().image_uri(uri).build(),
    }
}

fn environment(s: &Settings) -> lt::Environment {
    let vars: HashMap<String, String> = s.env.clone().into_iter().collect();
    lt::Environment::builder().set_variables(Some(vars)).build()
}

fn vpc(s: &Settings) -> lt::VpcConfig {
    // An empty config detaches the function from a VPC.
    let v = s.vpc.clone().unwrap_or_default();
    lt::VpcConfig::builder()
        .set_subnet_ids(Some(v.subnets))
        .set_security_group_ids(Some(v.security_groups))
        .build()
}

/// Always names the group: going back from a custom group to the default
/// needs the default sent explicitly.
fn durable_config(d: DurableSettings) -> lt::DurableConfig {
    lt::DurableConfig::builder()
        .execution_timeout(d.execution_timeout as i32)
        .retention_period_in_days(d.retention_days as i32)
        .build()
}

fn logging(name: &str, s: &Settings) -> lt::LoggingConfig {
    let group = s
        .log_group
        .clone()
        .unwrap_or_else(|| default_log_group(name));
    let mut b = lt::LoggingConfig::builder()
        .log_format(lt::LogFormat::from(s.log_format.as_str()))
        .log_group(group);
    if let Some(level) = &s.log_level {
        b = b.application_log_level(lt::ApplicationLogLevel::from(level.as_str()));
    }
    b.build()
}

fn ephemeral(s: &Settings) -> lt::EphemeralStorage {
    lt::EphemeralStorage::builder()
        .size(s.ephemeral_storage as i32)
        .build()
        .expect("size is set")
}

fn tracing(s: &Settings) -> lt::TracingConfig {
    lt::TracingConfig::builder()
        .mode(lt::TracingMode::from(s.tracing.as_str()))
        .build()
}

pub(super) fn routing(weights: &BTreeMap<String, f64>) -> lt::AliasRoutingConfiguration {
    let w: HashMap<String, f64> = weights.clone().into_iter().collect();
    lt::AliasRoutingConfiguration::builder()
        .set_additional_version_weights(Some(w))
        .build()
}

fn cors(c: &super::UrlCors) -> lt::Cors {
    lt::Cors::builder()
        .set_allow_origins(Some(c.allow_origins.clone()))
        .set_allow_methods(Some(c.allow_methods.clone()))
        .set_allow_headers(Some(c.allow_headers.clone()))
        .set_expose_headers(Some(c.expose_headers.clone()))
        .allow_credentials(c.allow_credentials)
        .set_max_age(c.max_age.map(|m| m as i32))
        .build()
}

/// The function's state once a GetFunction waiter has finished.
fn state_after_wait<E: std::fmt::Display>(
    result: Result<aws_sdk_lambda::operation::get_function::GetFunctionOutput, E>,
) -> ApiResult<FunctionState> {
    let out =
        result.map_err(|e| ApiError::new("lambda:GetFunction", "WaiterFailure", e.to_string()))?;
    out.configuration()
        .map(|c| function_state!(c))
        .ok_or_else(|| ApiError::new("lambda:GetFunction", "InvalidResponse", "no configuration"))
}

fn waiter_err<O, E>(operation: &str, what: &str, e: WaiterError<O, E>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        WaiterError::ExceededMaxWait(_) => ApiError::new(
            operation,
            "WaiterTimeout",
            format!("{what} did not settle within {} s", MAX_WAIT.as_secs()),
        ),
        WaiterError::OperationFailed(f) => api_err(operation, f.into_error()),
        WaiterError::FailureState(_) => ApiError::new(
            operation,
            "WaiterFailure",
            format!("{what} ended in a failed state (see the function's LastUpdateStatusReason)"),
        ),
        _ => ApiError::new(
            operation,
            "WaiterFailure",
            format!("waiting for {what} failed"),
        ),
    }
}

impl LambdaApi for SdkAws {
    fn region(&self) -> String {
        self.region.clone()
    }

    async fn get_function(&self, name: &str) -> ApiResult<Option<FunctionState>> {
        let out = match self.lambda.get_function().function_name(name).send().await {
            Ok(o) => o,
            Err(e) => return not_found(api_err("lambda:GetFunction", e)),
        };
        let Some(c) = out.configuration() else {
            return Ok(None);
        };
        let mut f = function_state!(c);
        f.tags = out
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        f.reserved_concurrency = out
            .concurrency()
            .and_then(|c| c.reserved_concurrent_executions())
            .map(|n| n as u32);
        // Pinned by digest, ImageUri names it; ResolvedImageUri otherwise.
        f.image_uri = out.code().and_then(|c| {
            c.image_uri()
                .filter(|u| u.contains("@sha256:"))
                .or(c.resolved_image_uri())
                .or(c.image_uri())
                .map(str::to_string)
        });
        Ok(Some(f))
    }

    async fn get_version(&self, name: &str, qualifier: &str) -> ApiResult<Option<FunctionState>> {
        match self
            .lambda
            .get_function_configuration()
            .function_name(name)
            .qualifier(qualifier)
            .send()
            .await
        {
            Ok(c) => Ok(Some(function_state!(&c))),
            Err(e) => not_found(api_err("lambda:GetFunctionConfiguration", e)),
        }
    }

    async fn get_code(&self, name: &str, qualifier: &str) -> ApiResult<Option<CodeSource>> {
        let out = match self
            .lambda
            .get_function()
            .function_name(name)
            .qualifier(qualifier)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => return not_found(api_err("lambda:GetFunction", e)),
        };
        let Some(c) = out.configuration() else {
            return Ok(None);
        };
        let code = out.code();
        Ok(Some(CodeSource {
            version: function_state!(c),
            location: code.and_then(|c| c.location()).map(str::to_string),
            image_uri: code.and_then(|c| {
                c.resolved_image_uri()
                    .or(c.image_uri().filter(|u| u.contains("@sha256:")))
                    .map(str::to_string)
            }),
        }))
    }

    async fn download_code(&self, location: &str) -> ApiResult<Vec<u8>> {
        let url = location.to_string();
        let op = "lambda:GetFunction";
        // A pre-signed URL: a plain GET, no credentials; the URL itself is
        // a credential for ten minutes, so it is never put in an error.
        let fetched = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(MAX_WAIT))
                .build()
                .into();
            let mut resp = agent.get(&url).call().map_err(|e| match e {
                ureq::Error::Io(io) => io.to_string(),
                ureq::Error::HostNotFound => "host not found".to_string(),
                other => other
                    .to_string()
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .to_string(),
            })?;
            let status = resp.status().as_u16();
            if status != 200 {
                return Err(format!("HTTP {status}"));
            }
            resp.body_mut()
                .with_config()
                // Lambda's largest package (250 MB unzipped) bounds the zip.
                .limit(250 * 1024 * 1024)
                .read_to_vec()
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| ApiError::new(op, "ConnectionError", e.to_string()))?;
        fetched.map_err(|e| ApiError::new(op, "CodeUnavailable", e))
    }

    async fn create_function(&self, input: &CreateFunction) -> ApiResult<FunctionState> {
        let s = &input.settings;
        let mut req = self
            .lambda
            .create_function()
            .function_name(&input.name)
            .architectures(lt::Architecture::from(s.architecture.as_str()))
            .role(&s.role)
            .code(function_code(&input.code))
            .description(&input.description)
            .memory_size(s.memory as i32)
            .timeout(s.timeout as i32)
            .ephemeral_storage(ephemeral(s))
            .environment(environment(s))
            .tracing_config(tracing(s))
            .logging_config(logging(&input.name, s))
            .set_durable_config(s.durable.map(durable_config))
            .set_tags(Some(input.tags.clone().into_iter().collect()))
            .publish(false);
        // An image carries its own runtime and entrypoint: Lambda refuses
        // Runtime, Handler and Layers with PackageType Image.
        req = if matches!(input.code, Code::Image { .. }) {
            req.package_type(lt::PackageType::Image)
        } else {
            req.runtime(lt::Runtime::from(s.runtime.as_str()))
                .handler(HANDLER)
                .set_layers(Some(s.layers.clone()))
        };
        if s.vpc.is_some() {
            req = req.vpc_config(vpc(s));
        }
        if let Some(c) = &s.capacity {
            req = req.set_capacity_provider_config(capacity_provider_config(c));
        }
        let out = req
            .send()
            .await
            .map_err(|e| api_err("lambda:CreateFunction", e))?;
        Ok(function_state!(&out))
    }

    async fn update_code(
        &self,
        name: &str,
        code: &Code,
        architecture: &str,
        revision_id: Option<&str>,
    ) -> ApiResult<FunctionState> {
        let mut req = self
            .lambda
            .update_function_code()
            .function_name(name)
            .architectures(lt::Architecture::from(architecture))
            .set_revision_id(revision_id.map(str::to_string));
        req = match code {
            Code::Zip(bytes) => req.zip_file(Blob::new(bytes.clone())),
            Code::S3 { bucket, key } => req.s3_bucket(bucket).s3_key(key),
            Code::Image { uri } => req.image_uri(uri),
        };
        let out = req
            .send()
            .await
            .map_err(|e| api_err("lambda:UpdateFunctionCode", e))?;
        Ok(function_state!(&out))
    }

    async fn update_configuration(
        &self,
        name: &str,
        s: &Settings,
        revision_id: Option<&str>,
    ) -> ApiResult<FunctionState> {
        let mut req = self
            .lambda
            .update_function_configuration()
            .function_name(name)
            .role(&s.role)
            .memory_size(s.memory as i32)
            .timeout(s.timeout as i32)
            .ephemeral_storage(ephemeral(s))
            .environment(environment(s))
            .tracing_config(tracing(s))
            .logging_config(logging(name, s))
            .vpc_config(vpc(s))
            // Durable execution is only switched on at creation; an update
            // may change its settings (deploy refuses the rest in its plan).
            .set_durable_config(s.durable.map(durable_config))
            .set_revision_id(revision_id.map(str::to_string));
        // An empty runtime is an image function: no runtime, handler, layers.
        if !s.runtime.is_empty() {
            req = req
                .runtime(lt::Runtime::from(s.runtime.as_str()))
                .handler(HANDLER)
                .set_layers(Some(s.layers.clone()));
        }
        // Lambda cannot take a function off Managed Instances: the config
        // is only ever sent, never cleared (the plan refuses removal).
        if let Some(c) = &s.capacity {
            req = req.set_capacity_provider_config(capacity_provider_config(c));
        }
        let out = req
            .send()
            .await
            .map_err(|e| api_err("lambda:UpdateFunctionConfiguration", e))?;
        Ok(function_state!(&out))
    }

    async fn wait_active(&self, name: &str) -> ApiResult<FunctionState> {
        // Not the SDK's FunctionActiveV2 waiter: it knows only Active, and
        // the $LATEST of a function on Managed Instances settles in
        // `ActiveNonInvocable` (it never runs; its versions do).
        let op = "lambda:GetFunction";
        let started = std::time::Instant::now();
        let mut delay = Duration::from_millis(500);
        loop {
            let f = self
                .get_function(name)
                .await?
                .ok_or_else(|| ApiError::new(op, "ResourceNotFoundException", name))?;
            match f.state.as_deref() {
                Some("Active" | "ActiveNonInvocable") | None => return Ok(f),
                Some("Failed") => {
                    return Err(ApiError::new(
                        op,
                        "WaiterFailure",
                        format!(
                            "the new function is Failed: {}",
                            f.last_update_reason.clone().unwrap_or_default()
                        ),
                    ));
                }
                Some(other) if started.elapsed() > MAX_WAIT => {
                    return Err(ApiError::new(
                        op,
                        "Timeout",
                        format!(
                            "the new function was still {other} after {} s",
                            MAX_WAIT.as_secs()
                        ),
                    ));
                }
                Some(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn wait_updated(&self, name: &str) -> ApiResult<FunctionState> {
        let poll = self
            .lambda
            .wait_until_function_updated_v2()
            .function_name(name)
            .wait(MAX_WAIT)
            .await
            .map_err(|e| waiter_err("lambda:GetFunction", "the function update", e))?;
        state_after_wait(poll.into_result())
    }

    async fn publish_version(
        &self,
        name: &str,
        code_sha256: &str,
        revision_id: Option<&str>,
        description: &str,
    ) -> ApiResult<FunctionState> {
        let out = self
            .lambda
            .publish_version()
            .function_name(name)
            // An empty CodeSha256 would be a precondition no code meets.
            .set_code_sha256((!code_sha256.is_empty()).then(|| code_sha256.to_string()))
            .set_revision_id(revision_id.map(str::to_string))
            .description(description)
            .send()
            .await
            .map_err(|e| api_err("lambda:PublishVersion", e))?;
        Ok(function_state!(&out))
    }

    async fn wait_version_active(&self, name: &str, version: &str) -> ApiResult<FunctionState> {
        let poll = self
            .lambda
            .wait_until_published_version_active()
            .function_name(name)
            .qualifier(version)
            // A version on Managed Instances is Active only once Lambda
            // has started its instances and environments: minutes.
            .wait(VERSION_WAIT)
            .await
            .map_err(|e| {
                waiter_err(
                    "lambda:GetFunctionConfiguration",
                    &format!("version {version}"),
                    e,
                )
            })?;
        let out = poll.into_result().map_err(|e| {
            ApiError::new(
                "lambda:GetFunctionConfiguration",
                "WaiterFailure",
                e.to_string(),
            )
        })?;
        Ok(function_state!(&out))
    }

    async fn list_versions(&self, name: &str) -> ApiResult<Vec<VersionInfo>> {
        let mut versions = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .lambda
                .list_versions_by_function()
                .function_name(name)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| api_err("lambda:ListVersionsByFunction", e))?;
            for v in out.versions() {
                versions.push(VersionInfo {
                    version: v.version().unwrap_or_default().to_string(),
                    description: v.description().unwrap_or_default().to_string(),
                    code_sha256: v.code_sha256().unwrap_or_default().to_string(),
                });
            }
            match out.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        Ok(versions)
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> ApiResult<()> {
        self.lambda
            .delete_alias()
            .function_name(name)
            .name(alias)
            .send()
            .await
            .map_err(|e| api_err("lambda:DeleteAlias", e))?;
        Ok(())
    }

    async fn delete_version(&self, name: &str, version: &str) -> ApiResult<()> {
        if version == "$LATEST" || version.is_empty() {
            return Err(ApiError::new(
                "lambda:DeleteFunction",
                "InvalidParameterValueException",
                "refusing to delete anything but a published version",
            ));
        }
        self.lambda
            .delete_function()
            .function_name(name)
            .qualifier(version)
            .send()
            .await
            .map_err(|e| api_err("lambda:DeleteFunction", e))?;
        Ok(())
    }

    async fn invoke(&self, name: &str, qualifier: &str, payload: &[u8]) -> ApiResult<Invoked> {
        use base64::Engine;
        let out = self
            .lambda
            .invoke()
            .function_name(name)
            .qualifier(qualifier)
            .log_type(lt::LogType::Tail)
            .payload(Blob::new(payload.to_vec()))
            .send()
            .await
            .map_err(|e| api_err("lambda:InvokeFunction", e))?;
        let log = out
            .log_result()
            .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Ok(Invoked {
            status: out.status_code(),
            function_error: out.function_error().map(str::to_string),
            payload: out
                .payload()
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default(),
            log,
        })
    }

    async fn get_alias(&self, name: &str, alias: &str) -> ApiResult<Option<AliasState>> {
        match self
            .lambda
            .get_alias()
            .function_name(name)
            .name(alias)
            .send()
            .await
        {
            Ok(a) => Ok(Some(alias_state!(&a))),
            Err(e) => not_found(api_err("lambda:GetAlias", e)),
        }
    }

    async fn create_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        weights: &BTreeMap<String, f64>,
    ) -> ApiResult<AliasState> {
        let mut req = self
            .lambda
            .create_alias()
            .function_name(name)
            .name(alias)
            .function_version(version);
        if !weights.is_empty() {
            req = req.routing_config(routing(weights));
        }
        let a = req
            .send()
            .await
            .map_err(|e| api_err("lambda:CreateAlias", e))?;
        Ok(alias_state!(&a))
    }

    async fn update_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        weights: &BTreeMap<String, f64>,
        revision_id: Option<&str>,
    ) -> ApiResult<AliasState> {
        let a = self
            .lambda
            .update_alias()
            .function_name(name)
            .name(alias)
            .function_version(version)
            .routing_config(routing(weights))
            .set_revision_id(revision_id.map(str::to_string))
            .send()
            .await
            .map_err(|e| api_err("lambda:UpdateAlias", e))?;
        Ok(alias_state!(&a))
    }

    async fn put_reserved_concurrency(&self, name: &str, n: u32) -> ApiResult<()> {
        self.lambda
            .put_function_concurrency()
            .function_name(name)
            .reserved_concurrent_executions(n as i32)
            .send()
            .await
            .map_err(|e| api_err("lambda:PutFunctionConcurrency", e))?;
        Ok(())
    }

    async fn delete_reserved_concurrency(&self, name: &str) -> ApiResult<()> {
        self.lambda
            .delete_function_concurrency()
            .function_name(name)
            .send()
            .await
            .map_err(|e| api_err("lambda:DeleteFunctionConcurrency", e))?;
        Ok(())
    }

    async fn get_provisioned_concurrency(&self, name: &str, alias: &str) -> ApiResult<Option<u32>> {
        match self
            .lambda
            .get_provisioned_concurrency_config()
            .function_name(name)
            .qualifier(alias)
            .send()
            .await
        {
            Ok(o) => Ok(o
                .requested_provisioned_concurrent_executions()
                .map(|n| n as u32)),
            Err(e) => {
                let e = api_err("lambda:GetProvisionedConcurrencyConfig", e);
                if e.is("ProvisionedConcurrencyConfigNotFoundException") {
                    Ok(None)
                } else {
                    not_found(e)
                }
            }
        }
    }

    async fn put_provisioned_concurrency(&self, name: &str, alias: &str, n: u32) -> ApiResult<()> {
        self.lambda
            .put_provisioned_concurrency_config()
            .function_name(name)
            .qualifier(alias)
            .provisioned_concurrent_executions(n as i32)
            .send()
            .await
            .map_err(|e| api_err("lambda:PutProvisionedConcurrencyConfig", e))?;
        Ok(())
    }

    async fn get_url(&self, name: &str, alias: &str) -> ApiResult<Option<UrlState>> {
        match self
            .lambda
            .get_function_url_config()
            .function_name(name)
            .qualifier(alias)
            .send()
            .await
        {
            Ok(u) => Ok(Some(url_state!(&u))),
            Err(e) => not_found(api_err("lambda:GetFunctionUrlConfig", e)),
        }
    }

    async fn create_url(&self, name: &str, alias: &str, url: &UrlSettings) -> ApiResult<UrlState> {
        let u = self
            .lambda
            .create_function_url_config()
            .function_name(name)
            .qualifier(alias)
            .auth_type(lt::FunctionUrlAuthType::from(url.auth.as_str()))
            .invoke_mode(lt::InvokeMode::from(url.invoke_mode.as_str()))
            .set_cors(url.cors.as_ref().map(cors))
            .send()
            .await
            .map_err(|e| api_err("lambda:CreateFunctionUrlConfig", e))?;
        Ok(url_state!(&u))
    }

    async fn update_url(&self, name: &str, alias: &str, url: &UrlSettings) -> ApiResult<UrlState> {
        let u = self
            .lambda
            .update_function_url_config()
            .function_name(name)
            .qualifier(alias)
            .auth_type(lt::FunctionUrlAuthType::from(url.auth.as_str()))
            .invoke_mode(lt::InvokeMode::from(url.invoke_mode.as_str()))
            .cors(
                url.cors
                    .as_ref()
                    .map(cors)
                    .unwrap_or_else(|| lt::Cors::builder().build()),
            )
            .send()
            .await
            .map_err(|e| api_err("lambda:UpdateFunctionUrlConfig", e))?;
        Ok(url_state!(&u))
    }

    async fn delete_url(&self, name: &str, alias: &str) -> ApiResult<()> {
        match self
            .lambda
            .delete_function_url_config()
            .function_name(name)
            .qualifier(alias)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => not_found::<()>(api_err("lambda:DeleteFunctionUrlConfig", e)).map(|_| ()),
        }
    }

    async fn get_policy(&self, name: &str, alias: &str) -> ApiResult<Option<String>> {
        match self
            .lambda
            .get_policy()
            .function_name(name)
            .qualifier(alias)
            .send()
            .await
        {
            Ok(o) => Ok(o.policy().map(str::to_string)),
            Err(e) => not_found(api_err("lambda:GetPolicy", e)),
        }
    }

    async fn add_permission(
        &self,
        name: &str,
        alias: &str,
        permission: &Permission,
    ) -> ApiResult<()> {
        let mut req = self
            .lambda
            .add_permission()
            .function_name(name)
            .qualifier(alias)
            .statement_id(&permission.sid)
            .action(&permission.action)
            .principal(&permission.principal);
        if let Some(t) = &permission.function_url_auth_type {
            req = req.function_url_auth_type(lt::FunctionUrlAuthType::from(t.as_str()));
        }
        if permission.invoked_via_function_url {
            req = req.invoked_via_function_url(true);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = api_err("lambda:AddPermission", e);
                // A statement with this id is already there.
                if e.is("ResourceConflictException") {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn remove_permission(&self, name: &str, alias: &str, sid: &str) -> ApiResult<()> {
        match self
            .lambda
            .remove_permission()
            .function_name(name)
            .qualifier(alias)
            .statement_id(sid)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => not_found::<()>(api_err("lambda:RemovePermission", e)).map(|_| ()),
        }
    }

    async fn tag(&self, arn: &str, tags: &BTreeMap<String, String>) -> ApiResult<()> {
        self.lambda
            .tag_resource()
            .resource(arn)
            .set_tags(Some(tags.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| api_err("lambda:TagResource", e))?;
        Ok(())
    }

    async fn untag(&self, arn: &str, keys: &[String]) -> ApiResult<()> {
        self.lambda
            .untag_resource()
            .resource(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| api_err("lambda:UntagResource", e))?;
        Ok(())
    }

    async fn publish_layer(
        &self,
        layer: &str,
        zip: Vec<u8>,
        architectures: &[String],
        runtimes: &[String],
        description: &str,
    ) -> ApiResult<LayerVersion> {
        let content = lt::LayerVersionContentInput::builder()
            .zip_file(Blob::new(zip))
            .build();
        let out = self
            .lambda
            .publish_layer_version()
            .layer_name(layer)
            .content(content)
            .description(description)
            .set_compatible_architectures(Some(
                architectures
                    .iter()
                    .map(|a| lt::Architecture::from(a.as_str()))
                    .collect(),
            ))
            .set_compatible_runtimes(Some(
                runtimes
                    .iter()
                    .map(|r| lt::Runtime::from(r.as_str()))
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| api_err("lambda:PublishLayerVersion", e))?;
        Ok(LayerVersion {
            arn: out.layer_version_arn().unwrap_or_default().to_string(),
            version: out.version(),
        })
    }
}

impl IamApi for SdkAws {
    async fn get_role(&self, name: &str) -> ApiResult<Option<RoleState>> {
        match self.iam.get_role().role_name(name).send().await {
            Ok(o) => Ok(o.role().map(|r| RoleState {
                arn: r.arn().to_string(),
                tags: r
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            })),
            Err(e) => not_found(api_err("iam:GetRole", e)),
        }
    }

    async fn create_role(
        &self,
        name: &str,
        trust_policy: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> ApiResult<RoleState> {
        let tags: Vec<aws_sdk_iam::types::Tag> = tags
            .iter()
            .filter_map(|(k, v)| {
                aws_sdk_iam::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .ok()
            })
            .collect();
        let out = self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust_policy)
            .description(description)
            .set_tags(Some(tags.clone()))
            .send()
            .await
            .map_err(|e| api_err("iam:CreateRole", e))?;
        let role = out
            .role()
            .ok_or_else(|| ApiError::new("iam:CreateRole", "InvalidResponse", "no role"))?;
        Ok(RoleState {
            arn: role.arn().to_string(),
            tags: tags
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
        })
    }

    async fn put_role_policy(
        &self,
        role: &str,
        policy_name: &str,
        document: &str,
    ) -> ApiResult<()> {
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name(policy_name)
            .policy_document(document)
            .send()
            .await
            .map_err(|e| api_err("iam:PutRolePolicy", e))?;
        Ok(())
    }

    async fn role_policies(&self, role: &str) -> ApiResult<Vec<String>> {
        let mut docs = Vec::new();
        let inline = self
            .iam
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .map_err(|e| api_err("iam:ListRolePolicies", e))?;
        for name in inline.policy_names() {
            let p = self
                .iam
                .get_role_policy()
                .role_name(role)
                .policy_name(name)
                .send()
                .await
                .map_err(|e| api_err("iam:GetRolePolicy", e))?;
            docs.push(policy_text(p.policy_document()));
        }
        let attached = self
            .iam
            .list_attached_role_policies()
            .role_name(role)
            .send()
            .await
            .map_err(|e| api_err("iam:ListAttachedRolePolicies", e))?;
        for a in attached.attached_policies() {
            let Some(arn) = a.policy_arn() else { continue };
            let p = self
                .iam
                .get_policy()
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| api_err("iam:GetPolicy", e))?;
            let Some(version) = p.policy().and_then(|p| p.default_version_id()) else {
                continue;
            };
            let v = self
                .iam
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version)
                .send()
                .await
                .map_err(|e| api_err("iam:GetPolicyVersion", e))?;
            if let Some(doc) = v.policy_version().and_then(|v| v.document()) {
                docs.push(policy_text(doc));
            }
        }
        Ok(docs)
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986); some emulators
/// return them as plain JSON.
fn policy_text(doc: &str) -> String {
    if doc.trim_start().starts_with('{') {
        return doc.to_string();
    }
    percent_encoding::percent_decode_str(doc)
        .decode_utf8_lossy()
        .into_owned()
}

impl ObjectStore for SdkAws {
    async fn put_object(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> ApiResult<()> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| api_err("s3:PutObject", e))?;
        Ok(())
    }

    async fn list_objects(&self, bucket: &str, prefix: &str) -> ApiResult<Vec<StoredObject>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| api_err("s3:ListBucket", e))?;
            for o in page.contents() {
                out.push(StoredObject {
                    key: o.key().unwrap_or_default().to_string(),
                    last_modified: o.last_modified().map(|d| d.secs()).unwrap_or(0),
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn delete_objects(&self, bucket: &str, keys: &[String]) -> ApiResult<()> {
        for chunk in keys.chunks(1000) {
            let ids: Vec<aws_sdk_s3::types::ObjectIdentifier> = chunk
                .iter()
                .filter_map(|k| {
                    aws_sdk_s3::types::ObjectIdentifier::builder()
                        .key(k)
                        .build()
                        .ok()
                })
                .collect();
            let delete = aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| ApiError::new("s3:DeleteObject", "InvalidRequest", e.to_string()))?;
            self.s3
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| api_err("s3:DeleteObject", e))?;
        }
        Ok(())
    }
}
