//! The first thing every request on the member listener meets: who really sent it (behind
//! trusted proxies only), a request id, the access log line and the request metrics.
//!
//! `X-Forwarded-For`, `X-Forwarded-Host`, `X-Forwarded-Proto` and `Forwarded` are believed
//! only when the connection comes from a network in `PORTAL_TRUSTED_PROXIES`; from anyone
//! else they are removed before anything reads them, so a client cannot choose its tenant,
//! its address in the audit log or its throttle counter.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use poem::http::{header, HeaderName, HeaderValue};
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;

use super::AppState;

/// The address the request came from: the peer, or the client a trusted proxy names.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// `https` or `http`, as the client used it (a trusted proxy's word, else the listener's).
#[derive(Debug, Clone)]
pub struct ClientProto(pub &'static str);

/// This request's id: in the `X-Request-Id` response header, on error pages and in every
/// log line written while it is served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The tenant that served a response (slug), for the access log and metrics.
#[derive(Debug, Clone)]
pub struct ServedTenant(pub String);

pub const REQUEST_ID_HEADER: &str = "x-request-id";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_HOST: &str = "x-forwarded-host";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const FORWARDED: &str = "forwarded";

tokio::task_local! {
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

/// The trusted proxies' networks, parsed once.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Arc<Vec<ipnet::IpNet>>);

impl TrustedProxies {
    fn contains(&self, ip: &IpAddr) -> bool {
        let ip = canonical(*ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// An IPv4 address carried in IPv6 (`::ffff:a.b.c.d`) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub async fn edge<E: Endpoint>(next: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let state = req
        .data::<Arc<AppState>>()
        .cloned()
        .expect("AppState is attached to the member app");
    let peer = req
        .remote_addr()
        .as_socket_addr()
        .map(|a| canonical(a.ip()));
    let trusted = peer.is_some_and(|p| state.trusted_proxies.contains(&p));
    let forwarded = if trusted {
        Forwarded::read(req.headers())
    } else {
        Forwarded::default()
    };
    for name in [
        X_FORWARDED_FOR,
        X_FORWARDED_HOST,
        X_FORWARDED_PROTO,
        FORWARDED,
    ] {
        req.headers_mut().remove(name);
    }
    let client = forwarded
        .client(&state.trusted_proxies)
        .or(peer)
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if let Some(host) = forwarded
        .host
        .as_deref()
        .filter(|h| crate::tenant::normalize_host(h).is_some())
        .and_then(|h| HeaderValue::from_str(h).ok())
    {
        req.headers_mut().insert(header::HOST, host);
    }
    let proto = match forwarded.proto.as_deref() {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        Some(_) => "http",
        None if state.config.secure_cookies() => "https",
        None => "http",
    };
    let request_id = trusted
        .then(|| req.headers().get(REQUEST_ID_HEADER))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    req.extensions_mut().insert(ClientIp(client));
    req.extensions_mut().insert(ClientProto(proto));
    req.extensions_mut().insert(RequestId(request_id.clone()));

    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        tenant = tracing::field::Empty,
        member = tracing::field::Empty,
        admin = tracing::field::Empty,
    );
    let mut response = CURRENT_REQUEST_ID
        .scope(
            request_id.clone(),
            async { next.call(req).await.map(IntoResponse::into_response) }
                .instrument(span.clone()),
        )
        .await
        .unwrap_or_else(|e| e.into_response());
    let status = response.status().as_u16();
    let tenant = response
        .extensions()
        .get::<ServedTenant>()
        .map(|t| t.0.clone())
        .unwrap_or_else(|| "-".to_owned());
    let seconds = started.elapsed().as_secs_f64();
    state.metrics.observe_request(
        &tenant,
        &crate::metrics::route_of(&path, status),
        status,
        seconds,
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    span.in_scope(|| {
        tracing::info!(
            target: "portal::access",
            client = %client,
            method = %method,
            path = %path,
            status,
            ms = (seconds * 1000.0).round() as u64,
            "request"
        );
    });
    Ok(response)
}

/// 24 hex digits from the thread's generator: an id needs to be unique, not secret, and
/// asking the kernel for every request cost a system call each.
fn new_request_id() -> String {
    use rand::Rng;
    hex::encode(rand::thread_rng().gen::<[u8; 12]>())
}

/// What trusted proxies said about the client.
#[derive(Debug, Default)]
struct Forwarded {
    /// Addresses from the client outwards: `X-Forwarded-For` or the `for=` of `Forwarded`.
    chain: Vec<IpAddr>,
    host: Option<String>,
    proto: Option<String>,
}

impl Forwarded {
    fn read(headers: &poem::http::HeaderMap) -> Self {
        let all = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let mut out = Forwarded::default();
        // RFC 7239 first; the X- headers when it is absent.
        let elements = all(FORWARDED);
        if !elements.is_empty() {
            for element in &elements {
                for pair in element.split(';') {
                    let Some((key, value)) = pair.trim().split_once('=') else {
                        continue;
                    };
                    let value = value.trim().trim_matches('"');
                    match key.trim().to_ascii_lowercase().as_str() {
                        "for" => out.chain.extend(parse_node(value)),
                        "host" => out.host = Some(value.to_owned()),
                        "proto" => out.proto = Some(value.to_owned()),
                        _ => {}
                    }
                }
            }
            return out;
        }
        out.chain = all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|s| parse_node(s))
            .collect();
        // The proxy nearest to us appends last: its word counts.
        out.host = all(X_FORWARDED_HOST).pop();
        out.proto = all(X_FORWARDED_PROTO).pop();
        out
    }

    /// The client: walking from the nearest hop outwards, the first address that is not one
    /// of our proxies (what a client wrote further left cannot be checked).
    fn client(&self, trusted: &TrustedProxies) -> Option<IpAddr> {
        self.chain
            .iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .or(self.chain.first())
            .map(|ip| canonical(*ip))
    }
}

/// An address as proxies write it: `203.0.113.5`, `203.0.113.5:4711`, `[2001:db8::1]:4711`
/// or `2001:db8::1`. Obfuscated and `unknown` nodes give nothing.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    s.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies(Arc::new(nets.iter().map(|n| n.parse().unwrap()).collect()))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> poem::http::HeaderMap {
        let mut h = poem::http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let f = Forwarded::read(&headers(&[(
            X_FORWARDED_FOR,
            "198.51.100.7, 203.0.113.9, 10.0.0.2",
        )]));
        // 198.51.100.7 was written by the client itself; 203.0.113.9 reached our proxy.
        assert_eq!(f.client(&proxies), Some("203.0.113.9".parse().unwrap()));
        let f = Forwarded::read(&headers(&[(
            FORWARDED,
            "for=\"[2001:db8::1]:4711\";proto=https;host=kanekakenpo.example.jp",
        )]));
        assert_eq!(f.client(&proxies), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(f.host.as_deref(), Some("kanekakenpo.example.jp"));
        assert_eq!(f.proto.as_deref(), Some("https"));
        let f = Forwarded::read(&headers(&[(X_FORWARDED_FOR, "garbage, unknown")]));
        assert_eq!(f.client(&proxies), None);
        assert!(proxies.contains(&"::ffff:10.1.2.3".parse().unwrap()));
    }
}
