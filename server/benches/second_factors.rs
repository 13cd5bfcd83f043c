//! Second-factor verification per second on one core: TOTP codes (right code, and wrong
//! codes, which also run the ±10 min clock-drift search) and passkey assertions (ECDSA
//! P-256 signatures from webauthn-authenticator-rs's software passkey, verified by
//! webauthn-rs exactly as the login step does). One thread; compare rows of one run.
//!
//!     cargo bench --bench second_factors

use std::time::{Duration, Instant};

use portal::mfa::totp::{self, Check};
use portal::tenant::settings::TotpPolicy;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::AuthenticatorBackend;
use webauthn_rs::prelude::{Url, Uuid};
use webauthn_rs::WebauthnBuilder;

const TOTP_N: usize = 20_000;
const PASSKEY_N: usize = 2_000;

fn row(what: &str, n: usize, elapsed: Duration) {
    let per_sec = n as f64 / elapsed.as_secs_f64();
    let micros = elapsed.as_secs_f64() * 1e6 / n as f64;
    println!("| {what:<44} | {n:>6} | {per_sec:>10.0} | {micros:>8.1} |");
}

fn totp_rows() {
    let policy = TotpPolicy::default();
    let secret = totp::new_secret();
    let now = 1_800_000_000;
    let right = totp::code_at(&policy, &secret, now);
    let start = Instant::now();
    for _ in 0..TOTP_N {
        assert!(matches!(
            totp::check(&policy, &secret, &right, now),
            Check::Valid { .. }
        ));
    }
    row("TOTP, right code", TOTP_N, start.elapsed());
    let start = Instant::now();
    for i in 0..TOTP_N {
        let wrong = format!("{:06}", (i * 7919) % 1_000_000);
        if wrong != right {
            std::hint::black_box(totp::check(&policy, &secret, &wrong, now));
        }
    }
    row(
        "TOTP, wrong code (with drift search)",
        TOTP_N,
        start.elapsed(),
    );
}

fn passkey_rows() {
    let origin = Url::parse("https://daiwakenpo.example.jp").unwrap();
    let webauthn = WebauthnBuilder::new("daiwakenpo.example.jp", &origin)
        .unwrap()
        .build()
        .unwrap();
    let mut device = SoftPasskey::new(true);
    let (options, registration) = webauthn
        .start_passkey_registration(Uuid::from_u128(7), "member", "組合員", None)
        .unwrap();
    let credential = device
        .perform_register(origin.clone(), options.public_key, 60_000)
        .unwrap();
    let passkey = webauthn
        .finish_passkey_registration(&credential, &registration)
        .unwrap();

    // The browser's part (challenge, signature) happens before the clock starts.
    let ceremonies: Vec<_> = (0..PASSKEY_N)
        .map(|_| {
            let (options, state) = webauthn
                .start_passkey_authentication(std::slice::from_ref(&passkey))
                .unwrap();
            let assertion = device
                .perform_auth(origin.clone(), options.public_key, 60_000)
                .unwrap();
            (state, assertion)
        })
        .collect();
    let start = Instant::now();
    for (state, assertion) in &ceremonies {
        webauthn
            .finish_passkey_authentication(assertion, state)
            .unwrap();
    }
    row(
        "passkey assertion (ES256) verified",
        PASSKEY_N,
        start.elapsed(),
    );

    let start = Instant::now();
    for _ in 0..PASSKEY_N {
        std::hint::black_box(
            webauthn
                .start_passkey_authentication(std::slice::from_ref(&passkey))
                .unwrap(),
        );
    }
    row(
        "passkey challenge issued (options + state)",
        PASSKEY_N,
        start.elapsed(),
    );
}

fn main() {
    println!("| operation                                    |      n |   per second | µs each |");
    println!("|----------------------------------------------|-------:|-------------:|--------:|");
    totp_rows();
    passkey_rows();
}
