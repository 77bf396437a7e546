//! The alias's function URL and the resource-policy statements a public
//! one needs.
//!
//! Since October 2025 a URL with `AuthType NONE` answers 403 unless the
//! alias's resource policy holds both: `lambda:InvokeFunctionUrl` for `*`
//! with the condition `lambda:FunctionUrlAuthType = NONE`, and
//! `lambda:InvokeFunction` for `*` with the condition
//! `lambda:InvokedViaFunctionUrl = true` (the second only lets the URL
//! invoke; it opens no other path). cargo-fn owns the two statements by
//! their ids ([`PUBLIC_URL_SID`], [`INVOKE_VIA_URL_SID`]): the plan reads
//! the policy and adds whichever is missing (a function made by an older
//! cargo-fn has only the first), removes them when the URL stops being
//! public, and removes the URL with both statements when `function-url`
//! leaves the configuration. Statements are removed before the URL
//! changes and added after it, so a URL is never public by accident.
//!
//! Which aliases have a URL cargo-fn manages is recorded in the function's
//! tag `cargo-fn:url:<alias>` (read with the function, no extra call), so
//! a configuration without `function-url` costs no URL read, and a URL
//! someone made by hand is never deleted.

use anyhow::Result;
use serde::Serialize;

use super::step::{Action, Aws, Ctx, Step, View};
use crate::aws::{UrlCors, UrlSettings, UrlState};
use crate::config::{FunctionConfig, InvokeMode, UrlAuth};

/// Statement id of `lambda:InvokeFunctionUrl` for a public URL.
pub const PUBLIC_URL_SID: &str = "cargo-fn-function-url-public";
/// Statement id of `lambda:InvokeFunction` via the URL.
pub const INVOKE_VIA_URL_SID: &str = "cargo-fn-function-url-invoke";

/// The function tag recording a URL cargo-fn manages on `alias`.
pub fn record_tag(alias: &str) -> String {
    super::tags::record_tag("url", alias)
}

/// The URL and its statements. Reads them only when the configuration asks
/// for a URL or the function records one on this alias (`managed`);
/// returns the changes and the URL as it is.
pub async fn plan<A: Aws, C: From<Permission> + From<UrlConfig>>(
    api: &A,
    function: &str,
    alias: &str,
    alias_exists: bool,
    want: Option<crate::aws::UrlSettings>,
    managed: bool,
) -> Result<(Vec<C>, Option<String>)> {
    if want.is_none() && !managed {
        return Ok((Vec::new(), None));
    }
    let (current, policy) = if alias_exists {
        (
            api.get_url(function, alias).await?,
            api.get_policy(function, alias).await?,
        )
    } else {
        (None, None)
    };
    let present = our_statements(policy.as_deref());
    let needed = statements_for(want.as_ref().map(|u| u.auth.as_str()));
    let permission = |statement: crate::aws::Permission, add: bool| {
        C::from(Permission {
            function: function.to_string(),
            alias: alias.to_string(),
            statement,
            add,
        })
    };
    let mut changes = Vec::new();
    // Removed first: a URL is never public by accident.
    for sid in &present {
        if !needed.iter().any(|s| &s.sid == sid) {
            let statement = statements_for(Some("NONE"))
                .into_iter()
                .find(|s| &s.sid == sid)
                .expect("one of ours");
            changes.push(permission(statement, false));
        }
    }
    let url = current.as_ref().map(|u| u.url.clone());
    match (&current, &want) {
        (None, None) => {}
        (Some(c), Some(w)) if &c.settings == w => {}
        _ => changes.push(C::from(UrlConfig {
            function: function.to_string(),
            alias: alias.to_string(),
            before: current.clone(),
            after: want.clone(),
        })),
    }
    for s in needed {
        if !present.contains(&s.sid) {
            changes.push(permission(s, true));
        }
    }
    Ok((changes, url))
}

/// The URL the configuration asks for.
pub fn url_settings(cfg: &FunctionConfig) -> Option<UrlSettings> {
    cfg.function_url.as_ref().map(|u| UrlSettings {
        auth: match u.auth {
            UrlAuth::None => "NONE",
            UrlAuth::AwsIam => "AWS_IAM",
        }
        .to_string(),
        invoke_mode: match u.invoke_mode {
            InvokeMode::Buffered => "BUFFERED",
            InvokeMode::ResponseStream => "RESPONSE_STREAM",
        }
        .to_string(),
        cors: u.cors.as_ref().map(UrlCors::from),
    })
}

/// The statements a URL with this auth type needs.
pub fn statements_for(auth: Option<&str>) -> Vec<crate::aws::Permission> {
    if auth != Some("NONE") {
        return Vec::new();
    }
    vec![
        crate::aws::Permission {
            sid: PUBLIC_URL_SID.into(),
            action: "lambda:InvokeFunctionUrl".into(),
            principal: "*".into(),
            function_url_auth_type: Some("NONE".into()),
            invoked_via_function_url: false,
        },
        crate::aws::Permission {
            sid: INVOKE_VIA_URL_SID.into(),
            action: "lambda:InvokeFunction".into(),
            principal: "*".into(),
            function_url_auth_type: None,
            invoked_via_function_url: true,
        },
    ]
}

/// Our statement ids present in a resource policy document.
pub fn our_statements(policy: Option<&str>) -> Vec<String> {
    let Some(doc) = policy.and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok()) else {
        return Vec::new();
    };
    doc["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["Sid"].as_str())
        .filter(|sid| [PUBLIC_URL_SID, INVOKE_VIA_URL_SID].contains(sid))
        .map(str::to_string)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct UrlView<'a> {
    auth: &'a str,
    invoke_mode: &'a str,
    cors: Option<&'a UrlCors>,
}

fn url_view(s: &UrlSettings) -> UrlView<'_> {
    UrlView {
        auth: &s.auth,
        invoke_mode: &s.invoke_mode,
        cors: s.cors.as_ref(),
    }
}

/// Creates, updates or deletes the alias's URL configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlConfig {
    pub function: String,
    pub alias: String,
    pub before: Option<UrlState>,
    pub after: Option<UrlSettings>,
}

impl Step for UrlConfig {
    fn view(&self) -> View {
        let target = format!("{}:{}", self.function, self.alias);
        let (action, call) = match (&self.before, &self.after) {
            (None, Some(u)) => (
                Action::Create,
                format!("lambda:CreateFunctionUrlConfig {target} auth {}", u.auth),
            ),
            (Some(_), Some(u)) => (
                Action::Update,
                format!("lambda:UpdateFunctionUrlConfig {target} auth {}", u.auth),
            ),
            _ => (
                Action::Delete,
                format!("lambda:DeleteFunctionUrlConfig {target}"),
            ),
        };
        let mut v = View::new("function-url", &target, action).call(call);
        if let Some(b) = &self.before {
            v = v.before(serde_json::json!({"url": b.url, "settings": url_view(&b.settings)}));
        }
        if let Some(a) = &self.after {
            v = v.after(url_view(a));
        }
        v
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        let (name, alias) = (&self.function, &self.alias);
        cx.url = match (&self.before, &self.after) {
            (None, Some(want)) => Some(match api.create_url(name, alias, want).await {
                Ok(u) => u.url,
                // Created by a dropped earlier attempt: make it ours.
                Err(e) if e.is("ResourceConflictException") => {
                    api.update_url(name, alias, want).await?.url
                }
                Err(e) => return Err(e.into()),
            }),
            (Some(_), Some(want)) => Some(api.update_url(name, alias, want).await?.url),
            (_, None) => {
                cx.ui
                    .status("Removing", format!("function URL of {name}:{alias}"));
                api.delete_url(name, alias).await?;
                None
            }
        };
        Ok(())
    }
}

/// Adds or removes one statement of the alias's resource policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Permission {
    pub function: String,
    pub alias: String,
    pub statement: crate::aws::Permission,
    pub add: bool,
}

impl Permission {
    fn condition(&self) -> serde_json::Value {
        let s = &self.statement;
        match (&s.function_url_auth_type, s.invoked_via_function_url) {
            (Some(t), _) => {
                serde_json::json!({"StringEquals": {"lambda:FunctionUrlAuthType": t}})
            }
            (None, true) => serde_json::json!({"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}),
            _ => serde_json::Value::Null,
        }
    }
}

impl Step for Permission {
    fn view(&self) -> View {
        let s = &self.statement;
        let target = format!("{}:{}", self.function, self.alias);
        let statement = serde_json::json!({
            "Sid": s.sid, "Effect": "Allow", "Principal": s.principal,
            "Action": s.action, "Condition": self.condition(),
        });
        let condition = self.condition().to_string();
        if self.add {
            View::new("permission", format!("{target}/{}", s.sid), Action::Create)
                .after(statement)
                .call(format!(
                    "lambda:AddPermission {target} {} for {} if {condition}",
                    s.action, s.principal
                ))
        } else {
            View::new("permission", format!("{target}/{}", s.sid), Action::Delete)
                .before(statement)
                .call(format!("lambda:RemovePermission {target} {}", s.sid))
        }
    }

    async fn apply<A: Aws>(&self, api: &A, _cx: &mut Ctx<'_>) -> Result<()> {
        if self.add {
            api.add_permission(&self.function, &self.alias, &self.statement)
                .await?;
        } else {
            api.remove_permission(&self.function, &self.alias, &self.statement.sid)
                .await?;
        }
        Ok(())
    }
}
