//! TOTP (RFC 6238, HMAC-SHA1) for authenticator apps: secrets, the `otpauth://` URI and its
//! QR code, and checking a code against a time window. Pure logic: the caller supplies the
//! time, stores the sealed secret and records the accepted step
//! ([`crate::store::Store::use_totp_step`]) so that a code is accepted once only.

use totp_rs::qrcodegen_image::{self, image, qrcodegen};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::tenant::settings::TotpPolicy;

/// Length of a new secret: 160 bits, the HMAC-SHA1 output size (RFC 4226 §4).
pub const SECRET_LEN: usize = 20;

/// How far off a device clock may be for [`check`] to recognise a code as the device's and
/// report the drift (it is still refused).
pub const DRIFT_WINDOW_SECONDS: i64 = 10 * 60;

/// A new random secret of [`SECRET_LEN`] bytes.
pub fn new_secret() -> Vec<u8> {
    use rand::RngCore;
    let mut secret = vec![0u8; SECRET_LEN];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret as the key a member types into an app: RFC 4648 base32, upper case, no padding.
pub fn base32(secret: &[u8]) -> String {
    Secret::Raw(secret.to_vec()).to_encoded().to_string()
}

/// The key URI authenticator apps import, with every parameter spelled out:
/// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=…&period=…`.
/// Issuer and account are percent-encoded as UTF-8, so Japanese issuers survive.
pub fn otpauth_uri(policy: &TotpPolicy, account: &str, secret: &[u8]) -> String {
    let issuer = percent_encode(&policy.issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1\
         &digits={digits}&period={period}",
        account = percent_encode(account),
        secret = base32(secret),
        digits = policy.digits,
        period = policy.period_seconds,
    )
}

/// A PNG of the QR code of `uri` (black on white, 8 pixels a module, 4-module quiet zone).
///
/// # Panics
/// If `uri` is longer than a QR code holds (about 2,900 bytes): tenant issuers are at most
/// 60 characters and user IDs are short, so a key URI is far below that.
pub fn qr_png(uri: &str) -> Vec<u8> {
    use image::ImageEncoder;
    use qrcodegen::{QrCode, QrCodeEcc};
    let qr = QrCode::encode_text(uri, QrCodeEcc::Medium)
        .or_else(|_| QrCode::encode_text(uri, QrCodeEcc::Low))
        .expect("a TOTP key URI fits in a QR code");
    let canvas = qrcodegen_image::draw_canvas(qr);
    let (width, height) = canvas.dimensions();
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(canvas.as_raw(), width, height, image::ExtendedColorType::L8)
        .expect("PNG encoding of an in-memory image does not fail");
    png
}

/// The code the device shows at `unix_time`.
pub fn code_at(policy: &TotpPolicy, secret: &[u8], unix_time: i64) -> String {
    code_for_step(policy, secret, step_of(policy, unix_time))
}

/// The outcome of [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The code of time step `step`, within the tenant's window. Accept it only if
    /// [`crate::store::Store::use_totp_step`] says this step was not used yet.
    Valid {
        step: i64,
    },
    Wrong,
    /// The device's code, but for a time `seconds` away from ours (positive: the device
    /// clock is ahead). Refused; the member can be told to correct the clock.
    ClockDrift {
        seconds: i64,
    },
}

/// Checks `code` (as typed, after [`normalize_code`]) at time `now`: exactly `digits` ASCII
/// digits, equal (in constant time) to the code of a step within ±`skew_steps` of now. A
/// code that only matches a step within ±[`DRIFT_WINDOW_SECONDS`] is [`Check::ClockDrift`].
pub fn check(policy: &TotpPolicy, secret: &[u8], code: &str, now: i64) -> Check {
    if code.len() != digits(policy) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Check::Wrong;
    }
    let period = period(policy);
    let current = step_of(policy, now);
    let matches = |step: i64| {
        step >= 0
            && crate::crypto::constant_time_eq(
                code_for_step(policy, secret, step).as_bytes(),
                code.as_bytes(),
            )
    };
    // Nearest steps first: should two steps share a code, the likelier one wins.
    let skew = i64::from(policy.skew_steps);
    for offset in offsets(skew) {
        if matches(current + offset) {
            return Check::Valid {
                step: current + offset,
            };
        }
    }
    let drift_steps = DRIFT_WINDOW_SECONDS / period;
    for offset in offsets(drift_steps).filter(|o| o.abs() > skew) {
        if matches(current + offset) {
            return Check::ClockDrift {
                seconds: offset * period,
            };
        }
    }
    Check::Wrong
}

/// A code as typed made checkable: spaces (also full-width ones) removed, full-width digits
/// (０–９) made ASCII. Manuals tell members to drop the space apps show mid-code; many
/// Japanese keyboards type full-width digits.
pub fn normalize_code(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
            _ => c,
        })
        .collect()
}

/// 0, -1, 1, -2, 2, … up to ±`max`.
fn offsets(max: i64) -> impl Iterator<Item = i64> {
    std::iter::once(0).chain((1..=max).flat_map(|d| [-d, d]))
}

// Tenant files are validated (digits 6–8, period 15–120 s); the bounds here only keep a
// bad value from panicking.
fn digits(policy: &TotpPolicy) -> usize {
    policy.digits.clamp(1, 9) as usize
}

fn period(policy: &TotpPolicy) -> i64 {
    i64::from(policy.period_seconds.max(1))
}

fn step_of(policy: &TotpPolicy, unix_time: i64) -> i64 {
    unix_time.max(0) / period(policy)
}

fn code_for_step(policy: &TotpPolicy, secret: &[u8], step: i64) -> String {
    let period = period(policy) as u64;
    let totp = TOTP::new_unchecked(
        Algorithm::SHA1,
        digits(policy),
        0,
        period,
        secret.to_vec(),
        None,
        String::new(),
    );
    totp.generate(step.max(0) as u64 * period)
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const RFC_SEED: &[u8] = b"12345678901234567890";

    fn policy(digits: u32, skew_steps: u32) -> TotpPolicy {
        TotpPolicy {
            digits,
            period_seconds: 30,
            skew_steps,
            issuer: "Portal".into(),
        }
    }

    /// Whether `tool` runs; if not, fails the test saying which package to install.
    fn require(tool: &str, package: &str) {
        let found = Command::new(tool).arg("--version").output().is_ok();
        assert!(
            found,
            "`{tool}` is not installed: install it with `apt-get install -y {package}` \
             (tests/run does)"
        );
    }

    #[test]
    fn rfc_6238_sha1_vectors() {
        let p = policy(8, 1);
        for (t, code) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code_at(&p, RFC_SEED, t), code, "T = {t}");
            assert_eq!(
                check(&p, RFC_SEED, code, t),
                Check::Valid { step: t / 30 },
                "T = {t}"
            );
        }
    }

    #[test]
    fn one_step_either_side_is_accepted_two_are_not() {
        let p = policy(6, 1);
        let secret = RFC_SEED;
        let now = 1_800_000_015;
        let step = now / 30;
        for offset in [-1, 0, 1] {
            let code = code_at(&p, secret, now + offset * 30);
            assert_eq!(
                check(&p, secret, &code, now),
                Check::Valid {
                    step: step + offset
                }
            );
        }
        for offset in [-2, 2] {
            let code = code_at(&p, secret, now + offset * 30);
            assert_eq!(
                check(&p, secret, &code, now),
                Check::ClockDrift {
                    seconds: offset * 30
                }
            );
        }
        // Skew 0: only the current step.
        let strict = policy(6, 0);
        let previous = code_at(&strict, secret, now - 30);
        assert!(!matches!(
            check(&strict, secret, &previous, now),
            Check::Valid { .. }
        ));
    }

    #[test]
    fn a_device_clock_off_by_minutes_is_reported_with_its_sign() {
        let p = policy(6, 1);
        let secret = RFC_SEED;
        let now = 1_800_000_007;
        for drift in [180, -300, 600, -600] {
            let code = code_at(&p, secret, now + drift);
            match check(&p, secret, &code, now) {
                Check::ClockDrift { seconds } => assert!(
                    (seconds - drift).abs() < 30,
                    "drift {drift} reported as {seconds}"
                ),
                other => panic!("drift {drift}: {other:?}"),
            }
        }
        let far = code_at(&p, secret, now + 15 * 60);
        assert_eq!(check(&p, secret, &far, now), Check::Wrong);
    }

    #[test]
    fn malformed_codes_are_wrong() {
        let p = policy(6, 1);
        let now = 1_800_000_000;
        let code = code_at(&p, RFC_SEED, now);
        assert_eq!(code.len(), 6);
        for bad in [
            "",
            &code[..5],
            &format!("{code}0"),
            &format!("0{code}"),
            "12345a",
            "１２３４５６",
            &format!(" {}", &code[1..]),
            "+12345",
        ] {
            assert_eq!(check(&p, RFC_SEED, bad, now), Check::Wrong, "{bad:?}");
        }
        // The RFC 6238 8-digit code is not accepted where 6 digits are expected.
        assert_eq!(check(&p, RFC_SEED, "94287082", 59), Check::Wrong);
    }

    #[test]
    fn normalize_code_drops_spaces_and_narrows_full_width_digits() {
        assert_eq!(normalize_code("123 456"), "123456");
        assert_eq!(normalize_code(" 123\u{3000}456 \n"), "123456");
        assert_eq!(normalize_code("１２３　４５６"), "123456");
        assert_eq!(normalize_code("０９８７６５"), "098765");
        assert_eq!(normalize_code("12a456"), "12a456");
        let p = policy(6, 1);
        let now = 1_800_000_000;
        let code = code_at(&p, RFC_SEED, now);
        let typed: String = code
            .chars()
            .map(|c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap())
            .collect();
        let typed = format!("{} {}", &typed[..9], &typed[9..]);
        assert!(matches!(
            check(&p, RFC_SEED, &normalize_code(&typed), now),
            Check::Valid { .. }
        ));
    }

    #[test]
    fn base32_is_upper_case_without_padding() {
        assert_eq!(base32(RFC_SEED), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(base32(b"f"), "MY");
        let secret = new_secret();
        assert_eq!(secret.len(), SECRET_LEN);
        assert_ne!(secret, new_secret());
        assert_eq!(base32(&secret).len(), 32);
    }

    #[test]
    fn otpauth_uri_spells_out_every_parameter_and_encodes_japanese() {
        let p = TotpPolicy {
            digits: 6,
            period_seconds: 30,
            skew_steps: 1,
            issuer: "大和証券グループ健保".into(),
        };
        let issuer = "%E5%A4%A7%E5%92%8C%E8%A8%BC%E5%88%B8%E3%82%B0%E3%83%AB%E3%83%BC%E3%83%97\
                      %E5%81%A5%E4%BF%9D";
        assert_eq!(
            otpauth_uri(&p, "taro.yamada@example.jp", RFC_SEED),
            format!(
                "otpauth://totp/{issuer}:taro.yamada%40example.jp\
                 ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer={issuer}\
                 &algorithm=SHA1&digits=6&period=30"
            )
        );
        let plain = TotpPolicy {
            digits: 8,
            period_seconds: 60,
            skew_steps: 1,
            issuer: "My Kenpo".into(),
        };
        assert_eq!(
            otpauth_uri(&plain, "user 1", b"f"),
            "otpauth://totp/My%20Kenpo:user%201?secret=MY&issuer=My%20Kenpo\
             &algorithm=SHA1&digits=8&period=60"
        );
        // totp-rs reads our URI back with the same parameters and issuer.
        let parsed = TOTP::from_url_unchecked(otpauth_uri(&p, "taro", RFC_SEED)).unwrap();
        assert_eq!(parsed.issuer.as_deref(), Some("大和証券グループ健保"));
        assert_eq!(parsed.account_name, "taro");
        assert_eq!(parsed.secret, RFC_SEED);
        assert_eq!((parsed.digits, parsed.step), (6, 30));
    }

    #[test]
    fn qr_png_decodes_to_the_uri() {
        require("zbarimg", "zbar-tools");
        let p = TotpPolicy {
            issuer: "大和証券グループ健保".into(),
            ..policy(6, 1)
        };
        let uri = otpauth_uri(&p, "taro.yamada", &new_secret());
        let png = qr_png(&uri);
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("totp.png");
        std::fs::write(&file, &png).unwrap();
        let out = Command::new("zbarimg")
            .args(["--quiet", "--raw"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "zbarimg: {out:?}");
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim_end(), uri);
    }

    #[test]
    fn oathtool_codes_are_valid() {
        require("oathtool", "oathtool");
        let p = policy(6, 1);
        let secret = new_secret();
        // Lower case too: apps accept the key as typed.
        for key in [base32(&secret), base32(&secret).to_lowercase()] {
            let now = crate::store::now_unix();
            let out = Command::new("oathtool")
                .args(["--totp", "-b", &key])
                .output()
                .unwrap();
            assert!(out.status.success(), "oathtool: {out:?}");
            let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
            assert!(
                matches!(check(&p, &secret, &code, now), Check::Valid { .. }),
                "oathtool gave {code}"
            );
        }
        // And with a fixed time, the exact step.
        let out = Command::new("oathtool")
            .args(["--totp", "-b", "--now", "2033-05-18 03:33:20 UTC"])
            .arg(base32(RFC_SEED))
            .output()
            .unwrap();
        assert!(out.status.success(), "oathtool: {out:?}");
        let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert_eq!(
            check(&p, RFC_SEED, &code, 2_000_000_000),
            Check::Valid {
                step: 2_000_000_000 / 30
            }
        );
    }
}
