//! TCP for the network servers: listeners that every core binds on the same
//! port (SO_REUSEPORT; the kernel spreads connections over the cores) and
//! connections that implement the futures-io traits.

use std::net::SocketAddr;

/// A connection accepted on this core. Implements `futures_io::AsyncRead` and
/// `AsyncWrite`; lives on the core that accepted it.
pub type Connection = glommio::net::TcpStream;

/// A listening socket bound on this core.
pub struct Listener {
    inner: glommio::net::TcpListener,
}

impl Listener {
    /// Binds `addr` with SO_REUSEPORT on the current core. Must run on a core.
    /// SO_REUSEADDR too: accepted sockets inherit it, so a restarted server can
    /// bind again while its killed predecessor's connections sit in TIME_WAIT.
    pub fn bind(addr: SocketAddr) -> std::io::Result<Listener> {
        use std::os::fd::IntoRawFd;
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let fd = socket.into_raw_fd();
        // SAFETY: `fd` is a bound, listening TCP socket we own; ownership moves
        // to the glommio listener, which closes it.
        let inner =
            unsafe { <glommio::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(Listener { inner })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr().map_err(std::io::Error::from)
    }

    /// Accepts one connection, with TCP_NODELAY set (small replies must not wait
    /// for Nagle and the peer's delayed ACK).
    pub async fn accept(&self) -> std::io::Result<(Connection, Option<SocketAddr>)> {
        let conn = self.inner.accept().await.map_err(std::io::Error::from)?;
        conn.set_nodelay(true).map_err(std::io::Error::from)?;
        let peer = conn.peer_addr().ok();
        Ok((conn, peer))
    }
}

/// Checks that nobody else listens on `addr` and resolves port 0 to a free port.
/// SO_REUSEPORT would otherwise let a second server (same user) share the port
/// silently and take half the connections. The probe binds without listening:
/// a listening probe would accept clients that connect during startup and then
/// drop them when it closes (they must be refused, so they retry).
pub fn reserve(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let probe = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // As the listeners do: a restart may bind while old connections sit in TIME_WAIT.
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())?;
    probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("the probe socket has no IP address"))
}

/// Connects to `addr` from the current core (clients running on an executor,
/// e.g. tests of the server through the async client), with TCP_NODELAY.
pub async fn connect(addr: SocketAddr) -> std::io::Result<Connection> {
    let conn = glommio::net::TcpStream::connect(addr)
        .await
        .map_err(std::io::Error::from)?;
    conn.set_nodelay(true).map_err(std::io::Error::from)?;
    Ok(conn)
}
