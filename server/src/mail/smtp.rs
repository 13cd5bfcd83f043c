//! SMTP connections that do not wait on delayed ACKs.
//!
//! lettre 0.11.23 opens its sockets with Nagle's algorithm on and writes a message and its
//! final `.` in two writes, so every mail waited for the server's delayed ACK (~40 ms):
//! one connection delivered 22 mails a second (docs/benchmarks.md). lettre still speaks
//! SMTP here (`AsyncSmtpConnection`: EHLO, STARTTLS, AUTH, the transaction), but over
//! sockets opened by us with `TCP_NODELAY`; idle connections are kept for the next mail.
//! The URL forms are lettre's: `smtp://host[:port]` (plain), `?tls=opportunistic` and
//! `?tls=required` (STARTTLS), `smtps://` (TLS from the start), `user:password@`, and a
//! path naming the EHLO domain.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;

/// A connection unused this long is closed rather than reused.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// A connection unused this long is asked `NOOP` before a mail goes down it.
const CHECK_AFTER: Duration = Duration::from_secs(5);
/// Connections kept idle per server.
const MAX_IDLE: usize = 32;

#[derive(Clone)]
enum Security {
    Plain,
    StartTlsIfOffered(TlsParameters),
    StartTls(TlsParameters),
    Tls(TlsParameters),
}

/// One SMTP server and the connections kept open to it.
pub struct Relay {
    host: String,
    port: u16,
    security: Security,
    hello: ClientId,
    credentials: Option<Credentials>,
    timeout: Duration,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

/// Why a mail did not go: `permanent` when the server refused it for good (5xx).
#[derive(Debug)]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

impl SendError {
    fn temporary(message: impl std::fmt::Display) -> Self {
        Self {
            permanent: false,
            message: message.to_string(),
        }
    }
}

impl From<lettre::transport::smtp::Error> for SendError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        Self {
            permanent: e.is_permanent(),
            message: e.to_string(),
        }
    }
}

impl Relay {
    /// The credentials this relay is sent (tests check whose they are).
    #[cfg(test)]
    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The server a URL names; `credentials` (from the configuration) replace any in it.
    pub fn from_url(
        url: &str,
        timeout: Duration,
        credentials: Option<Credentials>,
    ) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("{e}"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls_mode = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let tls = || TlsParameters::new(host.clone()).map_err(|e| anyhow::anyhow!("{e}"));
        let (security, default_port) = match (parsed.scheme(), tls_mode.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some("opportunistic")) => (Security::StartTlsIfOffered(tls()?), 587),
            ("smtp", Some("required")) => (Security::StartTls(tls()?), 587),
            ("smtps", None) => (Security::Tls(tls()?), 465),
            (scheme, tls) => anyhow::bail!("unknown scheme '{scheme}' or tls '{tls:?}'"),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
        };
        let in_url = match parsed.password() {
            Some(password) => Some(Credentials::new(
                decode(parsed.username())?,
                decode(password)?,
            )),
            None => None,
        };
        let path = parsed.path().trim_matches('/');
        Ok(Self {
            port: parsed.port().unwrap_or(default_port),
            host,
            security,
            hello: if path.is_empty() {
                ClientId::default()
            } else {
                ClientId::Domain(path.to_owned())
            },
            credentials: credentials.or(in_url),
            timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends one message; the connection is kept for the next one when all went well.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), SendError> {
        let mut connection = self.checkout().await?;
        let sent = tokio::time::timeout(self.timeout, connection.send(envelope, message)).await;
        match sent {
            Ok(Ok(_)) => {
                let mut idle = self.idle.lock().expect("idle connections");
                if idle.len() < MAX_IDLE {
                    idle.push((connection, Instant::now()));
                }
                Ok(())
            }
            Ok(Err(e)) => {
                // The server may be mid-transaction: this connection is not reused.
                let _ = tokio::time::timeout(self.timeout, connection.abort()).await;
                Err(e.into())
            }
            Err(_) => Err(SendError::temporary("timed out sending the message")),
        }
    }

    /// An idle connection that still works, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let taken = self.idle.lock().expect("idle connections").pop();
            let Some((mut connection, since)) = taken else {
                break;
            };
            let unused = since.elapsed();
            if unused > IDLE_LIMIT || connection.has_broken() {
                let _ = tokio::time::timeout(self.timeout, connection.abort()).await;
                continue;
            }
            if unused > CHECK_AFTER {
                let alive = tokio::time::timeout(self.timeout, connection.test_connected()).await;
                if !matches!(alive, Ok(true)) {
                    continue;
                }
            }
            return Ok(connection);
        }
        tokio::time::timeout(self.timeout, self.connect())
            .await
            .map_err(|_| SendError::temporary("timed out connecting to the SMTP server"))?
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| SendError::temporary(format!("connecting to {}: {e}", self.host)))?;
        // The point of this module: small writes go out at once.
        tcp.set_nodelay(true).map_err(SendError::temporary)?;
        let mut connection = match &self.security {
            Security::Tls(tls) => {
                #[allow(deprecated)] // lettre's own TLS upgrade, on a socket of ours
                let mut stream =
                    lettre::transport::smtp::client::AsyncNetworkStream::use_existing_tokio1(
                        Box::new(tcp),
                    );
                stream.upgrade_tls(tls.clone()).await?;
                AsyncSmtpConnection::connect_with_transport(
                    Box::new(tls_stream::Encrypted(stream)),
                    &self.hello,
                )
                .await?
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?,
        };
        match &self.security {
            Security::StartTlsIfOffered(tls) if connection.can_starttls() => {
                connection.starttls(tls.clone(), &self.hello).await?;
            }
            Security::StartTls(tls) => connection.starttls(tls.clone(), &self.hello).await?,
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            connection.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(connection)
    }
}

/// lettre's TLS stream (which speaks `futures` I/O) as the `tokio` stream its SMTP
/// connection runs over, for TLS from the first byte.
#[allow(deprecated)]
mod tls_stream {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_util::io::{AsyncRead as _, AsyncWrite as _};
    use lettre::transport::smtp::client::{AsyncNetworkStream, AsyncTokioStream};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    #[derive(Debug)]
    pub struct Encrypted(pub AsyncNetworkStream);

    impl AsyncRead for Encrypted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n =
                std::task::ready!(Pin::new(&mut self.0).poll_read(cx, buf.initialize_unfilled()))?;
            buf.advance(n);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Encrypted {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_close(cx)
        }
    }

    impl AsyncTokioStream for Encrypted {
        fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
            self.0.peer_addr()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(url: &str) -> Relay {
        Relay::from_url(url, Duration::from_secs(5), None).unwrap()
    }

    #[test]
    fn urls_mean_what_they_mean_to_lettre() {
        let plain = relay("smtp://mail.example.jp");
        assert_eq!((plain.host.as_str(), plain.port), ("mail.example.jp", 25));
        assert!(matches!(plain.security, Security::Plain));
        assert!(plain.credentials.is_none());

        let starttls = relay("smtp://user%40example.jp:p%40ss@mail.example.jp:2525?tls=required");
        assert_eq!(starttls.port, 2525);
        assert!(matches!(starttls.security, Security::StartTls(_)));
        // (Credentials do not print themselves: compared, not shown.)
        assert!(
            starttls.credentials == Some(Credentials::new("user@example.jp".into(), "p@ss".into()))
        );
        assert!(matches!(
            relay("smtp://mail.example.jp?tls=opportunistic").security,
            Security::StartTlsIfOffered(_)
        ));
        let implicit = relay("smtps://mail.example.jp/portal.example.jp");
        assert_eq!(implicit.port, 465);
        assert!(matches!(implicit.security, Security::Tls(_)));
        assert_eq!(implicit.hello, ClientId::Domain("portal.example.jp".into()));
        // The configuration's credentials win over the URL's.
        let configured = Relay::from_url(
            "smtp://a:b@mail.example.jp",
            Duration::from_secs(5),
            Some(Credentials::new("c".into(), "d".into())),
        )
        .unwrap();
        assert!(configured.credentials == Some(Credentials::new("c".into(), "d".into())));
        for bad in [
            "http://mail.example.jp",
            "smtp://mail.example.jp?tls=maybe",
            "smtp://",
        ] {
            assert!(
                Relay::from_url(bad, Duration::from_secs(5), None).is_err(),
                "{bad}"
            );
        }
    }
}
