//! Response bodies: whole ones, and streamed ones written frame by frame with optional delays
//! and an optional abort that the client sees as a reset, not as a clean end.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;

/// Pause between the last frame sent and the abort of a cut body.
const FLUSH_BEFORE_ABORT: Duration = Duration::from_millis(10);

/// The body type of every response a mock sends.
pub(crate) type ResponseBody = BoxBody<Bytes, Aborted>;

/// The error a body yields to make hyper abort the connection (HTTP/1.1) or reset the stream
/// (HTTP/2) mid-response.
#[derive(Debug, thiserror::Error)]
#[error("mock fault: response aborted on purpose")]
pub(crate) struct Aborted;

/// A body sent in one piece.
pub(crate) fn whole(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// How to send a sequence of frames.
pub(crate) struct Pacing {
    /// Sleep before every frame after the first.
    pub delay_between: Duration,
    /// Send only this many frames, then abort.
    pub abort_after: Option<usize>,
}

/// A body that sends `frames` one by one from a separate task. Each frame is handed to hyper as
/// soon as it is produced; since the task yields between frames, hyper writes each one out
/// instead of collecting several. Must be called inside the mock's tokio runtime.
pub(crate) fn paced(frames: Vec<Bytes>, pacing: Pacing) -> ResponseBody {
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        let sent_in_full = pacing.abort_after.is_none_or(|n| n >= frames.len());
        for (index, frame) in frames.into_iter().enumerate() {
            if pacing.abort_after == Some(index) {
                break;
            }
            if index > 0 && !pacing.delay_between.is_zero() {
                tokio::time::sleep(pacing.delay_between).await;
            }
            if sender.send(Ok(frame)).await.is_err() {
                return; // the client went away
            }
        }
        if !sent_in_full {
            // Give the connection time to put what was sent on the wire: an HTTP/2 reset
            // discards the stream's data frames still queued.
            tokio::time::sleep(FLUSH_BEFORE_ABORT).await;
            let _ = sender.send(Err(Aborted)).await;
        }
    });
    ChannelBody { receiver }.boxed()
}

/// A body fed by [`paced`]'s task.
struct ChannelBody {
    receiver: mpsc::Receiver<Result<Bytes, Aborted>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        self.receiver
            .poll_recv(cx)
            .map(|next| next.map(|result| result.map(Frame::data)))
    }
}

/// The same body compressed with gzip, frame by frame (each frame flushed, so a stream stays a
/// stream), ending with the gzip trailer. Must be called inside the mock's tokio runtime.
pub(crate) fn gzip(mut body: ResponseBody) -> ResponseBody {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
        while let Some(frame) = body.frame().await {
            let data = match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue, // trailers: none in the mock's answers
                },
                Err(aborted) => {
                    let _ = sender.send(Err(aborted)).await;
                    return;
                }
            };
            if encoder
                .write_all(&data)
                .and_then(|()| encoder.flush())
                .is_err()
            {
                return;
            }
            let compressed = std::mem::take(encoder.get_mut());
            if sender.send(Ok(Bytes::from(compressed))).await.is_err() {
                return;
            }
        }
        if let Ok(rest) = encoder.finish() {
            let _ = sender.send(Ok(Bytes::from(rest))).await;
        }
    });
    ChannelBody { receiver }.boxed()
}

/// Whether an `accept-encoding` value accepts gzip (`gzip` or `*`, without `q=0`).
pub(crate) fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn gzip_is_accepted_only_when_the_client_says_so() {
        for (header, accepted) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("*", true),
            ("identity", false),
            ("gzip;q=0", false),
            ("br", false),
            ("", false),
        ] {
            assert_eq!(accepts_gzip(header), accepted, "{header:?}");
        }
    }
}
