//! The listener the API serves on: TCP, with one correction on the way out.
//!
//! A request line longer than the HTTP layer reads (64 KiB, fixed in hyper)
//! is refused by hyper itself, before any route or middleware runs, with a
//! bare `414` and no body. Every other error of the API is problem+json
//! (RFC 9457); so is this one: the connection's writes are watched, and that
//! exact bare answer (always the last thing on its connection) is replaced by
//! the same `uri_too_long` problem the router gives shorter over-long URIs.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener whose connections answer hyper's bare `414` as problem+json.
pub struct ApiListener(pub TcpListener);

impl axum::serve::Listener for ApiListener {
    type Io = ProblemOn414<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (ProblemOn414::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// How hyper starts the answer it writes when the request line is too long.
const BARE_414: &[u8] = b"HTTP/1.1 414 ";

/// A connection whose bare `414` (hyper's, never the router's) is replaced by a problem.
pub struct ProblemOn414<T> {
    inner: T,
    /// The replacement still to write, once a bare `414` was seen (hyper
    /// closes the connection after it, so nothing else follows).
    replacing: Option<(Vec<u8>, usize)>,
}

impl<T> ProblemOn414<T> {
    /// Watch `inner`'s writes.
    pub fn new(inner: T) -> Self {
        ProblemOn414 { inner, replacing: None }
    }
}

/// Whether `buf` starts hyper's own `414` answer: a head with that status
/// and no problem+json body (the router's own `414` already is one).
fn is_bare_414(buf: &[u8]) -> bool {
    if !buf.starts_with(BARE_414) {
        return false;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    !head.contains("application/problem+json")
}

/// The full answer sent instead of hyper's bare `414`: the router's own
/// `uri_too_long` problem, with what the HTTP layer's limit is.
fn problem_414() -> Vec<u8> {
    let limit = crate::error::MAX_URI_BYTES;
    let mut problem = crate::ApiError::UriTooLong(HTTP_LIMIT).problem();
    problem.detail = format!(
        "the request line is longer than the server reads (64 KiB); the API reads at most {limit} bytes of path and \
         query: send large values in a body"
    );
    let body = serde_json::to_string(&problem).unwrap_or_else(|_| "{}".into());
    format!(
        "HTTP/1.1 414 URI Too Long\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The longest request line hyper reads.
const HTTP_LIMIT: usize = 65_534;

impl<T: AsyncRead + Unpin> AsyncRead for ProblemOn414<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> ProblemOn414<T> {
    /// Write what is left of the replacement; ready once all of it is out.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = &mut self.replacing {
            if *done == bytes.len() {
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *done += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemOn414<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() && is_bare_414(buf) {
            this.replacing = Some((problem_414(), 0));
        }
        if this.replacing.is_some() {
            // hyper's own bytes are swallowed: the replacement says it all
            return match this.poll_replacement(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.len())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            };
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // one slice at a time, so the first bytes are always seen whole
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &**b);
        self.poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.replacing.is_some() {
            match this.poll_replacement(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.replacing.is_some() {
            match this.poll_replacement(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bare_414_is_replaced() {
        assert!(is_bare_414(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n"));
        assert!(!is_bare_414(
            b"HTTP/1.1 414 URI Too Long\r\ncontent-type: application/problem+json\r\ncontent-length: 90\r\n\r\n{}"
        ));
        assert!(!is_bare_414(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        let p = String::from_utf8(problem_414()).unwrap();
        let (head, body) = p.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["code"], "uri_too_long");
    }
}
