//! Zips that travel through S3 (over the 50 MB direct-upload limit, or on
//! request): the upload before any call names the object, and the cleanup
//! of our older objects under `cargo-fn/<function>/` afterwards.

use anyhow::Result;

use super::step::{Action, Aws, Ctx, Step, View};
use super::{Package, S3Target};
use crate::aws::{Code, ObjectStore};
use crate::package::human_size;

/// The upload of a zip that travels through S3 (none for an image, or a
/// zip sent in the request).
pub fn plan(function: &str, pkg: &Package, s3: Option<&S3Target>) -> Option<Upload> {
    match (&pkg.image, s3) {
        (None, Some(t)) => Some(Upload {
            bucket: t.bucket.clone(),
            key: t.key_for(function, &pkg.sha256),
            size: pkg.bytes.len() as u64,
        }),
        _ => None,
    }
}

/// After an upload: our older objects beyond the newest N go.
pub fn clean(
    function: &str,
    s3: Option<&S3Target>,
    uploaded: Option<&Upload>,
) -> Option<CleanObjects> {
    Some(CleanObjects {
        function: function.to_string(),
        target: s3?.clone(),
        current: uploaded?.key.clone(),
    })
}

/// `s3:PutObject` of the zip; the function's code then names the object.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub size: u64,
}

impl Step for Upload {
    fn view(&self) -> View {
        View::new(
            "s3-object",
            format!("s3://{}/{}", self.bucket, self.key),
            Action::Publish,
        )
        .after(serde_json::json!({"size": self.size}))
        .call(format!(
            "s3:PutObject s3://{}/{} ({})",
            self.bucket,
            self.key,
            human_size(self.size)
        ))
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        cx.ui.status(
            "Uploading",
            format!(
                "s3://{}/{} ({})",
                self.bucket,
                self.key,
                human_size(self.size)
            ),
        );
        api.put_object(&self.bucket, &self.key, cx.pkg.bytes.clone())
            .await?;
        cx.code = Code::S3 {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
        };
        Ok(())
    }
}

/// Deletes our zips of a function beyond the newest `keep` (never the one
/// just deployed).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanObjects {
    pub function: String,
    pub target: S3Target,
    pub current: String,
}

impl Step for CleanObjects {
    fn view(&self) -> View {
        let prefix = S3Target::prefix(&self.function);
        View::new(
            "s3-objects",
            format!("s3://{}/{prefix}", self.target.bucket),
            Action::Delete,
        )
        .after(serde_json::json!({"keep": self.target.keep}))
        .call(format!(
            "s3:ListBucket + s3:DeleteObject: our objects under s3://{}/{prefix} beyond the newest {}",
            self.target.bucket, self.target.keep
        ))
    }

    async fn apply<A: Aws>(&self, api: &A, _cx: &mut Ctx<'_>) -> Result<()> {
        clean_stale_objects(api, &self.target, &self.function, &self.current).await
    }
}

async fn clean_stale_objects<A: ObjectStore>(
    api: &A,
    target: &S3Target,
    function: &str,
    current: &str,
) -> Result<()> {
    let mut objects = api
        .list_objects(&target.bucket, &S3Target::prefix(function))
        .await?;
    objects.sort_by(|a, b| {
        b.last_modified
            .cmp(&a.last_modified)
            .then_with(|| a.key.cmp(&b.key))
    });
    let mut kept = usize::from(objects.iter().any(|o| o.key == current));
    let mut stale = Vec::new();
    for o in objects {
        if o.key == current {
            continue;
        }
        if kept < target.keep {
            kept += 1;
        } else {
            stale.push(o.key);
        }
    }
    if !stale.is_empty() {
        api.delete_objects(&target.bucket, &stale).await?;
    }
    Ok(())
}
