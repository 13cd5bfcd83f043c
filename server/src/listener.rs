//! The listeners. On shutdown a listener does not simply close: the connections the
//! kernel has already completed (waiting in the listen backlog) are accepted and served
//! first, so a client whose connection was established gets its answer instead of a reset.
//! Only then is the listening socket closed.

use std::io;
use std::net::SocketAddr;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

pub struct DrainingListener {
    inner: TcpListener,
    local: LocalAddr,
    stopping: Option<watch::Receiver<bool>>,
    drained: Option<oneshot::Sender<()>>,
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
        (self, async move {
            let _ = rx.await;
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
    ) -> (TcpStream, LocalAddr, RemoteAddr, Scheme) {
        (
            io,
            self.local.clone(),
            RemoteAddr(addr.into()),
            Scheme::HTTP,
        )
    }
}

impl Acceptor for DrainingListener {
    type Io = TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![self.local.clone()]
    }

    async fn accept(&mut self) -> io::Result<(TcpStream, LocalAddr, RemoteAddr, Scheme)> {
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
