//! The HTTP transport of the CTI client: hyper-util's pooled HTTP/1.1 client over TCP, rustls
//! (ring, the webpki roots) for https, and the proxy from the environment, as reqwest's
//! `rustls-tls` set them up, without reqwest's per-request layers (URL re-parsing, redirect
//! and proxy lookups, header merging). The constant parts of each request (method, URI,
//! headers) are built once and cloned per request; a clone copies no bytes.

use std::error::Error as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, PROXY_AUTHORIZATION, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tower_service::Service;
use tracing::info;

use super::{redact_url, ClientConfig, ConfigError};

/// How long an idle keep-alive connection stays in the pool (reqwest's default).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive: first probe after this long idle, then one per interval, at most
/// [`TCP_KEEPALIVE_RETRIES`] (reqwest's defaults).
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// The User-Agent of every request (and of a proxy tunnel's `CONNECT`).
const UA: &str = concat!("sipcti/", env!("CARGO_PKG_VERSION"));
/// The error text of a request that got no response within `request_timeout` (reqwest's).
const TIMEOUT_TEXT: &str = "timeout: error sending request: operation timed out";

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// TCP (nodelay, keep-alive probes), TLS by rustls for https URIs.
type Tcp = HttpsConnector<HttpConnector>;
/// A TCP connection, TLS or not.
type TcpOrTls = MaybeHttpsStream<TokioIo<TcpStream>>;

/// How the client reaches the server, decided once at start from the URL and the proxy
/// settings of the environment (as reqwest reads them at its build).
#[derive(Clone)]
enum Connector {
    /// Straight to the URL's host.
    Direct(Tcp),
    /// An http URL through an HTTP(S) proxy: connect to the proxy, which takes the
    /// requests in absolute form.
    Forward {
        /// Connects to the proxy (TLS for an https proxy).
        to: Tcp,
        /// The proxy, `scheme://host[:port]/`.
        proxy: Uri,
    },
    /// An https URL through an HTTP(S) proxy's `CONNECT` tunnel, TLS to the host inside.
    Tunnel(HttpsConnector<Tunnel<Tcp>>),
    /// A proxy this client cannot speak (SOCKS): every connect fails with this text.
    Unusable(&'static str),
}

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Connector::Direct(c) | Connector::Forward { to: c, .. } => c.poll_ready(cx),
            Connector::Tunnel(c) => c.poll_ready(cx),
            Connector::Unusable(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self {
            Connector::Direct(c) => {
                let f = c.call(dst);
                Box::pin(async move { f.await.map(Conn::Direct) })
            }
            Connector::Forward { to, proxy } => {
                let f = to.call(proxy.clone());
                Box::pin(async move { f.await.map(Conn::Forwarded) })
            }
            Connector::Tunnel(c) => {
                let f = c.call(dst);
                Box::pin(async move { f.await.map(|c| Conn::Tunnelled(Box::new(c))) })
            }
            Connector::Unusable(why) => {
                let why = *why;
                Box::pin(async move { Err(why.into()) })
            }
        }
    }
}

/// A connection made by [`Connector`].
enum Conn {
    /// To the URL's host.
    Direct(TcpOrTls),
    /// To a proxy that forwards the requests (hyper sends them in absolute form).
    Forwarded(TcpOrTls),
    /// Through a proxy's tunnel (TLS to the host inside; boxed, the TLS state is large).
    Tunnelled(Box<MaybeHttpsStream<TcpOrTls>>),
}

/// Forward a method of hyper's IO traits to the connection inside.
macro_rules! each {
    ($conn:expr, $s:ident => $e:expr) => {
        match $conn {
            Conn::Direct($s) | Conn::Forwarded($s) => $e,
            Conn::Tunnelled($s) => $e,
        }
    };
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }

    fn is_write_vectored(&self) -> bool {
        each!(self, s => s.is_write_vectored())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Direct(s) => s.connected(),
            Conn::Forwarded(s) => s.connected().proxy(true),
            Conn::Tunnelled(s) => s.connected(),
        }
    }
}

/// The constant parts of one kind of request.
struct Parts {
    method: Method,
    /// Absolute URI without userinfo (hyper sends its origin form, path and query).
    uri: Uri,
    /// Host, Accept, User-Agent, Authorization (from the URL's userinfo) and, for the
    /// POSTs, Content-Type.
    headers: HeaderMap,
}

impl Parts {
    /// A request of these parts with `body`: clones of the shared URI and headers.
    fn request(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// The HTTP side of a [`super::Target`]: one keep-alive connection pool and the two
/// requests the client makes, the event POST to the CTI URL and the warm-up HEAD of the
/// server's root. Cheap to clone (the pool and TLS setup are shared).
#[derive(Clone)]
pub(super) struct Http {
    client: Client<Connector, Full<Bytes>>,
    post: Arc<Parts>,
    head: Arc<Parts>,
    timeout: Duration,
}

impl Http {
    /// Build the client for the CTI URL `url` (already checked: http or https, with a
    /// host), with `cfg`'s `request_timeout` (per request, connect included), keep-alive
    /// pool sized `max_in_flight + newcall_slots`, and `cfg.format`'s Content-Type.
    /// The URL's userinfo, if any, is taken out of the URL and sent as
    /// `Authorization: Basic` (percent-decoded), as reqwest does. The proxy settings of the
    /// environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, lower case too;
    /// none when `REQUEST_METHOD` is set) are read now, as reqwest reads them: an http URL
    /// goes through its proxy in absolute form with `Proxy-Authorization`, an https URL
    /// through a `CONNECT` tunnel; a SOCKS proxy cannot be used (every connect fails).
    ///
    /// Errors: [`ConfigError::InvalidUrl`] (with `redacted`, never the URL) if the URL is
    /// not a valid HTTP request target or its userinfo is not UTF-8 once percent-decoded;
    /// [`ConfigError::Http`] if the TLS setup fails.
    pub(super) fn new(
        mut url: url::Url,
        redacted: &str,
        cfg: &ClientConfig,
    ) -> Result<Http, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidUrl {
            url: redacted.to_string(),
            reason: reason.to_string(),
        };
        let auth = take_basic_auth(&mut url).map_err(invalid)?;
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|_| invalid("not a valid HTTP request target"))?;
        let host = host_header(&uri).ok_or_else(|| invalid("no host"))?;
        let root = {
            let mut parts = uri.clone().into_parts();
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
            Uri::from_parts(parts).map_err(|_| invalid("no root"))?
        };
        let proxy = Matcher::from_system().intercept(&uri);
        let https = uri.scheme_str() == Some("https");
        let mut common = HeaderMap::with_capacity(6);
        common.insert(HOST, host);
        common.insert(ACCEPT, HeaderValue::from_static("application/json"));
        common.insert(USER_AGENT, HeaderValue::from_static(UA));
        if let Some(auth) = auth {
            common.insert(AUTHORIZATION, auth);
        }
        let forward_auth = proxy
            .as_ref()
            .filter(|_| !https)
            .and_then(|p| p.basic_auth().cloned());
        if let Some(auth) = forward_auth {
            common.insert(PROXY_AUTHORIZATION, auth);
        }
        let head = Parts {
            method: Method::HEAD,
            uri: root,
            headers: common.clone(),
        };
        common.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(cfg.format.content_type()),
        );
        let post = Parts {
            method: Method::POST,
            uri,
            headers: common,
        };

        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(cfg.request_timeout));
        tcp.set_keepalive(Some(TCP_KEEPALIVE));
        tcp.set_keepalive_interval(Some(TCP_KEEPALIVE));
        tcp.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
        let tls = Arc::new(tls_config()?);
        let direct: Tcp = HttpsConnector::from((tcp, tls.clone()));
        let connector = match proxy {
            None => Connector::Direct(direct),
            Some(p) => {
                info!(proxy = %redact_url(&p.uri().to_string()), "CTI requests go through the proxy set in the environment");
                let scheme = p.uri().scheme_str().unwrap_or_default();
                if scheme != "http" && scheme != "https" {
                    Connector::Unusable("the proxy set in the environment is not an HTTP(S) proxy (SOCKS is not supported)")
                } else if https {
                    let mut tunnel = Tunnel::new(p.uri().clone(), direct);
                    if let Some(auth) = p.basic_auth() {
                        tunnel = tunnel.with_auth(auth.clone());
                    }
                    let mut headers = HeaderMap::new();
                    headers.insert(USER_AGENT, HeaderValue::from_static(UA));
                    tunnel = tunnel.with_headers(headers);
                    Connector::Tunnel(HttpsConnector::from((tunnel, tls)))
                } else {
                    Connector::Forward {
                        to: direct,
                        proxy: p.uri().clone(),
                    }
                }
            }
        };
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            // one idle connection per lane is all the lanes can use
            .pool_max_idle_per_host(cfg.max_in_flight.saturating_add(cfg.newcall_slots))
            .build(connector);
        Ok(Http {
            client,
            post: Arc::new(post),
            head: Arc::new(head),
            timeout: cfg.request_timeout,
        })
    }

    /// POST `body` (shared, not copied) to the CTI URL, within `request_timeout`.
    ///
    /// Returns the status and the response body (empty if the body could not be read in
    /// time: the status is Zammad's answer either way). Errors: the error text (without
    /// the URL) and whether the request certainly never reached Zammad (`true`: the
    /// connection, TLS included, could not be set up; `false`: time-out, or the connection
    /// failed after the request was written).
    pub(super) async fn post(&self, body: Bytes) -> Result<(u16, Bytes), (String, bool)> {
        let (resp, deadline) = self.send(&self.post, body).await?;
        let status = resp.status().as_u16();
        let body = match tokio::time::timeout_at(deadline, resp.into_body().collect()).await {
            Ok(Ok(collected)) => collected.to_bytes(),
            _ => Bytes::new(),
        };
        Ok((status, body))
    }

    /// HEAD the server's root (`scheme://host[:port]/`, no token) within
    /// `request_timeout`, and read the (empty) answer to its end so the connection goes
    /// back to the pool. Whatever status the server answers is fine.
    ///
    /// Errors: the error text, without the URL.
    pub(super) async fn head_root(&self) -> Result<(), String> {
        let (resp, deadline) = self.send(&self.head, Bytes::new()).await.map_err(|e| e.0)?;
        match tokio::time::timeout_at(deadline, resp.into_body().collect()).await {
            Err(_) => Err(TIMEOUT_TEXT.to_string()),
            Ok(Err(e)) => Err(format!("request or response body error: {}", chain(&e))),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Send a request of `parts` with `body` and wait for the response head, within
    /// `request_timeout` from now. Returns the response and the deadline (for reading its
    /// body). Errors: the error text (without the URL) and whether the request certainly
    /// never left (`true`: the connection could not be set up; `false`: time-out, or the
    /// connection failed after the request was written).
    async fn send(
        &self,
        parts: &Parts,
        body: Bytes,
    ) -> Result<(http::Response<hyper::body::Incoming>, tokio::time::Instant), (String, bool)> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        match tokio::time::timeout_at(deadline, self.client.request(parts.request(body))).await {
            Err(_) => Err((TIMEOUT_TEXT.to_string(), false)),
            Ok(Err(e)) => Err((error_text(&e), e.is_connect())),
            Ok(Ok(resp)) => Ok((resp, deadline)),
        }
    }
}

/// The rustls client setup reqwest's `rustls-tls` uses: the process's default crypto
/// provider if one is installed, else ring; TLS 1.2 and 1.3; the webpki root store; SNI;
/// ALPN `http/1.1`.
///
/// Errors: [`ConfigError::Http`] if the provider supports none of the TLS versions.
fn tls_config() -> Result<rustls::ClientConfig, ConfigError> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| ConfigError::Http(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// Take the userinfo out of `url` and turn it into an `Authorization: Basic` value
/// (username and password percent-decoded, the value marked sensitive), as reqwest does.
/// `Ok(None)` if the URL has no userinfo.
///
/// Errors: a reason (without the userinfo) if it is not UTF-8 once percent-decoded.
fn take_basic_auth(url: &mut url::Url) -> Result<Option<HeaderValue>, &'static str> {
    if url.username().is_empty() && url.password().is_none() {
        return Ok(None);
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "the userinfo is not UTF-8 once percent-decoded")
    };
    let user = decode(url.username())?;
    let password = url.password().map(decode).transpose()?;
    // http(s) URLs with a host always take these
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let mut plain = user;
    plain.push(':');
    if let Some(p) = password {
        plain.push_str(&p);
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(plain);
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .map_err(|_| "the userinfo cannot be sent as Basic auth")?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// The Host header for `uri`: its host (IPv6 in brackets), with the port unless it is the
/// scheme's default (hyper-util's rule). None without a host.
fn host_header(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let value = match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_string(),
    };
    HeaderValue::try_from(value).ok()
}

/// A hyper-util client error as text, without the URL (none of its errors holds one), in
/// reqwest's words: `timeout: ` if a cause is a time-out, else `connect: ` if the
/// connection could not be set up, then `error sending request` and the causes.
fn error_text(e: &hyper_util::client::legacy::Error) -> String {
    let timed_out = {
        let mut src = e.source();
        let mut found = false;
        while let Some(s) = src {
            if s.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
                || s.downcast_ref::<hyper::Error>()
                    .is_some_and(|h| h.is_timeout())
            {
                found = true;
                break;
            }
            src = s.source();
        }
        found
    };
    let kind = if timed_out {
        "timeout: "
    } else if e.is_connect() {
        "connect: "
    } else {
        ""
    };
    format!("{kind}error sending request: {}", chain(e))
}

/// `e` and its causes, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(url: &str) -> String {
        let uri: Uri = url.parse().unwrap();
        host_header(&uri).unwrap().to_str().unwrap().to_string()
    }

    #[test]
    fn host_header_drops_only_the_default_port() {
        assert_eq!(host_of("http://z.example/x"), "z.example");
        assert_eq!(host_of("http://z.example:80/x"), "z.example");
        assert_eq!(host_of("https://z.example:443/x"), "z.example");
        assert_eq!(host_of("https://z.example:80/x"), "z.example:80");
        assert_eq!(host_of("http://z.example:443/x"), "z.example:443");
        assert_eq!(host_of("http://127.0.0.1:3000/x"), "127.0.0.1:3000");
        assert_eq!(host_of("https://[::1]:8443/x"), "[::1]:8443");
        assert_eq!(host_of("https://[::1]/x"), "[::1]");
    }

    #[test]
    fn userinfo_is_taken_out_as_basic_auth() {
        let mut u = url::Url::parse("https://us%40er:p%3Aw@z.example/api/v1/cti/T").unwrap();
        let v = take_basic_auth(&mut u).unwrap().unwrap();
        // base64("us@er:p:w")
        assert_eq!(v.to_str().unwrap(), "Basic dXNAZXI6cDp3");
        assert!(v.is_sensitive());
        assert_eq!(u.as_str(), "https://z.example/api/v1/cti/T");
        let mut u = url::Url::parse("https://user@z.example/").unwrap();
        let v = take_basic_auth(&mut u).unwrap().unwrap();
        assert_eq!(v.to_str().unwrap(), "Basic dXNlcjo="); // "user:"
        let mut u = url::Url::parse("https://z.example/").unwrap();
        assert!(take_basic_auth(&mut u).unwrap().is_none());
        let mut u = url::Url::parse("https://%FF:x@z.example/").unwrap();
        assert!(take_basic_auth(&mut u).is_err());
    }

    #[tokio::test]
    async fn the_request_parts_are_built_once_right() {
        let cfg = ClientConfig::default();
        let url = url::Url::parse("https://a:b@z.example:8443/api/v1/cti/TOKEN?q=1#f").unwrap();
        let h = Http::new(url, "https://z.example:8443/***", &cfg).unwrap();
        let req = h.post.request(Bytes::from_static(b"{}"));
        assert_eq!(req.method(), Method::POST);
        assert_eq!(
            req.uri().to_string(),
            "https://z.example:8443/api/v1/cti/TOKEN?q=1"
        );
        let hd = req.headers();
        assert_eq!(hd[HOST], "z.example:8443");
        assert_eq!(hd[ACCEPT], "application/json");
        assert_eq!(hd[CONTENT_TYPE], "application/json");
        assert_eq!(hd[AUTHORIZATION], "Basic YTpi");
        let req = h.head.request(Bytes::new());
        assert_eq!(req.method(), Method::HEAD);
        assert_eq!(req.uri().to_string(), "https://z.example:8443/");
        assert!(req.headers().get(CONTENT_TYPE).is_none());
        assert_eq!(req.headers()[AUTHORIZATION], "Basic YTpi");
    }
}
