//! Opening the socket to one server address: TCP with keepalives and `tcp_user_timeout`, or
//! a Unix socket; each attempt bounded by `connect_timeout`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::params::{Host, HostSpec, Keepalives, Params};

/// One address to connect to, with the host name TLS checks the certificate against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: Address,
    /// The host as written (`db.example`, `10.0.0.1`, `/var/run/postgresql`).
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Endpoint {
    pub fn is_unix(&self) -> bool {
        matches!(self.address, Address::Unix(_))
    }

    /// `db.example:5432 (10.0.0.5)`, `/var/run/postgresql:5432`.
    pub fn describe(&self) -> String {
        match &self.address {
            Address::Tcp(addr) if addr.ip().to_string() != self.host => {
                format!("{}:{} ({})", self.host, self.port, addr.ip())
            }
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

/// The addresses of one host: its `hostaddr`, the socket in its folder, or what its name
/// resolves to.
pub async fn endpoints(spec: &HostSpec) -> io::Result<Vec<Endpoint>> {
    let host = spec.name();
    let endpoint = |address| Endpoint {
        address,
        host: host.clone(),
        port: spec.port,
    };
    if let Some(ip) = spec.hostaddr {
        return Ok(vec![endpoint(Address::Tcp(SocketAddr::new(ip, spec.port)))]);
    }
    match &spec.host {
        Host::Unix(dir) => Ok(vec![endpoint(Address::Unix(
            dir.join(format!(".s.PGSQL.{}", spec.port)),
        ))]),
        Host::Tcp(name) => {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), spec.port))
                .await?
                .collect();
            Ok(addrs
                .into_iter()
                .map(|a| endpoint(Address::Tcp(a)))
                .collect())
        }
    }
}

/// A connected socket.
pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Connects to `endpoint`, within `limit` when given.
pub async fn open(
    endpoint: &Endpoint,
    params: &Params,
    limit: Option<Duration>,
) -> io::Result<Socket> {
    let connecting = async {
        match &endpoint.address {
            Address::Unix(path) => UnixStream::connect(path).await.map(Socket::Unix),
            Address::Tcp(addr) => {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                configure_tcp(&stream, params.keepalives, params.tcp_user_timeout)?;
                Ok(Socket::Tcp(stream))
            }
        }
    };
    match limit {
        Some(limit) => tokio::time::timeout(limit, connecting).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no connection within {} s (connect_timeout)",
                    limit.as_secs()
                ),
            )
        })?,
        None => connecting.await,
    }
}

fn configure_tcp(
    stream: &TcpStream,
    keepalives: Option<Keepalives>,
    tcp_user_timeout: Option<Duration>,
) -> io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    match keepalives {
        Some(k) => {
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(k.idle)
                .with_interval(k.interval);
            #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
            let keepalive = keepalive.with_retries(k.count);
            socket.set_tcp_keepalive(&keepalive)?;
        }
        None => socket.set_keepalive(false)?,
    }
    #[cfg(target_os = "linux")]
    if let Some(timeout) = tcp_user_timeout {
        socket.set_tcp_user_timeout(Some(timeout))?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = tcp_user_timeout;
    Ok(())
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::params::{DEFAULT_STALL_TIMEOUT, resolve};

    async fn socket_with(conninfo: &str) -> (TcpStream, tokio::net::TcpListener) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let env = |_: &str| None;
        let params = resolve(
            Some(&format!("host=127.0.0.1 port={port} {conninfo}")),
            "DATABASE_URL",
            DEFAULT_STALL_TIMEOUT,
            &env,
        )
        .unwrap();
        let endpoint = endpoints(&params.hosts[0]).await.unwrap().remove(0);
        match open(&endpoint, &params, Some(Duration::from_secs(5)))
            .await
            .unwrap()
        {
            Socket::Tcp(stream) => (stream, listener),
            Socket::Unix(_) => unreachable!("a TCP endpoint"),
        }
    }

    #[tokio::test]
    async fn keepalives_are_on_by_default_and_libpq_parameters_set_the_socket() {
        let (stream, _listener) = socket_with("").await;
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(60)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 6);

        let (stream, _listener) = socket_with(
            "keepalives_idle=5 keepalives_interval=2 keepalives_count=3 tcp_user_timeout=1500",
        )
        .await;
        let socket = socket2::SockRef::from(&stream);
        assert_eq!(socket.tcp_keepalive_time().unwrap(), Duration::from_secs(5));
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 3);
        // Milliseconds, as libpq reads it.
        assert_eq!(
            socket.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(1500))
        );

        let (stream, _listener) = socket_with("keepalives=0").await;
        assert!(!socket2::SockRef::from(&stream).keepalive().unwrap());
    }
}
