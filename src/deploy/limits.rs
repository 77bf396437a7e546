//! Concurrency: the function's reserved concurrency and the alias's
//! provisioned concurrency, each changed only when it differs from what
//! Lambda reports.

use anyhow::Result;

use super::step::{Action, Aws, Ctx, Step, View};
use crate::aws::FunctionState;
use crate::config::FunctionConfig;

/// The concurrency changes: reserved when it differs from what Lambda
/// reports; provisioned on the alias when configured for it and different
/// (read only when the alias exists).
pub async fn plan<A: Aws, C: From<ReservedConcurrency> + From<ProvisionedConcurrency>>(
    api: &A,
    cfg: &FunctionConfig,
    alias: &str,
    remote: Option<&FunctionState>,
    alias_exists: bool,
) -> Result<Vec<C>> {
    let mut changes = Vec::new();
    let before = remote.and_then(|r| r.reserved_concurrency);
    if before != cfg.reserved_concurrency {
        changes.push(C::from(ReservedConcurrency {
            function: cfg.name.clone(),
            before,
            after: cfg.reserved_concurrency,
        }));
    }
    if let Some(&n) = cfg.provisioned_concurrency.get(alias) {
        let before = if alias_exists {
            api.get_provisioned_concurrency(&cfg.name, alias).await?
        } else {
            None
        };
        if before != Some(n) {
            changes.push(C::from(ProvisionedConcurrency {
                function: cfg.name.clone(),
                alias: alias.to_string(),
                before,
                after: n,
            }));
        }
    }
    Ok(changes)
}

/// Reserved concurrency of the function (`None`: unreserved).
#[derive(Debug, Clone, PartialEq)]
pub struct ReservedConcurrency {
    pub function: String,
    pub before: Option<u32>,
    pub after: Option<u32>,
}

impl Step for ReservedConcurrency {
    fn view(&self) -> View {
        let (action, call) = match self.after {
            Some(n) => (
                if self.before.is_some() {
                    Action::Update
                } else {
                    Action::Create
                },
                format!("lambda:PutFunctionConcurrency {} {n}", self.function),
            ),
            None => (
                Action::Delete,
                format!("lambda:DeleteFunctionConcurrency {}", self.function),
            ),
        };
        View::new("reserved-concurrency", &self.function, action)
            .before(self.before)
            .after(self.after)
            .call(call)
    }

    async fn apply<A: Aws>(&self, api: &A, _cx: &mut Ctx<'_>) -> Result<()> {
        match self.after {
            Some(n) => api.put_reserved_concurrency(&self.function, n).await?,
            None => api.delete_reserved_concurrency(&self.function).await?,
        }
        Ok(())
    }
}

/// Provisioned concurrency of the alias.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionedConcurrency {
    pub function: String,
    pub alias: String,
    pub before: Option<u32>,
    pub after: u32,
}

impl Step for ProvisionedConcurrency {
    fn view(&self) -> View {
        View::new(
            "provisioned-concurrency",
            format!("{}:{}", self.function, self.alias),
            if self.before.is_some() {
                Action::Update
            } else {
                Action::Create
            },
        )
        .before(self.before)
        .after(self.after)
        .call(format!(
            "lambda:PutProvisionedConcurrencyConfig {}:{} {}",
            self.function, self.alias, self.after
        ))
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        cx.ui.status(
            "Provisioning",
            format!(
                "{} environments for {}:{}",
                self.after, self.function, self.alias
            ),
        );
        api.put_provisioned_concurrency(&self.function, &self.alias, self.after)
            .await?;
        Ok(())
    }
}
