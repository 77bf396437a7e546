//! The CloudWatch reads a gradual rollout makes to judge health: the state
//! of named alarms (DescribeAlarms) and sums of Lambda's own metrics
//! (GetMetricData), behind [`CloudWatchApi`], with the SDK adapter
//! (aws-sdk-cloudwatch) on [`SdkAws`].
//!
//! Lambda publishes `Invocations`, `Errors` and `Throttles` in the
//! `AWS/Lambda` namespace per function (`FunctionName`), per version or
//! alias (`FunctionName` + `Resource` = `name:qualifier`) and, for calls
//! through an alias, per version the alias routed to (`FunctionName` +
//! `Resource` = `name:alias` + `ExecutedVersion`): the last set is what
//! tells the new version's health apart while an alias splits traffic.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    AlarmType, Dimension, Metric, MetricDataQuery, MetricStat, ScanBy,
};

use super::ApiResult;
use super::sdk::{SdkAws, api_err};

pub const LAMBDA_NAMESPACE: &str = "AWS/Lambda";
/// DescribeAlarms takes at most 100 names per call.
const ALARMS_PER_CALL: usize = 100;
/// GetMetricData takes at most 500 queries per call.
const QUERIES_PER_CALL: usize = 500;

/// One metric to sum: a name in `AWS/Lambda` and its exact dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    pub metric: String,
    pub dimensions: Vec<(String, String)>,
}

impl MetricQuery {
    /// `metric` of the calls an alias routed to `version`.
    pub fn executed_version(metric: &str, function: &str, alias: &str, version: &str) -> Self {
        MetricQuery {
            metric: metric.to_string(),
            dimensions: vec![
                ("FunctionName".into(), function.to_string()),
                ("Resource".into(), format!("{function}:{alias}")),
                ("ExecutedVersion".into(), version.to_string()),
            ],
        }
    }
}

#[allow(async_fn_in_trait)] // used from one task
pub trait CloudWatchApi {
    /// The state (`OK`, `ALARM`, `INSUFFICIENT_DATA`) of each named metric
    /// or composite alarm; names that do not exist are absent.
    async fn alarm_states(&self, names: &[String]) -> ApiResult<BTreeMap<String, String>>;
    /// The Sum of each query over `[start, end)` in one-minute periods,
    /// added up; in the order of `queries` (0 where there is no data).
    async fn metric_sums(
        &self,
        queries: &[MetricQuery],
        start: SystemTime,
        end: SystemTime,
    ) -> ApiResult<Vec<f64>>;
}

impl CloudWatchApi for SdkAws {
    async fn alarm_states(&self, names: &[String]) -> ApiResult<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for chunk in names.chunks(ALARMS_PER_CALL) {
            let mut token = None;
            loop {
                let page = self
                    .cloudwatch
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.to_vec()))
                    .alarm_types(AlarmType::MetricAlarm)
                    .alarm_types(AlarmType::CompositeAlarm)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| api_err("cloudwatch:DescribeAlarms", e))?;
                for a in page.metric_alarms() {
                    if let (Some(n), Some(s)) = (a.alarm_name(), a.state_value()) {
                        out.insert(n.to_string(), s.as_str().to_string());
                    }
                }
                for a in page.composite_alarms() {
                    if let (Some(n), Some(s)) = (a.alarm_name(), a.state_value()) {
                        out.insert(n.to_string(), s.as_str().to_string());
                    }
                }
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn metric_sums(
        &self,
        queries: &[MetricQuery],
        start: SystemTime,
        end: SystemTime,
    ) -> ApiResult<Vec<f64>> {
        let mut sums = vec![0.0; queries.len()];
        for (chunk_no, chunk) in queries.chunks(QUERIES_PER_CALL).enumerate() {
            let base = chunk_no * QUERIES_PER_CALL;
            let built: Vec<MetricDataQuery> = chunk
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    let metric = Metric::builder()
                        .namespace(LAMBDA_NAMESPACE)
                        .metric_name(&q.metric)
                        .set_dimensions(Some(
                            q.dimensions
                                .iter()
                                .map(|(n, v)| Dimension::builder().name(n).value(v).build())
                                .collect(),
                        ))
                        .build();
                    MetricDataQuery::builder()
                        .id(format!("q{}", base + i))
                        .metric_stat(
                            MetricStat::builder()
                                .metric(metric)
                                .period(60)
                                .stat("Sum")
                                .build(),
                        )
                        .return_data(true)
                        .build()
                })
                .collect();
            let mut token = None;
            loop {
                let page = self
                    .cloudwatch
                    .get_metric_data()
                    .set_metric_data_queries(Some(built.clone()))
                    .start_time(DateTime::from(start))
                    .end_time(DateTime::from(end))
                    .scan_by(ScanBy::TimestampDescending)
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| api_err("cloudwatch:GetMetricData", e))?;
                for r in page.metric_data_results() {
                    let index = r
                        .id()
                        .and_then(|id| id.strip_prefix('q'))
                        .and_then(|n| n.parse::<usize>().ok());
                    if let Some(slot) = index.and_then(|i| sums.get_mut(i)) {
                        *slot += r.values().iter().sum::<f64>();
                    }
                }
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(sums)
    }
}
