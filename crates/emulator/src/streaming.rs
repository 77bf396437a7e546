//! Response streaming (contract 1.5, 1.6 and 3.3): the parts of a streamed
//! answer as they travel from the runtime's chunked `/response` body to a
//! caller, the mid-stream error forms (real HTTP trailers and the Rust
//! runtime's in-body "trailer" lines), the streamed-size limit, the HTTP
//! integration prelude (JSON, 8 NUL bytes, then the body), and an HTTP body
//! fed by a channel so callers see bytes as they are produced.
//!
//! **Invariant:** this module moves bytes and recognises framing; it knows
//! nothing of environments, timeouts or invocation accounting (the pool
//! owns those) nor of the front ends that render a stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use hyper::body::{Body as HttpBody, Frame};
use serde_json::Value;
use tokio::sync::mpsc;

/// Largest streamed response (200 MB since 2025-07-31, contract 1.6/5.2;
/// read as MiB like the 6 MB buffered limit). Rate limits (2 MB/s after the
/// first 6 MB) are not emulated: local runs stay fast.
pub(crate) const MAX_STREAMED_RESPONSE_BYTES: usize = 200 * 1024 * 1024;

/// Content type of a runtime answer that starts with the HTTP prelude.
pub(crate) const HTTP_INTEGRATION: &str = "application/vnd.awslambda.http-integration-response";

const H_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
const H_ERROR_BODY: &str = "lambda-runtime-function-error-body";
/// How the Rust runtime writes its error "trailer" into the body.
const INLINE_MARK: &[u8] = b"Lambda-Runtime-Function-Error-Type:";
/// In-body trailer lines longer than this are not trailers but body.
const MAX_INLINE_TRAILER: usize = 1024 * 1024;
/// A prelude not complete within this many bytes is refused.
const MAX_PRELUDE: usize = 64 * 1024;
/// Chunks in flight between two stages; a slow reader slows the writer.
pub(crate) const CHANNEL_DEPTH: usize = 16;

/// One piece of a streamed answer, in order. The channel closing after
/// data (and no error) is a complete answer.
#[derive(Debug, PartialEq)]
pub(crate) enum StreamPart {
    Data(Bytes),
    /// The stream failed: error trailers, the size limit, or a cut body.
    /// Nothing follows.
    Error {
        error_type: String,
        message: String,
    },
}

/// A streamed answer as the runtime produces it.
#[derive(Debug)]
pub(crate) struct ResponseStream {
    /// The runtime's `Content-Type` (the function's stream content type).
    pub content_type: Option<String>,
    pub parts: mpsc::Receiver<StreamPart>,
}

/// What a streaming caller gets as soon as the runtime starts streaming:
/// the body bytes as they come. How the invocation ended (error, log) is
/// the caller's `JobResult`, available once `chunks` is closed.
pub(crate) struct StreamHead {
    pub content_type: Option<String>,
    pub chunks: mpsc::Receiver<Bytes>,
}

/// How reading a runtime's streamed body ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pumped {
    Complete,
    /// More than the limit: the runtime gets 413.
    TooLarge,
    /// The body was cut (reset, bad chunking): the runtime gets 400.
    Truncated,
}

/// Reads a runtime's streamed `/response` body into `tx`, frame by frame,
/// turning error trailers (real or in-body) into a final
/// [`StreamPart::Error`]. Keeps reading when the receiver is gone, so the
/// runtime's request completes normally.
pub(crate) async fn pump(mut body: Body, tx: mpsc::Sender<StreamPart>, limit: usize) -> Pumped {
    let mut inline = InlineTrailers::default();
    let mut total = 0usize;
    let mut trailer_error = None;
    let send = |part: StreamPart| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(part).await;
        }
    };
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let frame = match frame {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                send(StreamPart::Error {
                    error_type: "Runtime.TruncatedResponse".into(),
                    message: format!("the runtime's response stream was cut: {e}"),
                })
                .await;
                return Pumped::Truncated;
            }
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                total += data.len();
                if total > limit {
                    send(StreamPart::Error {
                        error_type: "Function.ResponseSizeTooLarge".into(),
                        message: format!(
                            "Response payload size exceeded maximum allowed payload streaming size ({limit} bytes)."
                        ),
                    })
                    .await;
                    return Pumped::TooLarge;
                }
                if let Some(out) = inline.push(data) {
                    send(StreamPart::Data(out)).await;
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(trailers) = frame.into_trailers() {
            trailer_error = error_from_trailers(&trailers);
        }
    }
    let (rest, inline_error) = inline.finish();
    if !rest.is_empty() {
        send(StreamPart::Data(rest)).await;
    }
    if let Some((error_type, message)) = trailer_error.or(inline_error) {
        send(StreamPart::Error {
            error_type,
            message,
        })
        .await;
    }
    Pumped::Complete
}

fn error_from_trailers(trailers: &axum::http::HeaderMap) -> Option<(String, String)> {
    let error_type = trailers.get(H_ERROR_TYPE)?.to_str().ok()?.trim();
    if error_type.is_empty() {
        return None;
    }
    let body = trailers
        .get(H_ERROR_BODY)
        .map(|v| decode_error_body(v.as_bytes()))
        .unwrap_or_default();
    Some((error_type.to_string(), body))
}

/// Error bodies travel base64-encoded; tolerate plain text.
fn decode_error_body(raw: &[u8]) -> String {
    let raw = raw.trim_ascii();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .unwrap_or_else(|_| raw.to_vec());
    let text = String::from_utf8_lossy(&bytes).into_owned();
    // A JSON error object: its message is the detail.
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if v["errorMessage"].is_string() => v["errorMessage"].as_str().unwrap_or("").into(),
        _ => text,
    }
}

/// Finds the Rust runtime's in-body error lines in a stream. The runtime
/// writes them as one chunk of its own, and hyper never merges chunks into
/// one frame, so only a frame that starts like the marker is a candidate:
/// every other frame goes on at once, untouched.
#[derive(Default)]
struct InlineTrailers {
    held: BytesMut,
    /// The marker was seen: everything from it on is held until the end.
    in_trailer: bool,
}

impl InlineTrailers {
    /// Bytes that can be forwarded now.
    fn push(&mut self, data: Bytes) -> Option<Bytes> {
        if self.in_trailer {
            self.held.extend_from_slice(&data);
            if self.held.len() > MAX_INLINE_TRAILER {
                // Far too long for error lines: it was body after all.
                self.in_trailer = false;
                return Some(self.held.split().freeze());
            }
            return None;
        }
        let buf = if self.held.is_empty() {
            data
        } else {
            // A frame that began like the marker, then this one.
            let mut b = self.held.split();
            b.extend_from_slice(&data);
            b.freeze()
        };
        if buf.starts_with(INLINE_MARK) {
            self.in_trailer = true;
        } else if !INLINE_MARK.starts_with(&buf) {
            return Some(buf);
        }
        // The marker, or possibly the start of it: wait for what follows.
        self.held = BytesMut::from(&buf[..]);
        None
    }

    /// At the end of the body: what is left to forward, and the error when
    /// the held bytes are exactly the two trailer lines.
    fn finish(self) -> (Bytes, Option<(String, String)>) {
        let held = self.held.freeze();
        if self.in_trailer
            && let Some(error) = parse_inline(&held)
        {
            return (Bytes::new(), Some(error));
        }
        (held, None)
    }
}

/// `Lambda-Runtime-Function-Error-Type: T\r\nLambda-Runtime-Function-Error-Body: B\r\n`.
fn parse_inline(held: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(held).ok()?;
    let mut lines = text.split("\r\n");
    let error_type = lines
        .next()?
        .strip_prefix("Lambda-Runtime-Function-Error-Type:")?
        .trim();
    let body = lines
        .next()?
        .strip_prefix("Lambda-Runtime-Function-Error-Body:")?;
    if lines.any(|l| !l.trim().is_empty()) || error_type.is_empty() {
        return None;
    }
    Some((error_type.to_string(), decode_error_body(body.as_bytes())))
}

/// Progress of reading an HTTP integration prelude.
#[derive(Debug, PartialEq)]
pub(crate) enum Prelude {
    NeedMore,
    /// The prelude object and where the body starts in the buffer.
    Done(Value, usize),
    Invalid,
}

/// Reads the prelude at the start of `buf`: a JSON object, then 8 NUL bytes.
pub(crate) fn parse_prelude(buf: &[u8]) -> Prelude {
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
    let prelude = match values.next() {
        None => return Prelude::NeedMore,
        Some(Err(e)) if e.is_eof() => return Prelude::NeedMore,
        Some(Err(_)) => return Prelude::Invalid,
        Some(Ok(v)) => v,
    };
    let end = values.byte_offset();
    let rest = &buf[end..];
    if !prelude.is_object() || rest.iter().take(8).any(|b| *b != 0) {
        return Prelude::Invalid;
    }
    if rest.len() < 8 {
        return Prelude::NeedMore;
    }
    Prelude::Done(prelude, end + 8)
}

/// Whether a buffer still waiting for its prelude has grown too large.
pub(crate) fn prelude_too_long(buf: &[u8]) -> bool {
    buf.len() > MAX_PRELUDE
}

/// An HTTP body fed by a channel: each item goes out as soon as it is
/// received; an `Err` ends the body abruptly (the client sees the
/// connection cut, as when a streaming function fails mid-response).
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, axum::BoxError>>,
    /// An error held back for one poll so the data before it is flushed
    /// first (hyper drops unflushed output when a body fails).
    deferred: Option<axum::BoxError>,
    /// Data went out since the body last returned `Pending`.
    unflushed: bool,
}

impl ChannelBody {
    pub(crate) fn new(rx: mpsc::Receiver<Result<Bytes, axum::BoxError>>) -> ChannelBody {
        ChannelBody {
            rx,
            deferred: None,
            unflushed: false,
        }
    }
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(e) = self.deferred.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(data))) => {
                self.unflushed = true;
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) if self.unflushed => {
                // Pending makes hyper flush what it has; the error follows
                // on the next poll.
                self.unflushed = false;
                self.deferred = Some(e);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                self.unflushed = false;
                Poll::Pending
            }
        }
    }
}

/// A TCP stream that sends the ACK for each read right away. The Rust
/// runtime's client leaves Nagle's algorithm on, so each small chunk it
/// streams waits for the ACK of the previous write; with Linux's delayed
/// ACK that is a 40 ms stall per chunk.
pub(crate) struct QuickAck(pub tokio::net::TcpStream);

impl QuickAck {
    fn ack_now(&self) {
        // Advisory: the kernel reverts it on its own, so it is set per read;
        // a failure only costs latency.
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
    }
}

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.ack_now();
        }
        read
    }
}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything forwarded, the pieces forwarded before the end, the error.
    type Fed = (Vec<u8>, Vec<Vec<u8>>, Option<(String, String)>);

    fn feed(chunks: &[&[u8]]) -> Fed {
        let mut t = InlineTrailers::default();
        let mut out = Vec::new();
        let mut pieces = Vec::new();
        for c in chunks {
            if let Some(b) = t.push(Bytes::copy_from_slice(c)) {
                out.extend_from_slice(&b);
                pieces.push(b.to_vec());
            }
        }
        let (rest, err) = t.finish();
        out.extend_from_slice(&rest);
        (out, pieces, err)
    }

    #[test]
    fn plain_chunks_pass_through_at_once() {
        let (out, pieces, err) = feed(&[b"first\n", b"second\n"]);
        assert_eq!(out, b"first\nsecond\n");
        assert_eq!(pieces, [b"first\n".to_vec(), b"second\n".to_vec()]);
        assert_eq!(err, None);
    }

    #[test]
    fn rust_runtime_inline_trailer_becomes_an_error() {
        let body = base64::engine::general_purpose::STANDARD.encode("it broke");
        let trailer = format!(
            "Lambda-Runtime-Function-Error-Type: Runtime.StreamError\r\nLambda-Runtime-Function-Error-Body: {body}\r\n"
        );
        // Split across frames, even inside the marker.
        let (a, b) = trailer.as_bytes().split_at(10);
        let (out, pieces, err) = feed(&[b"data", a, b]);
        assert_eq!(out, b"data");
        assert_eq!(pieces, [b"data".to_vec()]);
        assert_eq!(err, Some(("Runtime.StreamError".into(), "it broke".into())));
    }

    #[test]
    fn marker_like_text_that_is_not_a_trailer_stays_body() {
        // Inside a frame: not the runtime's error chunk, forwarded at once.
        let text: &[u8] = b"see Lambda-Runtime-Function-Error-Type: in the docs";
        let (out, pieces, err) = feed(&[text, b" and more"]);
        assert_eq!(out, [text, b" and more"].concat());
        assert_eq!(pieces.len(), 2);
        assert_eq!(err, None);
        let (_, pieces, _) = feed(&[b"abc Lambda-Run"]);
        assert_eq!(pieces, [b"abc Lambda-Run".to_vec()]);
        // A frame that is only the start of the marker waits for the next.
        let (out, pieces, _) = feed(&[b"Lambda", b" rocks"]);
        assert_eq!(out, b"Lambda rocks");
        assert_eq!(pieces, [b"Lambda rocks".to_vec()]);
        // A frame starting with the marker but not the two lines is body.
        let odd: &[u8] = b"Lambda-Runtime-Function-Error-Type: x\r\nsomething else";
        let (out, _, err) = feed(&[odd]);
        assert_eq!(out, odd);
        assert_eq!(err, None);
    }

    #[test]
    fn preludes_are_read_incrementally() {
        let full = b"{\"statusCode\":201}\0\0\0\0\0\0\0\0body";
        assert_eq!(parse_prelude(b""), Prelude::NeedMore);
        assert_eq!(parse_prelude(&full[..5]), Prelude::NeedMore);
        assert_eq!(parse_prelude(&full[..21]), Prelude::NeedMore);
        match parse_prelude(full) {
            Prelude::Done(v, at) => {
                assert_eq!(v["statusCode"], 201);
                assert_eq!(&full[at..], b"body");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_prelude(b"{\"a\":1}\0\0x"), Prelude::Invalid);
        assert_eq!(parse_prelude(b"[1]\0\0\0\0\0\0\0\0"), Prelude::Invalid);
        assert_eq!(parse_prelude(b"not json"), Prelude::Invalid);
    }

    async fn pump_all(body: Body, limit: usize) -> (Pumped, Vec<StreamPart>) {
        let (tx, mut rx) = mpsc::channel(64);
        let pumped = pump(body, tx, limit).await;
        let mut parts = Vec::new();
        while let Some(p) = rx.recv().await {
            parts.push(p);
        }
        (pumped, parts)
    }

    /// A body of data frames and then trailers, like hyper yields them.
    struct Framed(Vec<Frame<Bytes>>);

    impl HttpBody for Framed {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready((!self.0.is_empty()).then(|| Ok(self.0.remove(0))))
        }
    }

    #[tokio::test]
    async fn real_trailers_end_the_stream_with_their_error() {
        let mut trailers = axum::http::HeaderMap::new();
        trailers.insert(H_ERROR_TYPE, "Function.Boom".parse().unwrap());
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(r#"{"errorType":"Function.Boom","errorMessage":"went wrong"}"#);
        trailers.insert(H_ERROR_BODY, encoded.parse().unwrap());
        let body = Body::new(Framed(vec![
            Frame::data(Bytes::from_static(b"part")),
            Frame::trailers(trailers),
        ]));
        let (pumped, parts) = pump_all(body, 100).await;
        assert_eq!(pumped, Pumped::Complete);
        assert_eq!(
            parts,
            [
                StreamPart::Data(Bytes::from_static(b"part")),
                StreamPart::Error {
                    error_type: "Function.Boom".into(),
                    message: "went wrong".into()
                }
            ]
        );
    }

    #[tokio::test]
    async fn a_body_error_waits_one_poll_after_data() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(Bytes::from_static(b"first"))).await.unwrap();
        tx.send(Err("cut".into())).await.unwrap();
        let mut body = ChannelBody::new(rx);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut poll = || Pin::new(&mut body).poll_frame(&mut cx);
        assert!(matches!(poll(), Poll::Ready(Some(Ok(f))) if f.data_ref().is_some()));
        assert!(poll().is_pending(), "a chance to flush the data first");
        assert!(matches!(poll(), Poll::Ready(Some(Err(_)))));
    }

    #[tokio::test]
    async fn the_size_limit_ends_the_stream() {
        let body = Body::new(Framed(vec![
            Frame::data(Bytes::from_static(b"12345")),
            Frame::data(Bytes::from_static(b"67890x")),
        ]));
        let (pumped, parts) = pump_all(body, 10).await;
        assert_eq!(pumped, Pumped::TooLarge);
        assert_eq!(parts[0], StreamPart::Data(Bytes::from_static(b"12345")));
        assert!(matches!(
            &parts[1],
            StreamPart::Error { error_type, .. } if error_type == "Function.ResponseSizeTooLarge"
        ));
        assert_eq!(parts.len(), 2);
    }
}
