//! [`EcrApi`] on the AWS SDK (aws-sdk-ecr), sharing the connection and the
//! retry configuration of [`super::sdk`]; the registry push runs the
//! blocking OCI client on tokio's blocking pool.

use aws_sdk_ecr::types as et;

use super::ecr::{EcrApi, PushTarget, Pushed, RegistryAuth, Repository, decode_token};
use super::sdk::{SdkAws, api_err};
use super::{ApiError, ApiResult};

fn repository(r: &et::Repository) -> Repository {
    Repository {
        name: r.repository_name().unwrap_or_default().to_string(),
        uri: r.repository_uri().unwrap_or_default().to_string(),
        scan_on_push: r
            .image_scanning_configuration()
            .is_some_and(|c| c.scan_on_push()),
    }
}

impl EcrApi for SdkAws {
    async fn get_repository(&self, name: &str) -> ApiResult<Option<Repository>> {
        match self
            .ecr
            .describe_repositories()
            .repository_names(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.repositories().first().map(repository)),
            Err(e) => {
                let e = api_err("ecr:DescribeRepositories", e);
                if e.is("RepositoryNotFoundException") {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn create_repository(
        &self,
        name: &str,
        scan_on_push: bool,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> ApiResult<Repository> {
        let tags: Vec<et::Tag> = tags
            .iter()
            .map(|(k, v)| {
                et::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .expect("key and value are set")
            })
            .collect();
        let out = self
            .ecr
            .create_repository()
            .repository_name(name)
            .image_scanning_configuration(
                et::ImageScanningConfiguration::builder()
                    .scan_on_push(scan_on_push)
                    .build(),
            )
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| api_err("ecr:CreateRepository", e))?;
        out.repository().map(repository).ok_or_else(|| {
            ApiError::new(
                "ecr:CreateRepository",
                "InvalidResponse",
                "no repository in the answer",
            )
        })
    }

    async fn get_lifecycle_policy(&self, name: &str) -> ApiResult<Option<String>> {
        match self
            .ecr
            .get_lifecycle_policy()
            .repository_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.lifecycle_policy_text().map(str::to_string)),
            Err(e) => {
                let e = api_err("ecr:GetLifecyclePolicy", e);
                if e.is("LifecyclePolicyNotFoundException") {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn put_lifecycle_policy(&self, name: &str, policy: &str) -> ApiResult<()> {
        self.ecr
            .put_lifecycle_policy()
            .repository_name(name)
            .lifecycle_policy_text(policy)
            .send()
            .await
            .map_err(|e| api_err("ecr:PutLifecyclePolicy", e))?;
        Ok(())
    }

    async fn authorization(&self) -> ApiResult<RegistryAuth> {
        let op = "ecr:GetAuthorizationToken";
        let out = self
            .ecr
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| api_err(op, e))?;
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| ApiError::new(op, "InvalidResponse", "no authorization data"))?;
        let credentials = data
            .authorization_token()
            .and_then(decode_token)
            .ok_or_else(|| {
                // Never echo the token itself.
                ApiError::new(
                    op,
                    "InvalidResponse",
                    "the authorization token is not base64 of user:password",
                )
            })?;
        Ok(RegistryAuth {
            credentials,
            endpoint: data.proxy_endpoint().unwrap_or_default().to_string(),
        })
    }

    async fn push_layout(&self, target: &PushTarget) -> anyhow::Result<Pushed> {
        let target = target.clone();
        tokio::task::spawn_blocking(move || super::ecr::push_blocking(&target)).await?
    }
}
