//! Temporary credentials, as printed on the letter a society sends a new member.

use rand::Rng;

/// Characters that cannot be misread on paper (no 0/O, 1/l/I).
const LETTER_SAFE: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

fn pick(len: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| LETTER_SAFE[rng.gen_range(0..LETTER_SAFE.len())] as char)
        .collect()
}

/// A temporary user ID: 10 characters, unique enough to retry on the rare clash.
pub fn temporary_user_id() -> String {
    pick(10)
}

/// A temporary password: 12 characters (about 59 bits), single-use by design: the
/// member must replace it at first login.
pub fn temporary_password() -> String {
    pick(12)
}
