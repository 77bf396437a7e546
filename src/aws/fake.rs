//! An in-memory Lambda + IAM for fast tests of the deploy logic. It enforces
//! what AWS enforces and moto does not: RevisionId and CodeSha256
//! preconditions (`PreconditionFailedException`), `ResourceConflictException`
//! for a change while an update is in progress, no publish of an unchanged
//! function (the latest version is returned), aliases only on published
//! versions, provisioned concurrency only on an alias. Faults can be queued
//! per operation, and every call is recorded.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use super::ecr::{EcrApi, PushTarget, Pushed, RegistryAuth, Repository};
use super::{
    AliasState, ApiError, ApiResult, Code, CodeSource, CreateFunction, FunctionState, IamApi,
    Invoked, LambdaApi, LayerVersion, ObjectStore, Permission, RoleState, Settings, StoredObject,
    UrlSettings, UrlState, VersionInfo,
};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

#[derive(Debug, Default)]
struct FakeFunction {
    latest: FunctionState,
    versions: Vec<FunctionState>,
    aliases: BTreeMap<String, AliasState>,
    urls: BTreeMap<String, UrlState>,
    provisioned: BTreeMap<String, u32>,
    /// Resource policy statements per alias.
    permissions: BTreeMap<String, Vec<Permission>>,
    /// Versions that have had an invocation (the next one is warm).
    warm: Vec<String>,
}

#[derive(Debug, Default)]
pub(super) struct State {
    functions: BTreeMap<String, FakeFunction>,
    pub(super) roles: BTreeMap<String, RoleState>,
    policies: BTreeMap<(String, String), String>,
    /// Managed policy documents attached to a role.
    attached: BTreeMap<String, Vec<String>>,
    layers: BTreeMap<String, i64>,
    /// (bucket, key) -> (bytes, sequence number as "last modified").
    objects: BTreeMap<(String, String), (Vec<u8>, i64)>,
    calls: Vec<String>,
    faults: BTreeMap<String, VecDeque<ApiError>>,
    revision: u64,
    /// Make the next update end in LastUpdateStatus=Failed.
    fail_next_update: bool,
    /// ECR: repository name -> (repository, lifecycle policy).
    repositories: BTreeMap<String, (Repository, Option<String>)>,
    /// Images in the registry: `<repository uri>@<digest>`.
    images: Vec<String>,
    /// The modelled invocation's CPU time at one vCPU (ms); 1,000 by default.
    cpu_work_ms: Option<f64>,
    /// Zip bytes by CodeSha256, served at `fake-code://<sha>`.
    code: BTreeMap<String, Vec<u8>>,
    /// GetFunction gives no code location (as moto's is not served).
    hide_code_location: bool,
    /// Capacity providers and operator-role attachments (`fake_capacity`).
    pub(super) capacity: super::fake_capacity::CapacityState,
}

/// The fake. Cheap to create; one per test.
#[derive(Debug, Default)]
pub struct FakeAws {
    state: Mutex<State>,
}

pub use crate::package::sha256_b64;

impl FakeAws {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every operation called so far (IAM action names), in order.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    /// Makes the next call of `operation` (e.g. `lambda:UpdateAlias`) fail.
    pub fn fail_next(&self, operation: &str, code: &str, message: &str) {
        let mut s = self.state.lock().unwrap();
        s.faults
            .entry(operation.to_string())
            .or_default()
            .push_back(ApiError::new(operation, code, message));
    }

    /// GetFunction answers without a code location from now on.
    pub fn hide_code_location(&self) {
        self.state.lock().unwrap().hide_code_location = true;
    }

    /// The CPU time (ms at one vCPU) the modelled invocations take.
    pub fn set_cpu_work_ms(&self, ms: f64) {
        self.state.lock().unwrap().cpu_work_ms = Some(ms);
    }

    /// Aliases of a function, by name.
    pub fn aliases(&self, name: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.functions
            .get(name)
            .map(|f| f.aliases.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Makes the next code or configuration update end in `Failed`.
    pub fn fail_next_update(&self) {
        self.state.lock().unwrap().fail_next_update = true;
    }

    /// Simulates someone else changing `$LATEST` (new RevisionId, maybe new code).
    pub fn external_change(&self, name: &str, code: Option<&[u8]>) {
        let mut s = self.state.lock().unwrap();
        let rev = next_revision(&mut s);
        let f = s.functions.get_mut(name).expect("function exists");
        f.latest.revision_id = Some(rev);
        if let Some(code) = code {
            f.latest.code_sha256 = sha256_b64(code);
        }
    }

    /// Leaves `$LATEST` in `LastUpdateStatus=InProgress` (until a waiter polls).
    pub fn set_in_progress(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        let f = s.functions.get_mut(name).expect("function exists");
        f.latest.last_update_status = Some("InProgress".into());
    }

    pub fn alias(&self, name: &str, alias: &str) -> Option<AliasState> {
        let s = self.state.lock().unwrap();
        s.functions.get(name)?.aliases.get(alias).cloned()
    }

    pub fn latest(&self, name: &str) -> Option<FunctionState> {
        let s = self.state.lock().unwrap();
        s.functions.get(name).map(|f| f.latest.clone())
    }

    pub fn version_count(&self, name: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.functions.get(name).map_or(0, |f| f.versions.len())
    }

    pub fn provisioned(&self, name: &str, alias: &str) -> Option<u32> {
        let s = self.state.lock().unwrap();
        s.functions.get(name)?.provisioned.get(alias).copied()
    }

    pub fn role_policy(&self, role: &str, policy: &str) -> Option<String> {
        let s = self.state.lock().unwrap();
        s.policies
            .get(&(role.to_string(), policy.to_string()))
            .cloned()
    }

    /// Keys stored in a bucket, in key order.
    pub fn object_keys(&self, bucket: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.objects
            .keys()
            .filter(|(b, _)| b == bucket)
            .map(|(_, k)| k.clone())
            .collect()
    }

    pub fn url(&self, name: &str, alias: &str) -> Option<UrlState> {
        let s = self.state.lock().unwrap();
        s.functions.get(name)?.urls.get(alias).cloned()
    }

    /// The resource policy statements of an alias.
    pub fn statements(&self, name: &str, alias: &str) -> Vec<Permission> {
        let s = self.state.lock().unwrap();
        s.functions
            .get(name)
            .and_then(|f| f.permissions.get(alias).cloned())
            .unwrap_or_default()
    }

    /// Attaches a managed policy document to a role.
    pub fn attach_policy(&self, role: &str, document: &str) {
        let mut s = self.state.lock().unwrap();
        s.attached
            .entry(role.to_string())
            .or_default()
            .push(document.to_string());
    }

    /// Records the call and returns a queued fault for it, if any.
    /// The ECR repository and its lifecycle policy.
    pub fn repository(&self, name: &str) -> Option<(Repository, Option<String>)> {
        self.state.lock().unwrap().repositories.get(name).cloned()
    }

    /// Every image pushed so far, as `<repository uri>@<digest>`.
    pub fn images(&self) -> Vec<String> {
        self.state.lock().unwrap().images.clone()
    }

    /// The state, without recording a call (test setup and reads).
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub(super) fn enter(&self, operation: &str) -> ApiResult<std::sync::MutexGuard<'_, State>> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(operation.to_string());
        if let Some(e) = s.faults.get_mut(operation).and_then(|q| q.pop_front()) {
            return Err(e);
        }
        Ok(s)
    }
}

impl State {
    /// Qualified ARNs of the published versions that run on a provider.
    pub(super) fn versions_on(&self, provider_arn: &str) -> Vec<String> {
        self.functions
            .values()
            .flat_map(|f| f.versions.iter())
            .filter(|v| {
                v.settings
                    .capacity
                    .as_ref()
                    .is_some_and(|c| c.provider_arn == provider_arn)
            })
            .map(|v| format!("{}:{}", v.arn, v.version))
            .collect()
    }
}

fn next_revision(s: &mut State) -> String {
    s.revision += 1;
    format!("rev-{}", s.revision)
}

fn not_found(op: &str, what: &str) -> ApiError {
    ApiError {
        status: Some(404),
        ..ApiError::new(op, "ResourceNotFoundException", format!("{what} not found"))
    }
}

fn conflict(op: &str) -> ApiError {
    ApiError {
        status: Some(409),
        ..ApiError::new(
            op,
            "ResourceConflictException",
            "The operation cannot be performed at this time. An update is in progress for resource",
        )
    }
}

fn precondition(op: &str, what: &str) -> ApiError {
    ApiError {
        status: Some(412),
        ..ApiError::new(op, "PreconditionFailedException", what)
    }
}

fn check_revision(op: &str, f: &FakeFunction, revision_id: Option<&str>) -> ApiResult<()> {
    if let Some(r) = revision_id
        && f.latest.revision_id.as_deref() != Some(r)
    {
        return Err(precondition(
            op,
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        ));
    }
    if f.latest.last_update_status.as_deref() == Some("InProgress") {
        return Err(conflict(op));
    }
    Ok(())
}

fn function_mut<'a>(s: &'a mut State, op: &str, name: &str) -> ApiResult<&'a mut FakeFunction> {
    s.functions
        .get_mut(name)
        .ok_or_else(|| not_found(op, &format!("Function {name}")))
}

/// CodeSha256 of a code source (the manifest hex for an image, which must
/// be in the registry, pinned by digest) and its ImageUri.
fn code_identity(s: &mut State, op: &str, code: &Code) -> ApiResult<(String, Option<String>)> {
    match code {
        Code::Image { uri } => {
            let Some(digest) = super::ecr::digest_of(uri) else {
                return Err(ApiError::new(
                    op,
                    "InvalidParameterValueException",
                    "the fake only takes images pinned by digest",
                ));
            };
            if !s.images.contains(uri) {
                return Err(ApiError::new(
                    op,
                    "InvalidParameterValueException",
                    format!("Source image {uri} does not exist. Provide a valid source image."),
                ));
            }
            let hex = digest.trim_start_matches("sha256:").to_string();
            Ok((hex, Some(uri.clone())))
        }
        other => {
            let bytes = code_bytes(s, op, other)?;
            let sha = sha256_b64(&bytes);
            // Kept for GetFunction's code location (`deploy --from`).
            s.code.insert(sha.clone(), bytes);
            Ok((sha, None))
        }
    }
}

fn code_bytes(s: &State, op: &str, code: &Code) -> ApiResult<Vec<u8>> {
    match code {
        Code::Zip(b) => Ok(b.clone()),
        Code::Image { .. } => unreachable!("images have no bytes; see code_identity"),
        Code::S3 { bucket, key } => s
            .objects
            .get(&(bucket.clone(), key.clone()))
            .map(|(b, _)| b.clone())
            .ok_or_else(|| {
                ApiError::new(
                    op,
                    "InvalidParameterValueException",
                    format!("Error occurred while GetObject. S3 Error Code: NoSuchKey ({key})"),
                )
            }),
    }
}

fn finish_update(s: &mut State, name: &str) {
    let failed = std::mem::take(&mut s.fail_next_update);
    let rev = next_revision(s);
    let f = s.functions.get_mut(name).expect("checked");
    f.latest.revision_id = Some(rev);
    // Left InProgress: a caller must wait before the next change.
    f.latest.last_update_status = Some("InProgress".into());
    if failed {
        f.latest.last_update_reason = Some("injected failure".into());
        f.latest.state = Some("Failed".into());
    } else {
        f.latest.state = Some("Active".into());
        f.latest.last_update_reason = None;
    }
}

impl LambdaApi for FakeAws {
    fn region(&self) -> String {
        REGION.to_string()
    }

    async fn get_function(&self, name: &str) -> ApiResult<Option<FunctionState>> {
        let s = self.enter("lambda:GetFunction")?;
        Ok(s.functions.get(name).map(|f| f.latest.clone()))
    }

    async fn get_version(&self, name: &str, qualifier: &str) -> ApiResult<Option<FunctionState>> {
        let s = self.enter("lambda:GetFunctionConfiguration")?;
        let Some(f) = s.functions.get(name) else {
            return Ok(None);
        };
        let version = match f.aliases.get(qualifier) {
            Some(a) => a.version.clone(),
            None => qualifier.to_string(),
        };
        if version == "$LATEST" {
            return Ok(Some(f.latest.clone()));
        }
        Ok(f.versions.iter().find(|v| v.version == version).cloned())
    }

    async fn get_code(&self, name: &str, qualifier: &str) -> ApiResult<Option<CodeSource>> {
        let Some(v) = self.get_version(name, qualifier).await? else {
            return Ok(None);
        };
        let s = self.enter("lambda:GetFunction")?;
        Ok(Some(CodeSource {
            location: (!v.is_image() && !s.hide_code_location)
                .then(|| format!("fake-code://{}", v.code_sha256)),
            image_uri: v.image_uri.clone(),
            version: v,
        }))
    }

    async fn download_code(&self, location: &str) -> ApiResult<Vec<u8>> {
        let s = self.enter("http:GET")?;
        let sha = location.trim_start_matches("fake-code://");
        s.code
            .get(sha)
            .cloned()
            .ok_or_else(|| ApiError::new("http:GET", "HTTP404", "no such code"))
    }

    async fn create_function(&self, input: &CreateFunction) -> ApiResult<FunctionState> {
        let op = "lambda:CreateFunction";
        let mut s = self.enter(op)?;
        if s.functions.contains_key(&input.name) {
            return Err(ApiError {
                status: Some(409),
                ..ApiError::new(
                    op,
                    "ResourceConflictException",
                    format!("Function already exist: {}", input.name),
                )
            });
        }
        let role_name = input.settings.role.rsplit('/').next().unwrap_or_default();
        if !s.roles.is_empty() && !s.roles.contains_key(role_name) {
            return Err(ApiError::new(
                op,
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.",
            ));
        }
        let image = matches!(input.code, Code::Image { .. });
        if image && (!input.settings.runtime.is_empty() || !input.settings.layers.is_empty()) {
            return Err(ApiError::new(
                op,
                "InvalidParameterValueException",
                "Runtime, Handler and Layers are not supported for functions with package type Image",
            ));
        }
        let (code_sha256, image_uri) = code_identity(&mut s, op, &input.code)?;
        let rev = next_revision(&mut s);
        let latest = FunctionState {
            name: input.name.clone(),
            arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{}", input.name),
            version: "$LATEST".into(),
            code_sha256,
            revision_id: Some(rev),
            description: input.description.clone(),
            state: Some("Pending".into()),
            last_update_status: Some("Successful".into()),
            last_update_reason: None,
            settings: input.settings.clone(),
            tags: input.tags.clone(),
            reserved_concurrency: None,
            package_type: if image { "Image" } else { "Zip" }.into(),
            image_uri,
        };
        s.functions.insert(
            input.name.clone(),
            FakeFunction {
                latest: latest.clone(),
                ..Default::default()
            },
        );
        Ok(latest)
    }

    async fn update_code(
        &self,
        name: &str,
        code: &Code,
        architecture: &str,
        revision_id: Option<&str>,
    ) -> ApiResult<FunctionState> {
        let op = "lambda:UpdateFunctionCode";
        let mut s = self.enter(op)?;
        let (sha, image_uri) = code_identity(&mut s, op, code)?;
        let f = function_mut(&mut s, op, name)?;
        check_revision(op, f, revision_id)?;
        if f.latest.is_image() != image_uri.is_some() {
            // Lambda cannot change a function's PackageType.
            return Err(ApiError::new(
                op,
                "InvalidParameterValueException",
                format!(
                    "Please provide {} when updating a function with packageType {}.",
                    if f.latest.is_image() {
                        "ImageUri"
                    } else {
                        "ZipFile or S3"
                    },
                    if f.latest.is_image() { "Image" } else { "Zip" }
                ),
            ));
        }
        f.latest.code_sha256 = sha;
        f.latest.image_uri = image_uri;
        f.latest.settings.architecture = architecture.to_string();
        finish_update(&mut s, name);
        Ok(s.functions[name].latest.clone())
    }

    async fn update_configuration(
        &self,
        name: &str,
        settings: &Settings,
        revision_id: Option<&str>,
    ) -> ApiResult<FunctionState> {
        let op = "lambda:UpdateFunctionConfiguration";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        check_revision(op, f, revision_id)?;
        let arch = f.latest.settings.architecture.clone();
        f.latest.settings = Settings {
            architecture: arch,
            ..settings.clone()
        };
        finish_update(&mut s, name);
        Ok(s.functions[name].latest.clone())
    }

    async fn wait_active(&self, name: &str) -> ApiResult<FunctionState> {
        let op = "lambda:GetFunction";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        if f.latest.state.as_deref() == Some("Pending") {
            f.latest.state = Some("Active".into());
        }
        if f.latest.state.as_deref() == Some("Failed") {
            return Err(ApiError::new(op, "WaiterFailure", "function is Failed"));
        }
        Ok(f.latest.clone())
    }

    async fn wait_updated(&self, name: &str) -> ApiResult<FunctionState> {
        let op = "lambda:GetFunction";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        if f.latest.state.as_deref() == Some("Failed") {
            f.latest.last_update_status = Some("Failed".into());
            return Err(ApiError::new(
                op,
                "WaiterFailure",
                "the function update ended in a failed state",
            ));
        }
        f.latest.last_update_status = Some("Successful".into());
        f.latest.state = Some("Active".into());
        Ok(f.latest.clone())
    }

    async fn publish_version(
        &self,
        name: &str,
        code_sha256: &str,
        revision_id: Option<&str>,
        description: &str,
    ) -> ApiResult<FunctionState> {
        let op = "lambda:PublishVersion";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        check_revision(op, f, revision_id)?;
        if f.latest.state.as_deref() != Some("Active") {
            return Err(conflict(op));
        }
        if !code_sha256.is_empty() && f.latest.code_sha256 != code_sha256 {
            return Err(precondition(
                op,
                "CodeSHA256 does not match the code of $LATEST",
            ));
        }
        if let Some(last) = f.versions.last()
            && last.code_sha256 == f.latest.code_sha256
            && last.settings == f.latest.settings
        {
            return Ok(last.clone());
        }
        let mut v = f.latest.clone();
        v.version = (f.versions.len() + 1).to_string();
        v.description = description.to_string();
        v.tags.clear();
        f.versions.push(v.clone());
        Ok(v)
    }

    async fn wait_version_active(&self, name: &str, version: &str) -> ApiResult<FunctionState> {
        let op = "lambda:GetFunctionConfiguration";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        f.versions
            .iter()
            .find(|v| v.version == version)
            .cloned()
            .ok_or_else(|| not_found(op, &format!("Version {version}")))
    }

    async fn list_versions(&self, name: &str) -> ApiResult<Vec<VersionInfo>> {
        let op = "lambda:ListVersionsByFunction";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        let mut out = vec![VersionInfo {
            version: "$LATEST".into(),
            description: f.latest.description.clone(),
            code_sha256: f.latest.code_sha256.clone(),
        }];
        out.extend(f.versions.iter().map(|v| VersionInfo {
            version: v.version.clone(),
            description: v.description.clone(),
            code_sha256: v.code_sha256.clone(),
        }));
        Ok(out)
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> ApiResult<()> {
        let op = "lambda:DeleteAlias";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        f.aliases
            .remove(alias)
            .map(|_| ())
            .ok_or_else(|| not_found(op, &format!("Alias {alias}")))
    }

    async fn delete_version(&self, name: &str, version: &str) -> ApiResult<()> {
        let op = "lambda:DeleteFunction";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        if f.aliases.values().any(|a| a.version == version) {
            return Err(ApiError::new(
                op,
                "ResourceConflictException",
                "an alias points to this version",
            ));
        }
        let before = f.versions.len();
        f.versions.retain(|v| v.version != version);
        if f.versions.len() == before {
            return Err(not_found(op, &format!("Version {version}")));
        }
        Ok(())
    }

    /// Runs nothing: answers `{}` with a REPORT whose duration is a model
    /// of a CPU-bound function (1,000 ms at one vCPU, so slower below
    /// 1,769 MB and flat beyond), cold the first time per version, scaled
    /// by `cpu_work_ms` when set.
    async fn invoke(&self, name: &str, qualifier: &str, _payload: &[u8]) -> ApiResult<Invoked> {
        // A real invocation takes a while: let other tasks (Ctrl-C) run.
        tokio::task::yield_now().await;
        let op = "lambda:InvokeFunction";
        let mut s = self.enter(op)?;
        let work = s.cpu_work_ms;
        let f = function_mut(&mut s, op, name)?;
        let version = match f.aliases.get(qualifier) {
            Some(a) => a.version.clone(),
            None => qualifier.to_string(),
        };
        let config = if version == "$LATEST" {
            f.latest.clone()
        } else {
            f.versions
                .iter()
                .find(|v| v.version == version)
                .cloned()
                .ok_or_else(|| not_found(op, &format!("Version {version}")))?
        };
        let memory = config.settings.memory;
        let share = (f64::from(memory) / 1769.0).min(1.0);
        let duration = work.unwrap_or(1000.0) / share;
        let cold = !f.warm.contains(&version);
        f.warm.push(version);
        let init = if cold {
            "Init Duration: 120.00 ms\t"
        } else {
            ""
        };
        let log = format!(
            "START RequestId: fake Version: {}\nEND RequestId: fake\nREPORT RequestId: fake\tDuration: {duration:.2} ms\tBilled Duration: {} ms\tMemory Size: {memory} MB\tMax Memory Used: 30 MB\t{init}\n",
            config.version,
            duration.ceil() as u64
        );
        Ok(Invoked {
            status: 200,
            function_error: None,
            payload: b"{}".to_vec(),
            log,
        })
    }

    async fn get_alias(&self, name: &str, alias: &str) -> ApiResult<Option<AliasState>> {
        let s = self.enter("lambda:GetAlias")?;
        Ok(s.functions
            .get(name)
            .and_then(|f| f.aliases.get(alias).cloned()))
    }

    async fn create_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        weights: &BTreeMap<String, f64>,
    ) -> ApiResult<AliasState> {
        let op = "lambda:CreateAlias";
        let mut s = self.enter(op)?;
        let rev = next_revision(&mut s);
        let f = function_mut(&mut s, op, name)?;
        if f.aliases.contains_key(alias) {
            return Err(ApiError::new(
                op,
                "ResourceConflictException",
                "Alias already exists",
            ));
        }
        check_published(op, f, version, weights)?;
        let a = AliasState {
            name: alias.to_string(),
            arn: format!("{}:{alias}", f.latest.arn),
            version: version.to_string(),
            weights: weights.clone(),
            revision_id: Some(rev),
            description: String::new(),
        };
        f.aliases.insert(alias.to_string(), a.clone());
        Ok(a)
    }

    async fn update_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        weights: &BTreeMap<String, f64>,
        revision_id: Option<&str>,
    ) -> ApiResult<AliasState> {
        let op = "lambda:UpdateAlias";
        let mut s = self.enter(op)?;
        let rev = next_revision(&mut s);
        let f = function_mut(&mut s, op, name)?;
        check_published(op, f, version, weights)?;
        let a = f
            .aliases
            .get_mut(alias)
            .ok_or_else(|| not_found(op, &format!("Alias {alias}")))?;
        if let Some(r) = revision_id
            && a.revision_id.as_deref() != Some(r)
        {
            return Err(precondition(
                op,
                "The Revision Id provided does not match the latest Revision Id",
            ));
        }
        a.version = version.to_string();
        a.weights = weights.clone();
        a.revision_id = Some(rev);
        Ok(a.clone())
    }

    async fn put_reserved_concurrency(&self, name: &str, n: u32) -> ApiResult<()> {
        let op = "lambda:PutFunctionConcurrency";
        let mut s = self.enter(op)?;
        function_mut(&mut s, op, name)?.latest.reserved_concurrency = Some(n);
        Ok(())
    }

    async fn delete_reserved_concurrency(&self, name: &str) -> ApiResult<()> {
        let op = "lambda:DeleteFunctionConcurrency";
        let mut s = self.enter(op)?;
        function_mut(&mut s, op, name)?.latest.reserved_concurrency = None;
        Ok(())
    }

    async fn get_provisioned_concurrency(&self, name: &str, alias: &str) -> ApiResult<Option<u32>> {
        let op = "lambda:GetProvisionedConcurrencyConfig";
        let mut s = self.enter(op)?;
        Ok(function_mut(&mut s, op, name)?
            .provisioned
            .get(alias)
            .copied())
    }

    async fn put_provisioned_concurrency(&self, name: &str, alias: &str, n: u32) -> ApiResult<()> {
        let op = "lambda:PutProvisionedConcurrencyConfig";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        let Some(a) = f.aliases.get(alias) else {
            return Err(not_found(op, &format!("Alias {alias}")));
        };
        if a.version == "$LATEST" || n == 0 {
            return Err(ApiError::new(
                op,
                "InvalidParameterValueException",
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions",
            ));
        }
        if let Some(r) = f.latest.reserved_concurrency
            && n > r
        {
            return Err(ApiError::new(
                op,
                "InvalidParameterValueException",
                "provisioned concurrency exceeds the reserved concurrency",
            ));
        }
        f.provisioned.insert(alias.to_string(), n);
        Ok(())
    }

    async fn get_url(&self, name: &str, alias: &str) -> ApiResult<Option<UrlState>> {
        let op = "lambda:GetFunctionUrlConfig";
        let mut s = self.enter(op)?;
        Ok(function_mut(&mut s, op, name)?.urls.get(alias).cloned())
    }

    async fn create_url(&self, name: &str, alias: &str, url: &UrlSettings) -> ApiResult<UrlState> {
        let op = "lambda:CreateFunctionUrlConfig";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        if f.urls.contains_key(alias) {
            return Err(ApiError::new(op, "ResourceConflictException", "exists"));
        }
        let u = UrlState {
            url: format!("https://{name}-{alias}.lambda-url.{REGION}.on.aws/"),
            settings: url.clone(),
        };
        f.urls.insert(alias.to_string(), u.clone());
        Ok(u)
    }

    async fn update_url(&self, name: &str, alias: &str, url: &UrlSettings) -> ApiResult<UrlState> {
        let op = "lambda:UpdateFunctionUrlConfig";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        let u = f
            .urls
            .get_mut(alias)
            .ok_or_else(|| not_found(op, "Function URL"))?;
        u.settings = url.clone();
        Ok(u.clone())
    }

    async fn delete_url(&self, name: &str, alias: &str) -> ApiResult<()> {
        let op = "lambda:DeleteFunctionUrlConfig";
        let mut s = self.enter(op)?;
        function_mut(&mut s, op, name)?.urls.remove(alias);
        Ok(())
    }

    async fn get_policy(&self, name: &str, alias: &str) -> ApiResult<Option<String>> {
        let op = "lambda:GetPolicy";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        let arn = format!("{}:{alias}", f.latest.arn);
        let statements: Vec<serde_json::Value> = f
            .permissions
            .get(alias)
            .into_iter()
            .flatten()
            .map(|p| {
                // The shape AWS reports: parameters become conditions.
                let condition = match (&p.function_url_auth_type, p.invoked_via_function_url) {
                    (Some(t), _) => {
                        serde_json::json!({"StringEquals": {"lambda:FunctionUrlAuthType": t}})
                    }
                    (None, true) => {
                        serde_json::json!({"Bool": {"lambda:InvokedViaFunctionUrl": "true"}})
                    }
                    _ => serde_json::Value::Null,
                };
                serde_json::json!({"Sid": p.sid, "Effect": "Allow", "Principal": p.principal,
                    "Action": p.action, "Resource": arn, "Condition": condition})
            })
            .collect();
        Ok((!statements.is_empty()).then(|| {
            serde_json::json!({"Version": "2012-10-17", "Id": "default", "Statement": statements})
                .to_string()
        }))
    }

    async fn add_permission(
        &self,
        name: &str,
        alias: &str,
        permission: &Permission,
    ) -> ApiResult<()> {
        let op = "lambda:AddPermission";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        if !f.aliases.contains_key(alias) {
            return Err(not_found(op, "Alias"));
        }
        let list = f.permissions.entry(alias.to_string()).or_default();
        // AWS refuses a second statement with the same id (the adapter
        // reports that as success); the fake keeps one.
        if !list.iter().any(|p| p.sid == permission.sid) {
            list.push(permission.clone());
        }
        Ok(())
    }

    async fn remove_permission(&self, name: &str, alias: &str, sid: &str) -> ApiResult<()> {
        let op = "lambda:RemovePermission";
        let mut s = self.enter(op)?;
        let f = function_mut(&mut s, op, name)?;
        if let Some(list) = f.permissions.get_mut(alias) {
            list.retain(|p| p.sid != sid);
        }
        Ok(())
    }

    async fn tag(&self, arn: &str, tags: &BTreeMap<String, String>) -> ApiResult<()> {
        let op = "lambda:TagResource";
        let mut s = self.enter(op)?;
        let name = arn.rsplit(':').next().unwrap_or_default().to_string();
        let f = function_mut(&mut s, op, &name)?;
        f.latest.tags.extend(tags.clone());
        Ok(())
    }

    async fn untag(&self, arn: &str, keys: &[String]) -> ApiResult<()> {
        let op = "lambda:UntagResource";
        let mut s = self.enter(op)?;
        let name = arn.rsplit(':').next().unwrap_or_default().to_string();
        let f = function_mut(&mut s, op, &name)?;
        for k in keys {
            f.latest.tags.remove(k);
        }
        Ok(())
    }

    async fn publish_layer(
        &self,
        layer: &str,
        _zip: Vec<u8>,
        _architectures: &[String],
        _runtimes: &[String],
        _description: &str,
    ) -> ApiResult<LayerVersion> {
        let mut s = self.enter("lambda:PublishLayerVersion")?;
        let n = s.layers.entry(layer.to_string()).or_insert(0);
        *n += 1;
        Ok(LayerVersion {
            arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{layer}:{n}"),
            version: *n,
        })
    }
}

fn check_published(
    op: &str,
    f: &FakeFunction,
    version: &str,
    weights: &BTreeMap<String, f64>,
) -> ApiResult<()> {
    for v in std::iter::once(version).chain(weights.keys().map(String::as_str)) {
        if !f.versions.iter().any(|p| p.version == v) {
            return Err(ApiError::new(
                op,
                "InvalidParameterValueException",
                format!("version {v} is not a published version"),
            ));
        }
    }
    Ok(())
}

impl IamApi for FakeAws {
    async fn get_role(&self, name: &str) -> ApiResult<Option<RoleState>> {
        let s = self.enter("iam:GetRole")?;
        Ok(s.roles.get(name).cloned())
    }

    async fn create_role(
        &self,
        name: &str,
        _trust_policy: &str,
        _description: &str,
        tags: &BTreeMap<String, String>,
    ) -> ApiResult<RoleState> {
        let op = "iam:CreateRole";
        let mut s = self.enter(op)?;
        if s.roles.contains_key(name) {
            return Err(ApiError::new(op, "EntityAlreadyExists", "role exists"));
        }
        let r = RoleState {
            arn: format!("arn:aws:iam::{ACCOUNT}:role/{name}"),
            tags: tags.clone(),
        };
        s.roles.insert(name.to_string(), r.clone());
        Ok(r)
    }

    async fn put_role_policy(
        &self,
        role: &str,
        policy_name: &str,
        document: &str,
    ) -> ApiResult<()> {
        let mut s = self.enter("iam:PutRolePolicy")?;
        s.policies.insert(
            (role.to_string(), policy_name.to_string()),
            document.to_string(),
        );
        Ok(())
    }

    async fn role_policies(&self, role: &str) -> ApiResult<Vec<String>> {
        let s = self.enter("iam:ListRolePolicies")?;
        let mut docs: Vec<String> = s
            .policies
            .iter()
            .filter(|((r, _), _)| r == role)
            .map(|(_, d)| d.clone())
            .collect();
        docs.extend(s.attached.get(role).cloned().unwrap_or_default());
        Ok(docs)
    }
}

impl ObjectStore for FakeAws {
    async fn put_object(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> ApiResult<()> {
        let mut s = self.enter("s3:PutObject")?;
        s.revision += 1;
        let seq = s.revision as i64;
        s.objects
            .insert((bucket.to_string(), key.to_string()), (bytes, seq));
        Ok(())
    }

    async fn list_objects(&self, bucket: &str, prefix: &str) -> ApiResult<Vec<StoredObject>> {
        let s = self.enter("s3:ListBucket")?;
        Ok(s.objects
            .iter()
            .filter(|((b, k), _)| b == bucket && k.starts_with(prefix))
            .map(|((_, k), (_, seq))| StoredObject {
                key: k.clone(),
                last_modified: *seq,
            })
            .collect())
    }

    async fn delete_objects(&self, bucket: &str, keys: &[String]) -> ApiResult<()> {
        let mut s = self.enter("s3:DeleteObject")?;
        for k in keys {
            s.objects.remove(&(bucket.to_string(), k.clone()));
        }
        Ok(())
    }
}

impl EcrApi for FakeAws {
    async fn get_repository(&self, name: &str) -> ApiResult<Option<Repository>> {
        let s = self.enter("ecr:DescribeRepositories")?;
        Ok(s.repositories.get(name).map(|(r, _)| r.clone()))
    }

    async fn create_repository(
        &self,
        name: &str,
        scan_on_push: bool,
        _tags: &BTreeMap<String, String>,
    ) -> ApiResult<Repository> {
        let op = "ecr:CreateRepository";
        let mut s = self.enter(op)?;
        if s.repositories.contains_key(name) {
            return Err(ApiError::new(
                op,
                "RepositoryAlreadyExistsException",
                format!("The repository with name '{name}' already exists"),
            ));
        }
        let repo = Repository {
            name: name.to_string(),
            uri: format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}"),
            scan_on_push,
        };
        s.repositories
            .insert(name.to_string(), (repo.clone(), None));
        Ok(repo)
    }

    async fn get_lifecycle_policy(&self, name: &str) -> ApiResult<Option<String>> {
        let s = self.enter("ecr:GetLifecyclePolicy")?;
        Ok(s.repositories.get(name).and_then(|(_, p)| p.clone()))
    }

    async fn put_lifecycle_policy(&self, name: &str, policy: &str) -> ApiResult<()> {
        let op = "ecr:PutLifecyclePolicy";
        let mut s = self.enter(op)?;
        let (_, p) = s.repositories.get_mut(name).ok_or_else(|| {
            ApiError::new(
                op,
                "RepositoryNotFoundException",
                format!("{name} not found"),
            )
        })?;
        *p = Some(policy.to_string());
        Ok(())
    }

    async fn authorization(&self) -> ApiResult<RegistryAuth> {
        let _s = self.enter("ecr:GetAuthorizationToken")?;
        Ok(RegistryAuth {
            credentials: crate::image::registry::Credentials {
                username: "AWS".into(),
                password: "fake-registry-password".into(),
            },
            endpoint: format!("https://{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"),
        })
    }

    /// Fails like a registry that refuses the credentials when a fault is
    /// queued for `registry:Push`.
    async fn push_layout(&self, target: &PushTarget) -> anyhow::Result<Pushed> {
        let mut s = self.enter("registry:Push")?;
        let repo = s
            .repositories
            .get(&target.repository)
            .map(|(r, _)| r.uri.clone())
            .ok_or_else(|| anyhow::anyhow!("name unknown: repository {}", target.repository))?;
        let uri = format!("{repo}@{}", target.digest);
        let new = !s.images.contains(&uri);
        if new {
            s.images.push(uri);
        }
        Ok(Pushed {
            manifest_digest: target.digest.clone(),
            uploaded: usize::from(new),
            skipped: usize::from(!new),
            bytes_uploaded: 0,
        })
    }
}
