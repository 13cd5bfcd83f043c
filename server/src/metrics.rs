//! Prometheus metrics, served on the ops listener at `/metrics`.
//!
//! Requests are counted by tenant, route and status; their latency is a histogram by route
//! only, so the series stay bounded with ten thousand tenants. Routes are path templates
//! (`/admin/members/:id`), and anything answered 404 is counted as `unmatched`, so random
//! paths cannot create series.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub mail_sent: IntCounterVec,
    pub mail_retried: IntCounterVec,
    pub mail_failed: IntCounterVec,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    /// Sign-in steps by method (`password`, `passkey`, `totp`, `email_otp`) and result.
    pub sign_ins: IntCounterVec,
    pub lockouts: IntCounterVec,
    /// Attempts refused by a throttle, by throttle.
    pub throttled: IntCounterVec,
    /// Rows removed by the retention sweeper, by kind.
    pub swept: IntCounterVec,
    mail_queue_depth: IntGauge,
    mail_queue_oldest_seconds: Gauge,
    hash_in_flight: IntGauge,
    hash_waiting: IntGauge,
    hashes_started: IntGauge,
    hash_wait_seconds: Gauge,
    tenant_cache_entries: IntGauge,
}

/// Values read when the metrics are scraped.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub mail_queue_depth: i64,
    pub mail_queue_oldest_seconds: f64,
    pub hasher: crate::auth::password::HasherStats,
    pub tenant_cache_entries: u64,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("portal".into()), None).expect("a valid metrics prefix");
        let register = |c: Box<dyn prometheus::core::Collector>| {
            registry.register(c).expect("metric registered once");
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c =
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
            register(Box::new(c.clone()));
            c
        };
        let int_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric definition");
            register(Box::new(g.clone()));
            g
        };
        let gauge = |name: &str, help: &str| {
            let g = Gauge::new(name, help).expect("valid metric definition");
            register(Box::new(g.clone()));
            g
        };
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer a request on the member listener, by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route"],
        )
        .expect("valid metric definition");
        register(Box::new(request_seconds.clone()));
        Self {
            mail_sent: counter("mail_sent_total", "Mails delivered", &["tenant"]),
            mail_retried: counter(
                "mail_retried_total",
                "Delivery attempts that failed temporarily and were rescheduled",
                &["tenant"],
            ),
            mail_failed: counter(
                "mail_failed_total",
                "Mails given up: refused permanently or out of attempts",
                &["tenant"],
            ),
            requests: counter(
                "http_requests_total",
                "Requests answered on the member listener",
                &["tenant", "route", "status"],
            ),
            request_seconds,
            sign_ins: counter(
                "sign_ins_total",
                "Sign-in steps by method and result",
                &["method", "result"],
            ),
            lockouts: counter("lockouts_total", "Accounts locked", &["tenant"]),
            throttled: counter(
                "throttled_total",
                "Attempts refused by a per-address throttle",
                &["throttle"],
            ),
            swept: counter(
                "sweep_deleted_total",
                "Rows removed by the retention sweeper",
                &["kind"],
            ),
            mail_queue_depth: int_gauge(
                "mail_queue_depth",
                "Mails queued or being delivered, all nodes",
            ),
            mail_queue_oldest_seconds: gauge(
                "mail_queue_oldest_age_seconds",
                "Age of the oldest mail not yet delivered",
            ),
            hash_in_flight: int_gauge(
                "password_hash_in_flight",
                "Password checks and hashes admitted on this node, running or waiting",
            ),
            hash_waiting: int_gauge(
                "password_hash_queue_depth",
                "Password checks and hashes waiting for a hashing thread",
            ),
            hashes_started: int_gauge(
                "password_hashes_total",
                "Password checks and hashes that reached a hashing thread",
            ),
            hash_wait_seconds: gauge(
                "password_hash_wait_seconds_total",
                "Total time password checks and hashes waited for a hashing thread",
            ),
            tenant_cache_entries: int_gauge(
                "tenant_cache_entries",
                "Host names cached by the tenant registry",
            ),
            registry,
        }
    }

    /// The text exposition format, with the gauges set from `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        self.mail_queue_depth.set(snapshot.mail_queue_depth);
        self.mail_queue_oldest_seconds
            .set(snapshot.mail_queue_oldest_seconds);
        let h = &snapshot.hasher;
        self.hash_in_flight
            .set(i64::try_from(h.in_flight).unwrap_or(i64::MAX));
        self.hash_waiting
            .set(i64::try_from(h.waiting).unwrap_or(i64::MAX));
        self.hashes_started
            .set(i64::try_from(h.started).unwrap_or(i64::MAX));
        self.hash_wait_seconds.set(h.waited_seconds);
        self.tenant_cache_entries
            .set(i64::try_from(snapshot.tenant_cache_entries).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding metrics to memory");
        String::from_utf8(out).expect("metrics are UTF-8")
    }

    /// Counts one answered request.
    pub fn observe_request(&self, tenant: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.requests
            .with_label_values(&[tenant, route, &status])
            .inc();
        self.request_seconds
            .with_label_values(&[route])
            .observe(seconds);
    }

    pub fn sign_in(&self, method: &str, result: &str) {
        self.sign_ins.with_label_values(&[method, result]).inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The route of a path for the metrics: static words kept, anything that looks like an id
/// (digits, long or odd segments) replaced by `:id`; static files as one route.
pub fn route_of(path: &str, status: u16) -> String {
    if status == 404 {
        return "unmatched".to_owned();
    }
    if path.starts_with("/static/") {
        return "/static/*".to_owned();
    }
    let mut route = String::new();
    for segment in path.split('/').filter(|s| !s.is_empty()).take(6) {
        route.push('/');
        let word = segment.len() <= 24
            && segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_' || b == b'.');
        route.push_str(if word { segment } else { ":id" });
    }
    if route.is_empty() {
        route.push('/');
    }
    route
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn routes_hide_ids() {
        assert_eq!(route_of("/", 200), "/");
        assert_eq!(route_of("/login", 200), "/login");
        assert_eq!(
            route_of("/admin/members/m_01HXYZ123", 200),
            "/admin/members/:id"
        );
        assert_eq!(route_of("/static/uploads/abc.png", 200), "/static/*");
        assert_eq!(route_of("/whatever/random", 404), "unmatched");
    }
}
