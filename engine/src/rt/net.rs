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
    pub fn bind(addr: SocketAddr) -> std::io::Result<Listener> {
        let inner = glommio::net::TcpListener::bind(addr).map_err(std::io::Error::from)?;
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
/// silently and take half the connections.
pub fn reserve(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind(addr)?;
    probe.local_addr()
}
