//! [`TriggerApi`] on the AWS SDK: Lambda (event source mappings,
//! permissions), EventBridge Scheduler, S3 notifications, API Gateway v2
//! and IAM inline policies. Errors keep the operation's IAM action name.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_apigatewayv2::types as gt;
use aws_sdk_lambda::types as lt;
use aws_sdk_s3::types as st;
use aws_sdk_scheduler::types as sc;

use super::sdk::{SdkAws, api_err};
use super::triggers::{
    BucketNotifications, Caller, HttpApi, HttpCors, Integration, MappingSpec, MappingState,
    Notification, NotificationKind, Permission, Route, ScheduleSpec, TriggerApi,
};
use super::{ApiError, ApiResult};

fn not_found<T>(e: ApiError) -> ApiResult<Option<T>> {
    if e.is_not_found() { Ok(None) } else { Err(e) }
}

/// The fields of `EventSourceMappingConfiguration` and of the
/// Get/Create/Update outputs, which share their accessors.
macro_rules! mapping_state {
    ($c:expr) => {{
        let c = $c;
        MappingState {
            uuid: c.uuid().unwrap_or_default().to_string(),
            arn: c.event_source_mapping_arn().unwrap_or_default().to_string(),
            function_arn: c.function_arn().unwrap_or_default().to_string(),
            state: c.state().unwrap_or_default().to_string(),
            spec: MappingSpec {
                event_source_arn: c.event_source_arn().unwrap_or_default().to_string(),
                batch_size: c.batch_size(),
                maximum_batching_window: c.maximum_batching_window_in_seconds(),
                parallelization_factor: c.parallelization_factor(),
                starting_position: c.starting_position().map(|p| p.as_str().to_string()),
                starting_position_timestamp: c.starting_position_timestamp().map(|t| t.secs()),
                bisect_batch_on_function_error: c.bisect_batch_on_function_error(),
                maximum_retry_attempts: c.maximum_retry_attempts(),
                maximum_record_age: c.maximum_record_age_in_seconds(),
                tumbling_window: c.tumbling_window_in_seconds(),
                on_failure: c
                    .destination_config()
                    .and_then(|d| d.on_failure())
                    .and_then(|f| f.destination())
                    .filter(|d| !d.is_empty())
                    .map(str::to_string),
                maximum_concurrency: c.scaling_config().and_then(|s| s.maximum_concurrency()),
                report_batch_item_failures: c
                    .function_response_types()
                    .contains(&lt::FunctionResponseType::ReportBatchItemFailures),
                filters: c
                    .filter_criteria()
                    .map(|f| {
                        f.filters()
                            .iter()
                            .filter_map(|p| p.pattern())
                            .map(normalise_json)
                            .collect()
                    })
                    .unwrap_or_default(),
                enabled: !matches!(c.state(), Some("Disabled" | "Disabling")),
            },
            tags: BTreeMap::new(),
        }
    }};
}

/// JSON text in one canonical form (serde_json sorts keys), so patterns
/// compare equal whatever the spacing AWS gives back.
fn normalise_json(s: &str) -> String {
    serde_json::from_str::<serde_json::Value>(s)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// The request fields shared by create and update.
macro_rules! mapping_fields {
    // `$clear_filters`: send the filter list even when empty (an update
    // clears remote filters that way; a create has none to clear).
    ($b:expr, $s:expr, $clear_filters:expr) => {{
        let s: &MappingSpec = $s;
        let mut b = $b
            .set_batch_size(s.batch_size)
            .set_maximum_batching_window_in_seconds(s.maximum_batching_window)
            .set_parallelization_factor(s.parallelization_factor)
            .set_bisect_batch_on_function_error(s.bisect_batch_on_function_error)
            .set_maximum_retry_attempts(s.maximum_retry_attempts)
            .set_maximum_record_age_in_seconds(s.maximum_record_age)
            .set_tumbling_window_in_seconds(s.tumbling_window)
            .enabled(s.enabled)
            .set_function_response_types(Some(if s.report_batch_item_failures {
                vec![lt::FunctionResponseType::ReportBatchItemFailures]
            } else {
                vec![]
            }))
            .set_filter_criteria($clear_filters.then(|| {
                lt::FilterCriteria::builder()
                    .set_filters(Some(
                        s.filters
                            .iter()
                            .map(|p| lt::Filter::builder().pattern(p).build())
                            .collect(),
                    ))
                    .build()
            }));
        if let Some(d) = &s.on_failure {
            b = b.destination_config(
                lt::DestinationConfig::builder()
                    .on_failure(lt::OnFailure::builder().destination(d).build())
                    .build(),
            );
        }
        if let Some(n) = s.maximum_concurrency {
            let scaling = lt::ScalingConfig::builder();
            b = b.scaling_config(if n > 0 {
                scaling.maximum_concurrency(n).build()
            } else {
                scaling.build()
            });
        }
        b
    }};
}

fn statement_permissions(policy: &str) -> Vec<Permission> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else {
        return Vec::new();
    };
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        v @ serde_json::Value::Object(_) => vec![v.clone()],
        _ => Vec::new(),
    };
    statements
        .iter()
        .map(|s| {
            let principal = match &s["Principal"] {
                serde_json::Value::String(p) => p.clone(),
                v => v["Service"].as_str().unwrap_or_default().to_string(),
            };
            let cond = &s["Condition"];
            let source_arn = cond["ArnLike"]["AWS:SourceArn"]
                .as_str()
                .or_else(|| cond["ArnEquals"]["AWS:SourceArn"].as_str())
                .map(str::to_string);
            let source_account = cond["StringEquals"]["AWS:SourceAccount"]
                .as_str()
                .map(str::to_string);
            Permission {
                sid: s["Sid"].as_str().unwrap_or_default().to_string(),
                principal,
                source_arn,
                source_account,
            }
        })
        .collect()
}

/// IAM returns policy documents URL-encoded (RFC 3986).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn to_gw_cors(c: &HttpCors) -> gt::Cors {
    gt::Cors::builder()
        .set_allow_origins(Some(c.allow_origins.clone()))
        .set_allow_methods(Some(c.allow_methods.clone()))
        .set_allow_headers(Some(c.allow_headers.clone()))
        .set_expose_headers(Some(c.expose_headers.clone()))
        .allow_credentials(c.allow_credentials)
        .set_max_age(c.max_age.map(|m| m as i32))
        .build()
}

fn from_gw_cors(c: &gt::Cors) -> HttpCors {
    HttpCors {
        allow_origins: c.allow_origins().to_vec(),
        allow_methods: c.allow_methods().to_vec(),
        allow_headers: c.allow_headers().to_vec(),
        expose_headers: c.expose_headers().to_vec(),
        allow_credentials: c.allow_credentials().unwrap_or(false),
        max_age: c.max_age().filter(|m| *m >= 0).map(|m| m as u32),
    }
}

fn filter_of(f: Option<&st::NotificationConfigurationFilter>) -> (Option<String>, Option<String>) {
    let mut prefix = None;
    let mut suffix = None;
    if let Some(key) = f.and_then(|f| f.key()) {
        for rule in key.filter_rules() {
            let value = rule.value().map(str::to_string);
            match rule.name().map(|n| n.as_str().to_ascii_lowercase()) {
                Some(n) if n == "prefix" => prefix = value,
                Some(n) if n == "suffix" => suffix = value,
                _ => {}
            }
        }
    }
    (prefix, suffix)
}

fn filter_for(n: &Notification) -> Option<st::NotificationConfigurationFilter> {
    let mut rules = Vec::new();
    if let Some(p) = &n.prefix {
        rules.push(
            st::FilterRule::builder()
                .name(st::FilterRuleName::Prefix)
                .value(p)
                .build(),
        );
    }
    if let Some(s) = &n.suffix {
        rules.push(
            st::FilterRule::builder()
                .name(st::FilterRuleName::Suffix)
                .value(s)
                .build(),
        );
    }
    (!rules.is_empty()).then(|| {
        st::NotificationConfigurationFilter::builder()
            .key(
                st::S3KeyFilter::builder()
                    .set_filter_rules(Some(rules))
                    .build(),
            )
            .build()
    })
}

fn invalid(op: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(op, "InvalidRequest", e.to_string())
}

impl TriggerApi for SdkAws {
    /// Asked once per connection: the deploy's identity check and each
    /// function's trigger plan share the answer.
    async fn caller(&self) -> ApiResult<Caller> {
        self.caller
            .get_or_try_init(|| async {
                let o = self
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| api_err("sts:GetCallerIdentity", e))?;
                let partition = o
                    .arn()
                    .and_then(|a| a.split(':').nth(1))
                    .unwrap_or("aws")
                    .to_string();
                Ok(Caller {
                    partition,
                    account: o.account().unwrap_or_default().to_string(),
                    region: self.region.clone(),
                })
            })
            .await
            .cloned()
    }

    async fn list_mappings(&self, function: &str) -> ApiResult<Vec<MappingState>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .lambda
                .list_event_source_mappings()
                .function_name(function)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| api_err("lambda:ListEventSourceMappings", e))?;
            for m in page.event_source_mappings() {
                out.push(mapping_state!(m));
            }
            match page.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        for m in &mut out {
            if m.arn.is_empty() {
                continue;
            }
            let tags = self
                .lambda
                .list_tags()
                .resource(&m.arn)
                .send()
                .await
                .map_err(|e| api_err("lambda:ListTags", e))?;
            m.tags = tags
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
        }
        Ok(out)
    }

    async fn get_mapping(&self, uuid: &str) -> ApiResult<Option<MappingState>> {
        match self
            .lambda
            .get_event_source_mapping()
            .uuid(uuid)
            .send()
            .await
        {
            Ok(o) => Ok(Some(mapping_state!(&o))),
            Err(e) => not_found(api_err("lambda:GetEventSourceMapping", e)),
        }
    }

    async fn create_mapping(
        &self,
        function: &str,
        spec: &MappingSpec,
        tags: &BTreeMap<String, String>,
    ) -> ApiResult<MappingState> {
        let b = self
            .lambda
            .create_event_source_mapping()
            .function_name(function)
            .event_source_arn(&spec.event_source_arn)
            .set_starting_position(
                spec.starting_position
                    .as_deref()
                    .map(lt::EventSourcePosition::from),
            )
            .set_starting_position_timestamp(
                spec.starting_position_timestamp
                    .map(aws_smithy_types::DateTime::from_secs),
            )
            .set_tags(Some(tags.clone().into_iter().collect::<HashMap<_, _>>()));
        let out = mapping_fields!(b, spec, !spec.filters.is_empty())
            .send()
            .await
            .map_err(|e| api_err("lambda:CreateEventSourceMapping", e))?;
        Ok(mapping_state!(&out))
    }

    async fn update_mapping(&self, uuid: &str, spec: &MappingSpec) -> ApiResult<MappingState> {
        let b = self.lambda.update_event_source_mapping().uuid(uuid);
        let out = mapping_fields!(b, spec, true)
            .send()
            .await
            .map_err(|e| api_err("lambda:UpdateEventSourceMapping", e))?;
        Ok(mapping_state!(&out))
    }

    async fn delete_mapping(&self, uuid: &str) -> ApiResult<()> {
        match self
            .lambda
            .delete_event_source_mapping()
            .uuid(uuid)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => not_found::<()>(api_err("lambda:DeleteEventSourceMapping", e)).map(|_| ()),
        }
    }

    async fn list_trigger_permissions(&self, function: &str) -> ApiResult<Vec<Permission>> {
        match self
            .lambda
            .get_policy()
            .function_name(function)
            .send()
            .await
        {
            Ok(o) => Ok(statement_permissions(o.policy().unwrap_or_default())),
            Err(e) => Ok(not_found::<()>(api_err("lambda:GetPolicy", e))?
                .map(|_| Vec::new())
                .unwrap_or_default()),
        }
    }

    async fn add_trigger_permission(&self, function: &str, p: &Permission) -> ApiResult<()> {
        self.lambda
            .add_permission()
            .function_name(function)
            .statement_id(&p.sid)
            .action("lambda:InvokeFunction")
            .principal(&p.principal)
            .set_source_arn(p.source_arn.clone())
            .set_source_account(p.source_account.clone())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_err("lambda:AddPermission", e))
    }

    async fn remove_trigger_permission(&self, function: &str, sid: &str) -> ApiResult<()> {
        match self
            .lambda
            .remove_permission()
            .function_name(function)
            .statement_id(sid)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => not_found::<()>(api_err("lambda:RemovePermission", e)).map(|_| ()),
        }
    }

    async fn list_schedules(&self, prefix: &str) -> ApiResult<Vec<String>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .scheduler
                .list_schedules()
                .name_prefix(prefix)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| api_err("scheduler:ListSchedules", e))?;
            for s in page.schedules() {
                if let Some(n) = s.name()
                    && n.starts_with(prefix)
                    && s.group_name().is_none_or(|g| g == "default")
                {
                    out.push(n.to_string());
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn get_schedule(&self, name: &str) -> ApiResult<Option<ScheduleSpec>> {
        let o = match self.scheduler.get_schedule().name(name).send().await {
            Ok(o) => o,
            Err(e) => return not_found(api_err("scheduler:GetSchedule", e)),
        };
        let target = o.target();
        let retry = target.and_then(|t| t.retry_policy());
        Ok(Some(ScheduleSpec {
            name: o.name().unwrap_or_default().to_string(),
            description: o.description().unwrap_or_default().to_string(),
            expression: o.schedule_expression().unwrap_or_default().to_string(),
            timezone: o.schedule_expression_timezone().map(str::to_string),
            flexible_window: o
                .flexible_time_window()
                .filter(|w| w.mode() == &sc::FlexibleTimeWindowMode::Flexible)
                .and_then(|w| w.maximum_window_in_minutes()),
            target_arn: target.map(|t| t.arn().to_string()).unwrap_or_default(),
            role_arn: target.map(|t| t.role_arn().to_string()).unwrap_or_default(),
            input: target.and_then(|t| t.input()).map(str::to_string),
            maximum_event_age: retry.and_then(|r| r.maximum_event_age_in_seconds()),
            maximum_retry_attempts: retry.and_then(|r| r.maximum_retry_attempts()),
            enabled: o.state() != Some(&sc::ScheduleState::Disabled),
        }))
    }

    async fn create_schedule(&self, spec: &ScheduleSpec) -> ApiResult<()> {
        let (window, target) =
            schedule_parts(spec).map_err(|e| invalid("scheduler:CreateSchedule", e))?;
        self.scheduler
            .create_schedule()
            .name(&spec.name)
            .description(&spec.description)
            .schedule_expression(&spec.expression)
            .set_schedule_expression_timezone(spec.timezone.clone())
            .flexible_time_window(window)
            .target(target)
            .state(schedule_state(spec.enabled))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_err("scheduler:CreateSchedule", e))
    }

    async fn update_schedule(&self, spec: &ScheduleSpec) -> ApiResult<()> {
        let (window, target) =
            schedule_parts(spec).map_err(|e| invalid("scheduler:UpdateSchedule", e))?;
        self.scheduler
            .update_schedule()
            .name(&spec.name)
            .description(&spec.description)
            .schedule_expression(&spec.expression)
            .set_schedule_expression_timezone(spec.timezone.clone())
            .flexible_time_window(window)
            .target(target)
            .state(schedule_state(spec.enabled))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_err("scheduler:UpdateSchedule", e))
    }

    async fn delete_schedule(&self, name: &str) -> ApiResult<()> {
        match self.scheduler.delete_schedule().name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) => not_found::<()>(api_err("scheduler:DeleteSchedule", e)).map(|_| ()),
        }
    }

    async fn get_role_policy(&self, role: &str, policy: &str) -> ApiResult<Option<String>> {
        match self
            .iam
            .get_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(o) => Ok(Some(percent_decode(o.policy_document()))),
            Err(e) => not_found(api_err("iam:GetRolePolicy", e)),
        }
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> ApiResult<()> {
        match self
            .iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => not_found::<()>(api_err("iam:DeleteRolePolicy", e)).map(|_| ()),
        }
    }

    async fn delete_role(&self, role: &str) -> ApiResult<()> {
        match self.iam.delete_role().role_name(role).send().await {
            Ok(_) => Ok(()),
            Err(e) => not_found::<()>(api_err("iam:DeleteRole", e)).map(|_| ()),
        }
    }

    async fn get_notifications(&self, bucket: &str) -> ApiResult<BucketNotifications> {
        let o = self
            .s3
            .get_bucket_notification_configuration()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| api_err("s3:GetBucketNotification", e))?;
        let mut entries = Vec::new();
        let events = |e: &[st::Event]| e.iter().map(|e| e.as_str().to_string()).collect();
        for c in o.lambda_function_configurations() {
            let (prefix, suffix) = filter_of(c.filter());
            entries.push(Notification {
                id: c.id().map(str::to_string),
                kind: NotificationKind::Lambda,
                arn: c.lambda_function_arn().to_string(),
                events: events(c.events()),
                prefix,
                suffix,
            });
        }
        for c in o.queue_configurations() {
            let (prefix, suffix) = filter_of(c.filter());
            entries.push(Notification {
                id: c.id().map(str::to_string),
                kind: NotificationKind::Queue,
                arn: c.queue_arn().to_string(),
                events: events(c.events()),
                prefix,
                suffix,
            });
        }
        for c in o.topic_configurations() {
            let (prefix, suffix) = filter_of(c.filter());
            entries.push(Notification {
                id: c.id().map(str::to_string),
                kind: NotificationKind::Topic,
                arn: c.topic_arn().to_string(),
                events: events(c.events()),
                prefix,
                suffix,
            });
        }
        Ok(BucketNotifications {
            entries,
            eventbridge: o.event_bridge_configuration().is_some(),
        })
    }

    async fn put_notifications(&self, bucket: &str, n: &BucketNotifications) -> ApiResult<()> {
        let op = "s3:PutBucketNotification";
        let mut lambdas = Vec::new();
        let mut queues = Vec::new();
        let mut topics = Vec::new();
        for e in &n.entries {
            let events: Vec<st::Event> = e
                .events
                .iter()
                .map(|s| st::Event::from(s.as_str()))
                .collect();
            match e.kind {
                NotificationKind::Lambda => lambdas.push(
                    st::LambdaFunctionConfiguration::builder()
                        .set_id(e.id.clone())
                        .lambda_function_arn(&e.arn)
                        .set_events(Some(events))
                        .set_filter(filter_for(e))
                        .build()
                        .map_err(|x| invalid(op, x))?,
                ),
                NotificationKind::Queue => queues.push(
                    st::QueueConfiguration::builder()
                        .set_id(e.id.clone())
                        .queue_arn(&e.arn)
                        .set_events(Some(events))
                        .set_filter(filter_for(e))
                        .build()
                        .map_err(|x| invalid(op, x))?,
                ),
                NotificationKind::Topic => topics.push(
                    st::TopicConfiguration::builder()
                        .set_id(e.id.clone())
                        .topic_arn(&e.arn)
                        .set_events(Some(events))
                        .set_filter(filter_for(e))
                        .build()
                        .map_err(|x| invalid(op, x))?,
                ),
            }
        }
        let config = st::NotificationConfiguration::builder()
            .set_lambda_function_configurations(Some(lambdas))
            .set_queue_configurations(Some(queues))
            .set_topic_configurations(Some(topics))
            .set_event_bridge_configuration(
                n.eventbridge
                    .then(|| st::EventBridgeConfiguration::builder().build()),
            )
            .build();
        self.s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(config)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_err(op, e))
    }

    async fn list_http_apis(&self) -> ApiResult<Vec<HttpApi>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .apigw
                .get_apis()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| api_err("apigateway:GET", e))?;
            for a in page.items() {
                out.push(HttpApi {
                    id: a.api_id().unwrap_or_default().to_string(),
                    name: a.name().unwrap_or_default().to_string(),
                    endpoint: a.api_endpoint().unwrap_or_default().to_string(),
                    tags: a
                        .tags()
                        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default(),
                    cors: a.cors_configuration().map(from_gw_cors),
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn create_http_api(
        &self,
        name: &str,
        cors: Option<&HttpCors>,
        tags: &BTreeMap<String, String>,
    ) -> ApiResult<HttpApi> {
        let o = self
            .apigw
            .create_api()
            .name(name)
            .protocol_type(gt::ProtocolType::Http)
            .set_cors_configuration(cors.map(to_gw_cors))
            .set_tags(Some(tags.clone().into_iter().collect::<HashMap<_, _>>()))
            .send()
            .await
            .map_err(|e| api_err("apigateway:POST", e))?;
        Ok(HttpApi {
            id: o.api_id().unwrap_or_default().to_string(),
            name: name.to_string(),
            endpoint: o.api_endpoint().unwrap_or_default().to_string(),
            tags: tags.clone(),
            cors: cors.cloned(),
        })
    }

    async fn update_http_api_cors(&self, api: &str, cors: Option<&HttpCors>) -> ApiResult<()> {
        match cors {
            Some(c) => self
                .apigw
                .update_api()
                .api_id(api)
                .cors_configuration(to_gw_cors(c))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| api_err("apigateway:PATCH", e)),
            None => self
                .apigw
                .delete_cors_configuration()
                .api_id(api)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| api_err("apigateway:DELETE", e)),
        }
    }

    async fn delete_http_api(&self, api: &str) -> ApiResult<()> {
        match self.apigw.delete_api().api_id(api).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = api_err("apigateway:DELETE", e);
                if e.is("NotFoundException") {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn list_integrations(&self, api: &str) -> ApiResult<Vec<Integration>> {
        let o = self
            .apigw
            .get_integrations()
            .api_id(api)
            .send()
            .await
            .map_err(|e| api_err("apigateway:GET", e))?;
        Ok(o.items()
            .iter()
            .map(|i| Integration {
                id: i.integration_id().unwrap_or_default().to_string(),
                uri: i.integration_uri().unwrap_or_default().to_string(),
                payload_format: i.payload_format_version().unwrap_or_default().to_string(),
            })
            .collect())
    }

    async fn create_integration(
        &self,
        api: &str,
        uri: &str,
        payload_format: &str,
    ) -> ApiResult<Integration> {
        let o = self
            .apigw
            .create_integration()
            .api_id(api)
            .integration_type(gt::IntegrationType::AwsProxy)
            .integration_uri(uri)
            .payload_format_version(payload_format)
            .send()
            .await
            .map_err(|e| api_err("apigateway:POST", e))?;
        Ok(Integration {
            id: o.integration_id().unwrap_or_default().to_string(),
            uri: uri.to_string(),
            payload_format: payload_format.to_string(),
        })
    }

    async fn update_integration(
        &self,
        api: &str,
        id: &str,
        uri: &str,
        payload_format: &str,
    ) -> ApiResult<()> {
        self.apigw
            .update_integration()
            .api_id(api)
            .integration_id(id)
            .integration_uri(uri)
            .payload_format_version(payload_format)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_err("apigateway:PATCH", e))
    }

    async fn list_routes(&self, api: &str) -> ApiResult<Vec<Route>> {
        let o = self
            .apigw
            .get_routes()
            .api_id(api)
            .send()
            .await
            .map_err(|e| api_err("apigateway:GET", e))?;
        Ok(o.items()
            .iter()
            .map(|r| Route {
                id: r.route_id().unwrap_or_default().to_string(),
                key: r.route_key().unwrap_or_default().to_string(),
                target: r.target().map(str::to_string),
            })
            .collect())
    }

    async fn create_route(&self, api: &str, key: &str, target: &str) -> ApiResult<()> {
        self.apigw
            .create_route()
            .api_id(api)
            .route_key(key)
            .target(target)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_err("apigateway:POST", e))
    }

    async fn delete_route(&self, api: &str, id: &str) -> ApiResult<()> {
        self.apigw
            .delete_route()
            .api_id(api)
            .route_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_err("apigateway:DELETE", e))
    }

    async fn list_stages(&self, api: &str) -> ApiResult<Vec<String>> {
        let o = self
            .apigw
            .get_stages()
            .api_id(api)
            .send()
            .await
            .map_err(|e| api_err("apigateway:GET", e))?;
        Ok(o.items()
            .iter()
            .filter_map(|s| s.stage_name().map(str::to_string))
            .collect())
    }

    async fn create_stage(&self, api: &str, name: &str) -> ApiResult<()> {
        self.apigw
            .create_stage()
            .api_id(api)
            .stage_name(name)
            .auto_deploy(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_err("apigateway:POST", e))
    }
}

fn schedule_state(enabled: bool) -> sc::ScheduleState {
    if enabled {
        sc::ScheduleState::Enabled
    } else {
        sc::ScheduleState::Disabled
    }
}

fn schedule_parts(
    spec: &ScheduleSpec,
) -> Result<(sc::FlexibleTimeWindow, sc::Target), aws_sdk_scheduler::error::BuildError> {
    let window = match spec.flexible_window {
        Some(m) => sc::FlexibleTimeWindow::builder()
            .mode(sc::FlexibleTimeWindowMode::Flexible)
            .maximum_window_in_minutes(m)
            .build()?,
        None => sc::FlexibleTimeWindow::builder()
            .mode(sc::FlexibleTimeWindowMode::Off)
            .build()?,
    };
    let retry =
        (spec.maximum_event_age.is_some() || spec.maximum_retry_attempts.is_some()).then(|| {
            sc::RetryPolicy::builder()
                .set_maximum_event_age_in_seconds(spec.maximum_event_age)
                .set_maximum_retry_attempts(spec.maximum_retry_attempts)
                .build()
        });
    let target = sc::Target::builder()
        .arn(&spec.target_arn)
        .role_arn(&spec.role_arn)
        .set_input(spec.input.clone())
        .set_retry_policy(retry)
        .build()?;
    Ok((window, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_documents_are_decoded() {
        assert_eq!(
            percent_decode("%7B%22a%22%3A%20%22b%2Fc%22%7D"),
            r#"{"a": "b/c"}"#
        );
        assert_eq!(percent_decode("plain%"), "plain%");
    }

    #[test]
    fn policy_statements_are_read() {
        let p = r#"{"Version":"2012-10-17","Statement":[{"Sid":"cargo-fn-s3-up","Effect":"Allow",
            "Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction",
            "Condition":{"StringEquals":{"AWS:SourceAccount":"123456789012"},
            "ArnLike":{"AWS:SourceArn":"arn:aws:s3:::b"}}}]}"#;
        let s = statement_permissions(p);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].sid, "cargo-fn-s3-up");
        assert_eq!(s[0].principal, "s3.amazonaws.com");
        assert_eq!(s[0].source_arn.as_deref(), Some("arn:aws:s3:::b"));
        assert_eq!(s[0].source_account.as_deref(), Some("123456789012"));
    }
}
