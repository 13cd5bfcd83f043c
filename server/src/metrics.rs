//! Prometheus metrics, served on the ops listener at `/metrics`.

use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub mail_sent: IntCounterVec,
    pub mail_retried: IntCounterVec,
    pub mail_failed: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("portal".into()), None).expect("a valid metrics prefix");
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["tenant"])
                .expect("valid metric definition");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        Self {
            mail_sent: counter("mail_sent_total", "Mails delivered"),
            mail_retried: counter(
                "mail_retried_total",
                "Delivery attempts that failed temporarily and were rescheduled",
            ),
            mail_failed: counter(
                "mail_failed_total",
                "Mails given up: refused permanently or out of attempts",
            ),
            registry,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding metrics to memory");
        String::from_utf8(out).expect("metrics are UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
