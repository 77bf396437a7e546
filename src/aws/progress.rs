//! Upload progress in bytes for the SDK clients.
//!
//! The SDK serializes a request (a zip in UpdateFunctionCode, CreateFunction,
//! PublishLayerVersion, or an S3 PutObject) into one in-memory body. Just
//! before each attempt is sent, [`UploadProgress`] swaps a large body for one
//! that hands the same bytes to the connection in slices and advances a bar
//! as each slice is taken. The bytes, headers and signature are unchanged,
//! and a retried attempt gets a fresh bar from the SDK's own rewound copy.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use indicatif::ProgressBar;

use crate::ui::Ui;

/// Bodies below this size go out as they are: a bar would only flicker.
pub const MIN_TRACKED_BYTES: usize = 64 * 1024;

/// How much the connection is handed at a time.
const SLICE: usize = 64 * 1024;

/// The interceptor registered on the Lambda and S3 clients.
#[derive(Debug, Clone, Copy)]
pub struct UploadProgress {
    pub ui: Ui,
}

impl Intercept for UploadProgress {
    fn name(&self) -> &'static str {
        "UploadProgress"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request_mut().body_mut();
        let Some(bytes) = body.bytes() else {
            return Ok(()); // already streaming: nothing to measure
        };
        if bytes.len() < MIN_TRACKED_BYTES {
            return Ok(());
        }
        let bytes = Bytes::copy_from_slice(bytes);
        let bar = self.ui.bytes_bar(bytes.len() as u64, "   Uploading");
        *body = SdkBody::from_body_1_x(CountedBody::new(bytes, bar));
        Ok(())
    }
}

/// The same bytes, in slices, with a bar that follows what has been taken.
pub struct CountedBody {
    bytes: Bytes,
    bar: ProgressBar,
}

impl CountedBody {
    pub fn new(bytes: Bytes, bar: ProgressBar) -> Self {
        CountedBody { bytes, bar }
    }
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.bytes.is_empty() {
            self.bar.finish_and_clear();
            return Poll::Ready(None);
        }
        let n = self.bytes.len().min(SLICE);
        let slice = self.bytes.split_to(n);
        self.bar.inc(n as u64);
        Poll::Ready(Some(Ok(Frame::data(slice))))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.bytes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn counted_body_yields_the_same_bytes_and_fills_the_bar() {
        let data: Vec<u8> = (0..(3 * SLICE + 17)).map(|i| (i % 251) as u8).collect();
        let bar = ProgressBar::hidden();
        bar.set_length(data.len() as u64);
        let body = CountedBody::new(Bytes::from(data.clone()), bar.clone());
        assert_eq!(
            http_body::Body::size_hint(&body).exact(),
            Some(data.len() as u64)
        );
        let mut frames = 0;
        let mut got = Vec::new();
        let mut body = std::pin::pin!(body);
        while let Some(frame) = body.frame().await {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
            frames += 1;
        }
        assert_eq!(got, data);
        assert_eq!(frames, 4, "three full slices and a tail");
        assert_eq!(bar.position(), data.len() as u64);
    }
}
