//! The stage guard: before any write, a command that changes AWS (deploy,
//! promote, rollback, remote tune) checks that the credentials in use
//! belong to the account the stage pins and talk to the region it pins,
//! that the stage's confirmation was given, and that the function it is
//! about to change is not owned by another stage (its `cargo-fn:stage`
//! tag).
//!
//! Every check here is pure: the caller's identity (one STS
//! GetCallerIdentity per connection) and the function's tags are read by
//! the caller and passed in, so the refusals are unit-tested without AWS.

use anyhow::Result;

use crate::aws::triggers::Caller;
use crate::error::hinted;

/// The tag deploy puts on what it creates for a stage, and reads to know
/// which stage owns a function or role.
pub const STAGE_TAG: &str = "cargo-fn:stage";

/// What a stage pins, borrowed from its configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pin<'a> {
    pub stage: &'a str,
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
    pub confirm: bool,
}

/// Refuses, naming both accounts (or regions), when the caller is not where
/// the stage is pinned.
pub fn check_target(pin: &Pin<'_>, caller: &Caller) -> Result<()> {
    if let Some(want) = pin.account
        && want != caller.account
    {
        return Err(hinted(
            format!(
                "stage `{}` is pinned to account {want}, but the credentials in use belong to \
                 account {}; nothing was changed",
                pin.stage, caller.account
            ),
            format!(
                "use credentials of account {want} (the stage's `profile`, --profile or \
                 AWS_PROFILE), or select the stage that belongs to account {}",
                caller.account
            ),
        ));
    }
    if let Some(want) = pin.region
        && want != caller.region
    {
        return Err(hinted(
            format!(
                "stage `{}` is pinned to region {want}, but the connection uses region {}; \
                 nothing was changed",
                pin.stage, caller.region
            ),
            format!("drop --region / AWS_REGION, or pass --region {want}"),
        ));
    }
    Ok(())
}

/// How a required confirmation can be given.
pub enum Confirm<'a> {
    /// `--yes` was passed.
    Given,
    /// A terminal: ask this question; `true` only for an answer of `yes`.
    Ask(&'a dyn Fn(&str) -> bool),
    /// No terminal and no `--yes`.
    Impossible,
}

/// A stage with `confirm = true` needs `--yes` or an interactive `yes`
/// before `what` (e.g. "deploy 2 functions") happens.
pub fn check_confirmation(pin: &Pin<'_>, what: &str, confirm: &Confirm<'_>) -> Result<()> {
    if !pin.confirm {
        return Ok(());
    }
    let stage = pin.stage;
    match confirm {
        Confirm::Given => Ok(()),
        Confirm::Ask(ask) => {
            if ask(&format!(
                "stage `{stage}` asks for confirmation: {what}? Type yes to go on"
            )) {
                Ok(())
            } else {
                Err(hinted(
                    format!("{what} in stage `{stage}` was not confirmed; nothing was changed"),
                    "answer `yes`, or pass --yes",
                ))
            }
        }
        Confirm::Impossible => Err(hinted(
            format!(
                "stage `{stage}` sets `confirm = true`: {what} needs a confirmation, and there \
                 is no terminal to ask on; nothing was changed"
            ),
            "pass --yes to confirm (in CI: only in the job meant to change this stage)",
        )),
    }
}

/// Refuses to change `resource` (a function or role, by name) when its tags
/// say another stage owns it. `stage` is the selected one (`None`: no stage
/// selected, which may not change a resource a stage owns either). An
/// untagged resource is anyone's: the deploy adopts it.
pub fn check_owner(
    kind: &str,
    resource: &str,
    tags: &std::collections::BTreeMap<String, String>,
    stage: Option<&str>,
) -> Result<()> {
    let Some(owner) = tags.get(STAGE_TAG) else {
        return Ok(());
    };
    if Some(owner.as_str()) == stage {
        return Ok(());
    }
    let selected = match stage {
        Some(s) => format!("stage `{s}`"),
        None => "a deploy without a stage".to_string(),
    };
    Err(hinted(
        format!(
            "the {kind} {resource} belongs to stage `{owner}` (tag {STAGE_TAG}={owner}); \
             {selected} never changes it, and nothing was changed"
        ),
        format!(
            "select that stage (--stage {owner}), or give this stage its own names (for \
             example `name = \"<function>-{{stage}}\"`)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn caller(account: &str, region: &str) -> Caller {
        Caller {
            partition: "aws".into(),
            account: account.into(),
            region: region.into(),
        }
    }

    fn pin() -> Pin<'static> {
        Pin {
            stage: "prod",
            account: Some("111111111111"),
            region: Some("eu-west-1"),
            confirm: true,
        }
    }

    #[test]
    fn a_pinned_account_refuses_another_naming_both() {
        let err = check_target(&pin(), &caller("222222222222", "eu-west-1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("111111111111"), "{err}");
        assert!(err.contains("222222222222"), "{err}");
        assert!(err.contains("`prod`"), "{err}");
        check_target(&pin(), &caller("111111111111", "eu-west-1")).unwrap();
    }

    #[test]
    fn a_pinned_region_refuses_another() {
        let err = check_target(&pin(), &caller("111111111111", "us-east-1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("eu-west-1") && err.contains("us-east-1"),
            "{err}"
        );
    }

    #[test]
    fn nothing_pinned_accepts_any_caller() {
        let p = Pin {
            stage: "dev",
            ..Pin::default()
        };
        check_target(&p, &caller("222222222222", "us-east-1")).unwrap();
        check_confirmation(&p, "deploy", &Confirm::Impossible).unwrap();
    }

    #[test]
    fn confirm_needs_yes_or_an_interactive_yes() {
        check_confirmation(&pin(), "deploy", &Confirm::Given).unwrap();
        check_confirmation(&pin(), "deploy", &Confirm::Ask(&|_| true)).unwrap();
        let no = check_confirmation(&pin(), "deploy", &Confirm::Ask(&|_| false)).unwrap_err();
        assert!(no.to_string().contains("not confirmed"), "{no}");
        let none = check_confirmation(&pin(), "deploy", &Confirm::Impossible).unwrap_err();
        let hint = &none.downcast_ref::<crate::error::Hinted>().unwrap().hint;
        assert!(hint.contains("--yes"), "{hint}");
    }

    #[test]
    fn a_resource_of_another_stage_is_refused_naming_its_stage() {
        let mut tags = BTreeMap::new();
        check_owner("function", "orders", &tags, Some("dev")).unwrap();
        check_owner("function", "orders", &tags, None).unwrap();
        tags.insert(STAGE_TAG.to_string(), "prod".to_string());
        check_owner("function", "orders", &tags, Some("prod")).unwrap();
        let err = check_owner("function", "orders", &tags, Some("dev"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stage `prod`") && err.contains("`dev`"),
            "{err}"
        );
        assert!(check_owner("function", "orders", &tags, None).is_err());
    }
}
