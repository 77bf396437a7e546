//! API Gateway HTTP APIs: one API per trigger, tagged with the function
//! and trigger, its CORS, integration with the alias, routes, stage and
//! the execute-api permission. A new API's id is only known during
//! execution, so its steps travel together as one [`HttpApiChange`].

use std::collections::BTreeMap;

use anyhow::Result;

use super::{
    FUNCTION_TAG, TRIGGER_TAG, Target, TriggerChange, TriggerPlan, add_permission, permission_sid,
    same_permission,
};
use crate::aws::TriggerApi;
use crate::aws::triggers::{HttpApi, HttpCors, Integration, Permission, Route};
use crate::config::triggers::HttpApiTrigger;
use crate::config::{Trigger, TriggerKind};
use crate::deploy::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::ui::Ui;

/// Everything to bring one HTTP API in line (the API id of a new API is
/// only known during execution, so its steps travel together).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpApiChange {
    pub trigger: String,
    pub name: String,
    /// The API when it exists.
    pub api: Option<HttpApi>,
    pub tags: BTreeMap<String, String>,
    pub cors: Option<HttpCors>,
    pub update_cors: bool,
    pub integration: Option<Integration>,
    pub update_integration: bool,
    pub payload_format: String,
    pub add_routes: Vec<String>,
    pub delete_routes: Vec<Route>,
    pub create_stage: Option<String>,
    /// The execute-api permission statement is missing or different.
    pub permission: bool,
    pub stage: String,
}

impl HttpApiChange {
    fn is_noop(&self) -> bool {
        self.api.is_some()
            && !self.update_cors
            && self.integration.is_some()
            && !self.update_integration
            && self.add_routes.is_empty()
            && self.delete_routes.is_empty()
            && self.create_stage.is_none()
            && !self.permission
    }
}

fn api_name(function: &str, trigger: &str) -> String {
    format!("{function}-{trigger}")
}

fn execute_api_arn(t: &Target, api_id: &str) -> String {
    format!(
        "arn:{}:execute-api:{}:{}:{api_id}/*",
        t.partition, t.region, t.account
    )
}

fn invoke_url(api: &HttpApi, stage: &str) -> String {
    if stage == "$default" {
        format!("{}/", api.endpoint.trim_end_matches('/'))
    } else {
        format!("{}/{stage}", api.endpoint.trim_end_matches('/'))
    }
}

pub(super) async fn plan<A: TriggerApi>(
    api: &A,
    t: &Target,
    triggers: &[Trigger],
    permissions: &[Permission],
    plan: &mut TriggerPlan,
) -> Result<()> {
    let desired: Vec<(&str, &HttpApiTrigger)> = triggers
        .iter()
        .filter_map(|tr| match &tr.kind {
            TriggerKind::HttpApi(h) => Some((tr.name.as_str(), h)),
            _ => None,
        })
        .collect();
    let sid_prefix = "cargo-fn-http-";
    let has_http_statements = permissions.iter().any(|p| p.sid.starts_with(sid_prefix));
    if desired.is_empty() && !has_http_statements {
        // Nothing configured now or before (an API is deleted before its
        // statement, so a leftover API always has one): no listing at all.
        return Ok(());
    }
    let apis = api.list_http_apis().await?;
    let ours: Vec<&HttpApi> = apis
        .iter()
        .filter(|a| {
            a.tags.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
                && a.tags.get(FUNCTION_TAG) == Some(&t.function)
        })
        .collect();
    let alias_arn = t.alias_arn();
    for (name, h) in &desired {
        let existing = ours
            .iter()
            .find(|a| a.tags.get(TRIGGER_TAG).map(String::as_str) == Some(*name))
            .map(|a| (*a).clone());
        let tags = t.tags(&[(FUNCTION_TAG, t.function.as_str()), (TRIGGER_TAG, *name)]);
        let mut change = HttpApiChange {
            trigger: name.to_string(),
            name: api_name(&t.function, name),
            api: existing.clone(),
            tags,
            cors: h.cors.as_ref().map(HttpCors::from),
            update_cors: false,
            integration: None,
            update_integration: false,
            payload_format: h.payload_format.clone(),
            add_routes: Vec::new(),
            delete_routes: Vec::new(),
            create_stage: None,
            permission: true,
            stage: h.stage.clone(),
        };
        match &existing {
            None => {
                change.add_routes = h.routes.clone();
                change.create_stage = Some(h.stage.clone());
            }
            Some(a) => {
                change.update_cors = a.cors != change.cors;
                let integrations = api.list_integrations(&a.id).await?;
                let integ = integrations.iter().find(|i| i.uri == alias_arn).cloned();
                change.update_integration = integ
                    .as_ref()
                    .is_some_and(|i| i.payload_format != h.payload_format);
                change.integration = integ.clone();
                let target = integ.as_ref().map(|i| format!("integrations/{}", i.id));
                let routes = api.list_routes(&a.id).await?;
                for r in &routes {
                    let wanted = h.routes.contains(&r.key);
                    if !wanted || r.target != target {
                        change.delete_routes.push(r.clone());
                    }
                }
                for key in &h.routes {
                    if !routes.iter().any(|r| &r.key == key && r.target == target) {
                        change.add_routes.push(key.clone());
                    }
                }
                if !api.list_stages(&a.id).await?.contains(&h.stage) {
                    change.create_stage = Some(h.stage.clone());
                }
                let want = Permission {
                    sid: permission_sid("http", name),
                    principal: "apigateway.amazonaws.com".into(),
                    source_arn: Some(execute_api_arn(t, &a.id)),
                    source_account: Some(t.account.clone()),
                };
                change.permission = !permissions
                    .iter()
                    .any(|p| p.sid == want.sid && same_permission(p, &want));
                plan.urls.insert(name.to_string(), invoke_url(a, &h.stage));
            }
        }
        if !change.is_noop() {
            plan.changes.push(TriggerChange::HttpApi(Box::new(change)));
        }
    }
    for a in &ours {
        let name = a.tags.get(TRIGGER_TAG).cloned().unwrap_or_default();
        if !desired.iter().any(|(n, _)| *n == name) {
            plan.changes.push(TriggerChange::DeleteHttpApi {
                trigger: name.clone(),
                id: a.id.clone(),
                name: a.name.clone(),
            });
        }
    }
    for p in permissions.iter().filter(|p| p.sid.starts_with(sid_prefix)) {
        let name = &p.sid[sid_prefix.len()..];
        if !desired.iter().any(|(n, _)| *n == name) {
            plan.changes
                .push(TriggerChange::RemovePermission { sid: p.sid.clone() });
        }
    }
    Ok(())
}

pub(super) async fn apply<A: TriggerApi>(
    api: &A,
    t: &Target,
    h: &HttpApiChange,
    ui: &Ui,
) -> Result<String> {
    let alias_arn = t.alias_arn();
    let a = match &h.api {
        Some(a) => {
            if h.update_cors {
                ui.status("Updating", format!("CORS of HTTP API {}", a.name));
                api.update_http_api_cors(&a.id, h.cors.as_ref()).await?;
            }
            a.clone()
        }
        None => {
            ui.status(
                "Creating",
                format!("HTTP API {} (trigger {})", h.name, h.trigger),
            );
            api.create_http_api(&h.name, h.cors.as_ref(), &h.tags)
                .await?
        }
    };
    let integration = match &h.integration {
        Some(i) => {
            if h.update_integration {
                api.update_integration(&a.id, &i.id, &alias_arn, &h.payload_format)
                    .await?;
            }
            i.clone()
        }
        None => {
            api.create_integration(&a.id, &alias_arn, &h.payload_format)
                .await?
        }
    };
    for r in &h.delete_routes {
        api.delete_route(&a.id, &r.id).await?;
    }
    let target = format!("integrations/{}", integration.id);
    for key in &h.add_routes {
        ui.status("Routing", format!("{key} -> {alias_arn}"));
        api.create_route(&a.id, key, &target).await?;
    }
    if let Some(stage) = &h.create_stage {
        api.create_stage(&a.id, stage).await?;
    }
    if h.permission || h.api.is_none() {
        let p = Permission {
            sid: permission_sid("http", &h.trigger),
            principal: "apigateway.amazonaws.com".into(),
            source_arn: Some(execute_api_arn(t, &a.id)),
            source_account: Some(t.account.clone()),
        };
        add_permission(api, &alias_arn, &p).await?;
    }
    Ok(invoke_url(&a, &h.stage))
}
