//! Secrets at rest: AES-256-GCM with one key per installation.
//!
//! The key comes from `PORTAL_SECRET_KEY` (base64 of 32 bytes; every node of a cluster
//! must share it). Without it, the embedded set-up generates one and keeps it in
//! `<data dir>/secret.key`, readable by its owner only.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;

const NONCE_LEN: usize = 12;
const KEY_FILE: &str = "secret.key";

#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    key: [u8; 32],
    /// During a key rotation: the previous key, which still opens (never seals).
    previous: Option<Aes256Gcm>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("sealed data cannot be opened (wrong key or altered)")]
pub struct OpenError;

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
            key: *key,
            previous: None,
        }
    }

    /// The configured key (or the data folder's), and `PORTAL_SECRET_KEY_PREVIOUS` when a
    /// rotation is under way.
    pub fn load_rotating(config: &crate::config::Config) -> anyhow::Result<Self> {
        let mut secrets = Self::load(config.secret_key.as_deref(), &config.data_dir)?;
        if let Some(text) = config.secret_key_previous.as_deref() {
            let key = parse_key(text).context("PORTAL_SECRET_KEY_PREVIOUS")?;
            secrets.previous = Some(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)));
        }
        Ok(secrets)
    }

    /// The configured key, or the data folder's own (created on first use).
    pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(text) = configured {
            return Ok(Self::from_key(
                &parse_key(text).context("PORTAL_SECRET_KEY")?,
            ));
        }
        let path = data_dir.join(KEY_FILE);
        if path.is_file() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            return Ok(Self::from_key(
                &parse_key(&text).with_context(|| path.display().to_string())?,
            ));
        }
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        if create_exclusive(&path, &B64.encode(key))? {
            tracing::info!(file = %path.display(), "generated a new secret key");
            Ok(Self::from_key(&key))
        } else {
            // Another process of this installation made one first: use theirs.
            Self::load(None, data_dir)
        }
    }

    /// A key for another purpose (`label`), derived from this one: SHA-256(label ‖ key).
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(label.as_bytes());
        hasher.update(b"\0");
        hasher.update(self.key);
        hasher.finalize().into()
    }

    /// Encrypts `plain`, bound to `context` (e.g. the row's id): a sealed value moved to
    /// another row does not open.
    pub fn seal(&self, plain: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption does not fail for in-memory data");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        B64.encode(out)
    }

    /// Opens a sealed value with the key, or with the previous key during a rotation.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, OpenError> {
        Self::open_with(&self.cipher, sealed, context).or_else(|e| match &self.previous {
            Some(previous) => Self::open_with(previous, sealed, context),
            None => Err(e),
        })
    }

    /// Whether `sealed` opens with the current key (a rotation leaves it alone).
    pub fn is_current(&self, sealed: &str, context: &str) -> bool {
        Self::open_with(&self.cipher, sealed, context).is_ok()
    }

    fn open_with(cipher: &Aes256Gcm, sealed: &str, context: &str) -> Result<Vec<u8>, OpenError> {
        let bytes = B64.decode(sealed).map_err(|_| OpenError)?;
        if bytes.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: data,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError)
    }
}

/// Every sealed column: table, key column, sealed column, the context it is sealed to
/// (`{key}` stands for the row's key) and which rows hold a sealed value.
const SEALED: &[(&str, &str, &str, &str, &str)] = &[
    ("mfa_devices", "id", "secret", "{key}", "kind = 'totp'"),
    ("admin_devices", "id", "secret", "{key}", "kind = 'totp'"),
    (
        "login_flows",
        "token_hash",
        "pending_secret",
        "{key}",
        "pending_secret IS NOT NULL",
    ),
    ("mail_outbox", "id", "content", "{key}", "content <> ''"),
    ("member_letters", "id", "sealed", "{key}", "sealed <> ''"),
    ("member_imports", "id", "rows", "{key}", "rows <> ''"),
    (
        "member_imports",
        "id",
        "credentials",
        "{key}:credentials",
        "credentials IS NOT NULL AND credentials <> ''",
    ),
];

/// `portal secrets rotate`: re-seals every value that does not open with the current key
/// but opens with the previous one. Returns the count per column. A value neither key
/// opens is left as it is and counted as `unreadable`.
pub async fn rotate(
    store: &crate::store::Store,
    secrets: &SecretBox,
) -> anyhow::Result<Vec<(String, u64)>> {
    let mut counts = Vec::new();
    let mut unreadable = 0;
    for (table, key, column, context, filter) in SEALED {
        let mut n = 0;
        for (row, sealed) in store.sealed_values(table, key, column, filter).await? {
            let ctx = context.replace("{key}", &row);
            if secrets.is_current(&sealed, &ctx) {
                continue;
            }
            let Ok(plain) = secrets.open(&sealed, &ctx) else {
                unreadable += 1;
                continue;
            };
            let resealed = secrets.seal(&plain, &ctx);
            if store
                .replace_sealed(table, key, column, &row, &sealed, &resealed)
                .await?
            {
                n += 1;
            }
        }
        counts.push((format!("{table}.{column}"), n));
    }
    counts.push(("unreadable".to_owned(), unreadable));
    Ok(counts)
}

/// Compares secrets without leaking through timing where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

fn parse_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = B64
        .decode(text.trim())
        .context("must be base64 (e.g. from `openssl rand -base64 32`)")?;
    match <[u8; 32]>::try_from(bytes.as_slice()) {
        Ok(key) => Ok(key),
        Err(_) => bail!(
            "must be 32 bytes, base64-encoded (is {} bytes)",
            bytes.len()
        ),
    }
}

/// Writes `text` to `path` only if no file is there, never leaving a partly written file
/// under that name: the content goes to a private temporary file that is then linked into
/// place. Returns false if `path` already existed.
fn create_exclusive(path: &Path, text: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", crate::random_token(8)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let a = SecretBox::from_key(&[7; 32]);
        let b = SecretBox::from_key(&[8; 32]);
        let sealed = a.seal("ワンタイムパスワード 123456".as_bytes(), "row-1");
        assert!(!sealed.contains("123456"));
        assert_eq!(
            a.open(&sealed, "row-1").unwrap(),
            "ワンタイムパスワード 123456".as_bytes()
        );
        assert!(a.open(&sealed, "row-2").is_err());
        assert!(b.open(&sealed, "row-1").is_err());
        assert!(a.open("not base64!", "row-1").is_err());
        // Two seals of the same value differ (fresh nonce).
        assert_ne!(a.seal(b"x", "c"), a.seal(b"x", "c"));
    }

    #[test]
    fn generated_key_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = SecretBox::load(None, dir.path()).unwrap();
        let sealed = first.seal(b"secret", "ctx");
        let again = SecretBox::load(None, dir.path()).unwrap();
        assert_eq!(again.open(&sealed, "ctx").unwrap(), b"secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_key_must_be_32_bytes_of_base64() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SecretBox::load(Some("c2hvcnQ="), dir.path()).is_err());
        assert!(SecretBox::load(Some("???"), dir.path()).is_err());
        let key = B64.encode([1u8; 32]);
        assert!(SecretBox::load(Some(&key), dir.path()).is_ok());
        assert!(!dir.path().join(KEY_FILE).exists());
    }
}
