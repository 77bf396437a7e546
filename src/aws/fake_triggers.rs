//! [`TriggerApi`] for the in-memory fake (tests only): an account without
//! any trigger resource. Reads find nothing; writes fail loudly, because
//! triggers are tested end to end against moto (`tests/it/triggers.rs`),
//! not against this fake.

use std::collections::BTreeMap;

use super::fake::FakeAws;
use super::triggers::{
    BucketNotifications, Caller, HttpApi, HttpCors, Integration, MappingSpec, MappingState,
    Permission, Route, ScheduleSpec, TriggerApi,
};
use super::{ApiError, ApiResult};

fn unmodelled<T>(operation: &str) -> ApiResult<T> {
    Err(ApiError::new(
        operation,
        "NotModelledByTheFake",
        "the in-memory fake has no trigger resources; trigger writes are tested against moto",
    ))
}

impl TriggerApi for FakeAws {
    async fn caller(&self) -> ApiResult<Caller> {
        Ok(Caller {
            partition: "aws".into(),
            account: "123456789012".into(),
            region: crate::aws::LambdaApi::region(self),
        })
    }
    async fn list_mappings(&self, _: &str) -> ApiResult<Vec<MappingState>> {
        Ok(Vec::new())
    }
    async fn get_mapping(&self, _: &str) -> ApiResult<Option<MappingState>> {
        Ok(None)
    }
    async fn create_mapping(
        &self,
        _: &str,
        _: &MappingSpec,
        _: &BTreeMap<String, String>,
    ) -> ApiResult<MappingState> {
        unmodelled("lambda:CreateEventSourceMapping")
    }
    async fn update_mapping(&self, _: &str, _: &MappingSpec) -> ApiResult<MappingState> {
        unmodelled("lambda:UpdateEventSourceMapping")
    }
    async fn delete_mapping(&self, _: &str) -> ApiResult<()> {
        unmodelled("lambda:DeleteEventSourceMapping")
    }
    async fn list_trigger_permissions(&self, _: &str) -> ApiResult<Vec<Permission>> {
        Ok(Vec::new())
    }
    async fn add_trigger_permission(&self, _: &str, _: &Permission) -> ApiResult<()> {
        unmodelled("lambda:AddPermission")
    }
    async fn remove_trigger_permission(&self, _: &str, _: &str) -> ApiResult<()> {
        unmodelled("lambda:RemovePermission")
    }
    async fn list_schedules(&self, _: &str) -> ApiResult<Vec<String>> {
        Ok(Vec::new())
    }
    async fn get_schedule(&self, _: &str) -> ApiResult<Option<ScheduleSpec>> {
        Ok(None)
    }
    async fn create_schedule(&self, _: &ScheduleSpec) -> ApiResult<()> {
        unmodelled("scheduler:CreateSchedule")
    }
    async fn update_schedule(&self, _: &ScheduleSpec) -> ApiResult<()> {
        unmodelled("scheduler:UpdateSchedule")
    }
    async fn delete_schedule(&self, _: &str) -> ApiResult<()> {
        unmodelled("scheduler:DeleteSchedule")
    }
    async fn get_role_policy(&self, _: &str, _: &str) -> ApiResult<Option<String>> {
        Ok(None)
    }
    async fn delete_role_policy(&self, _: &str, _: &str) -> ApiResult<()> {
        unmodelled("iam:DeleteRolePolicy")
    }
    async fn delete_role(&self, _: &str) -> ApiResult<()> {
        unmodelled("iam:DeleteRole")
    }
    async fn get_notifications(&self, _: &str) -> ApiResult<BucketNotifications> {
        Ok(BucketNotifications::default())
    }
    async fn put_notifications(&self, _: &str, _: &BucketNotifications) -> ApiResult<()> {
        unmodelled("s3:PutBucketNotificationConfiguration")
    }
    async fn list_http_apis(&self) -> ApiResult<Vec<HttpApi>> {
        Ok(Vec::new())
    }
    async fn create_http_api(
        &self,
        _: &str,
        _: Option<&HttpCors>,
        _: &BTreeMap<String, String>,
    ) -> ApiResult<HttpApi> {
        unmodelled("apigateway:POST")
    }
    async fn update_http_api_cors(&self, _: &str, _: Option<&HttpCors>) -> ApiResult<()> {
        unmodelled("apigateway:PATCH")
    }
    async fn delete_http_api(&self, _: &str) -> ApiResult<()> {
        unmodelled("apigateway:DELETE")
    }
    async fn list_integrations(&self, _: &str) -> ApiResult<Vec<Integration>> {
        Ok(Vec::new())
    }
    async fn create_integration(&self, _: &str, _: &str, _: &str) -> ApiResult<Integration> {
        unmodelled("apigateway:POST")
    }
    async fn update_integration(&self, _: &str, _: &str, _: &str, _: &str) -> ApiResult<()> {
        unmodelled("apigateway:PATCH")
    }
    async fn list_routes(&self, _: &str) -> ApiResult<Vec<Route>> {
        Ok(Vec::new())
    }
    async fn create_route(&self, _: &str, _: &str, _: &str) -> ApiResult<()> {
        unmodelled("apigateway:POST")
    }
    async fn delete_route(&self, _: &str, _: &str) -> ApiResult<()> {
        unmodelled("apigateway:DELETE")
    }
    async fn list_stages(&self, _: &str) -> ApiResult<Vec<String>> {
        Ok(Vec::new())
    }
    async fn create_stage(&self, _: &str, _: &str) -> ApiResult<()> {
        unmodelled("apigateway:POST")
    }
}
