//! The listeners. On shutdown a listener does not simply close: the connections the
//! kernel has already completed (waiting in the listen backlog) are accepted first, so a
//! client whose connection was established gets an answer instead of a reset. The server
//! is told to stop only once every accepted connection has had its request read (or a
//! moment has passed): a connection still unread at that point would be closed as idle.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// How long stopping waits for accepted connections to send their request.
const FIRST_READ_WAIT: Duration = Duration::from_secs(2);

pub struct DrainingListener {
    inner: TcpListener,
    local: LocalAddr,
    stopping: Option<watch::Receiver<bool>>,
    drained: Option<oneshot::Sender<()>>,
    /// Accepted connections from which nothing has been read yet.
    unread: Arc<AtomicUsize>,
}

impl DrainingListener {
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let inner = TcpListener::bind(addr).await?;
        let local = LocalAddr(inner.local_addr()?.into());
        Ok(Self {
            inner,
            local,
            stopping: None,
            drained: None,
            unread: Arc::default(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        *self
            .local
            .as_socket_addr()
            .expect("a TCP listener has a socket address")
    }

    /// Accepts until `stop` turns true, then drains the backlog; the future returned
    /// completes once the backlog is empty (the moment to stop calling `accept`).
    pub fn until(
        mut self,
        stop: watch::Receiver<bool>,
    ) -> (Self, impl std::future::Future<Output = ()> + Send) {
        let (tx, rx) = oneshot::channel();
        self.stopping = Some(stop);
        self.drained = Some(tx);
        let unread = Arc::clone(&self.unread);
        (self, async move {
            let _ = rx.await;
            let deadline = tokio::time::Instant::now() + FIRST_READ_WAIT;
            while unread.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }

    /// A connection the kernel already holds, without waiting: `None` when there is none.
    fn take_queued(&self) -> Option<(TcpStream, SocketAddr)> {
        let (socket, addr) = socket2::SockRef::from(&self.inner).accept().ok()?;
        socket.set_nonblocking(true).ok()?;
        let stream = TcpStream::from_std(std::net::TcpStream::from(socket)).ok()?;
        Some((stream, addr.as_socket()?))
    }

    fn accepted(
        &self,
        (io, addr): (TcpStream, SocketAddr),
    ) -> (Connection, LocalAddr, RemoteAddr, Scheme) {
        self.unread.fetch_add(1, Ordering::AcqRel);
        let io = Connection {
            io,
            unread: Some(Arc::clone(&self.unread)),
        };
        (
            io,
            self.local.clone(),
            RemoteAddr(addr.into()),
            Scheme::HTTP,
        )
    }
}

impl Acceptor for DrainingListener {
    type Io = Connection;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![self.local.clone()]
    }

    async fn accept(&mut self) -> io::Result<(Connection, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            let stop = match &mut self.stopping {
                None => return self.inner.accept().await.map(|c| self.accepted(c)),
                Some(stopping) if *stopping.borrow() => true,
                Some(stopping) => tokio::select! {
                    accepted = self.inner.accept() => return accepted.map(|c| self.accepted(c)),
                    // A dropped sender is a stop too.
                    changed = stopping.changed() => changed.is_err(),
                },
            };
            if stop {
                if let Some(queued) = self.take_queued() {
                    return Ok(self.accepted(queued));
                }
                if let Some(drained) = self.drained.take() {
                    let _ = drained.send(());
                }
                // The server stops calling once it sees the drain finished.
                return std::future::pending().await;
            }
        }
    }
}

/// An accepted connection, counted as unread until its first bytes (or its end) arrive.
pub struct Connection {
    io: TcpStream,
    unread: Option<Arc<AtomicUsize>>,
}

impl Connection {
    fn read_once(&mut self) {
        if let Some(unread) = self.unread.take() {
            unread.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.read_once();
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if polled.is_ready() {
            self.read_once();
        }
        polled
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
