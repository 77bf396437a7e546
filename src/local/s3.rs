//! S3 triggers under `watch`: there is no local bucket, so an S3 trigger
//! only fires when asked (`cargo fn invoke --trigger NAME`, the dashboard's
//! "fire now"), with a notification event built by [`super::events`].

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::events::{S3Fire, outcome};
use super::{Context, Source};
use crate::config::triggers::S3Trigger;
use crate::emulator::Invoker;

pub struct S3Source {
    function: String,
    trigger: String,
    config: S3Trigger,
    invoker: Invoker,
    ui: crate::ui::Ui,
}

/// Adds the S3 trigger `name` of `function` to the status and fire API.
pub fn start(cx: &Context, function: &str, name: &str, t: &S3Trigger) {
    cx.triggers.add_source(Arc::new(S3Source {
        function: function.to_string(),
        trigger: name.to_string(),
        config: t.clone(),
        invoker: cx.invoker.clone(),
        ui: cx.ui,
    }));
}

impl S3Source {
    fn notification(&self) -> S3Fire<'_> {
        S3Fire {
            bucket: &self.config.bucket,
            events: &self.config.events,
            prefix: self.config.prefix.as_deref(),
            suffix: self.config.suffix.as_deref(),
            configuration_id: &self.trigger,
            region: self.invoker.region(),
        }
    }
}

impl Source for S3Source {
    fn function(&self) -> &str {
        &self.function
    }

    fn trigger(&self) -> &str {
        &self.trigger
    }

    fn kind(&self) -> &'static str {
        "s3"
    }

    fn status(&self) -> Value {
        let filter = match (&self.config.prefix, &self.config.suffix) {
            (None, None) => "every key".to_string(),
            (p, s) => format!(
                "{}*{}",
                p.as_deref().unwrap_or(""),
                s.as_deref().unwrap_or("")
            ),
        };
        json!({
            "bucket": self.config.bucket,
            "events": self.config.events.join(", "),
            "keys": filter,
        })
    }

    /// Invokes the function once now with the notification for `payload`
    /// (a key, `{"key", "size", "event"}` or a whole event; none: an
    /// example key under the prefix and suffix).
    fn fire(&self, payload: Option<Value>) -> BoxFuture<'_, anyhow::Result<Value>> {
        Box::pin(async move {
            let event = self
                .notification()
                .event(payload, jiff::Timestamp::now())
                .map_err(anyhow::Error::msg)?;
            let caller = format!("s3:{}", self.trigger);
            let done = self
                .invoker
                .invoke(
                    &self.function,
                    bytes::Bytes::from(event.to_string()),
                    &caller,
                )
                .await
                .map_err(|e| anyhow::anyhow!("`{}` was not invoked: {e}", self.function))?;
            self.ui.status(
                "Trigger",
                format!("[s3:{}] fired now -> {}", self.trigger, done.request_id),
            );
            Ok(outcome(&done))
        })
    }
}
