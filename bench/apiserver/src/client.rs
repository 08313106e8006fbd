//! The HTTPS client: rustls (ring) + hyper, keep-alive connections, HTTP/2 when
//! the server offers it over ALPN (as client-go does), else one HTTP/1.1
//! connection per worker.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::kubeconfig::Credentials;
use crate::BenchError;

/// Builds requests and opens connections to one server.
#[derive(Clone)]
pub struct Client {
    tls: TlsConnector,
    addr: SocketAddr,
    server_name: ServerName<'static>,
    authority: String,
    auth: http::HeaderValue,
}

/// One open connection; HTTP/2 ones are shared through [`Conn::share`].
pub enum Conn {
    /// HTTP/1.1: one request at a time.
    H1(http1::SendRequest<Full<Bytes>>),
    /// HTTP/2: streams multiplexed on one connection.
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Client {
    /// A client for `creds.server` (an `https://IP:PORT` URL) trusting only `creds.ca_pem`.
    pub fn new(creds: &Credentials, http1_only: bool) -> Result<Self, BenchError> {
        let tls_err = |e: &dyn std::fmt::Display| BenchError::Tls(e.to_string());
        let authority = creds
            .server
            .strip_prefix("https://")
            .ok_or_else(|| {
                BenchError::Kubeconfig(format!("server {} is not https://", creds.server))
            })?
            .trim_end_matches('/')
            .to_string();
        let addr: SocketAddr = authority.parse().map_err(|e| {
            BenchError::Kubeconfig(format!(
                "server {}: {e} (an IP:port is expected)",
                creds.server
            ))
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut creds.ca_pem.as_slice()) {
            roots
                .add(cert.map_err(|e| tls_err(&e))?)
                .map_err(|e| tls_err(&e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(&e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = if http1_only {
            vec![b"http/1.1".to_vec()]
        } else {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        };
        let auth = http::HeaderValue::from_str(&format!("Bearer {}", creds.token))
            .map_err(|e| BenchError::Kubeconfig(format!("token: {e}")))?;
        Ok(Self {
            tls: TlsConnector::from(Arc::new(cfg)),
            addr,
            server_name: ServerName::IpAddress(addr.ip().into()),
            authority,
            auth,
        })
    }

    /// Opens a TLS connection and does the HTTP handshake the server's ALPN picked.
    pub async fn connect(&self) -> Result<Conn, BenchError> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| BenchError::Io(format!("connect {}: {e}", self.addr)))?;
        // Small request/response pairs: Nagle would add delayed-ACK stalls.
        tcp.set_nodelay(true)
            .map_err(|e| BenchError::Io(e.to_string()))?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| BenchError::Tls(format!("handshake with {}: {e}", self.addr)))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (send, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| BenchError::Http(e.to_string()))?;
            tokio::spawn(conn);
            Ok(Conn::H2(send))
        } else {
            let (send, conn) = http1::handshake(io)
                .await
                .map_err(|e| BenchError::Http(e.to_string()))?;
            tokio::spawn(conn);
            Ok(Conn::H1(send))
        }
    }

    /// A request with the bearer token; `body` is JSON.
    pub fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>, BenchError> {
        // HTTP/2 needs :scheme and :authority, so the URI is absolute; hyper's
        // HTTP/1 client sends it in origin form plus a Host header.
        let uri = format!("https://{}{}", self.authority, path_and_query);
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, self.auth.clone())
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            b = b.header(header::CONTENT_TYPE, "application/json");
        }
        b.body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| BenchError::Http(e.to_string()))
    }
}

impl Conn {
    /// `"HTTP/2"` or `"HTTP/1.1"`.
    pub fn protocol(&self) -> &'static str {
        match self {
            Conn::H1(_) => "HTTP/1.1",
            Conn::H2(_) => "HTTP/2",
        }
    }

    /// Another handle on the same HTTP/2 connection; `None` for HTTP/1.1.
    pub fn share(&self) -> Option<Conn> {
        match self {
            Conn::H1(_) => None,
            Conn::H2(s) => Some(Conn::H2(s.clone())),
        }
    }

    /// Sends one request and returns when the response head arrived.
    pub async fn send(
        &mut self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, BenchError> {
        let http = |e: hyper::Error| BenchError::Http(e.to_string());
        match self {
            Conn::H1(s) => {
                // Origin form on the wire, authority in the Host header.
                let host = req
                    .uri()
                    .authority()
                    .map(|a| a.as_str().to_string())
                    .unwrap_or_default();
                let path = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into());
                *req.uri_mut() = path
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| BenchError::Http(e.to_string()))?;
                if let Ok(v) = http::HeaderValue::from_str(&host) {
                    req.headers_mut().insert(header::HOST, v);
                }
                s.ready().await.map_err(http)?;
                s.send_request(req).await.map_err(http)
            }
            Conn::H2(s) => {
                s.ready().await.map_err(http)?;
                s.send_request(req).await.map_err(http)
            }
        }
    }

    /// Sends a request and reads the whole body.
    pub async fn call(&mut self, req: Request<Full<Bytes>>) -> Result<(u16, Bytes), BenchError> {
        let resp = self.send(req).await?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| BenchError::Http(e.to_string()))?
            .to_bytes();
        Ok((status, body))
    }
}
