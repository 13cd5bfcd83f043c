//! Password hashing (argon2id) off the async executor.
//!
//! SPEC §6: argon2id with the OWASP parameters (m=19456 KiB, t=2, p=1 by default, taken from
//! the configuration), rehash when the parameters change, and the hashing runs off the async
//! executor with bounded concurrency so that a login flood never stalls page serving.
//!
//! - Every argon2 computation runs on one of `concurrency` dedicated threads at the lowest
//!   scheduling priority (nice 19 on Linux): the threads that serve pages always win the CPU
//!   from hashing, and hashing still gets every cycle they leave. A semaphore permit moves
//!   with the job, so a caller that gives up does not free the slot while its hash runs.
//! - At most `concurrency + queue` calls are in flight; beyond that a call fails at once with
//!   [`HashError::Busy`] (answer HTTP 503) instead of queueing without bound.
//! - An unknown user (`stored == None`), or a stored hash that cannot be used, is checked
//!   against a dummy hash made at construction with the configured parameters, through the same
//!   code, so it costs the same time as a wrong password for a real user.
//! - The argon2 working memory (m KiB, 19 MiB by default) is kept in a small pool and reused
//!   (`hash_password_into_with_memory`) instead of being allocated and zeroed for every hash.
//!   The pool never holds more buffers than `concurrency`, the peak use anyway.
//!
//! Passwords are never logged and never appear in errors.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::rand_core::{OsRng, RngCore as _};
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{Semaphore, TryAcquireError};

/// Length of the raw argon2 output in new hashes (the argon2 crate's default, 256 bits).
const OUTPUT_LEN: usize = 32;

/// A stored hash whose memory × iterations cost is above this many times the configured one
/// (or above this many times the OWASP cost, whichever is larger) is refused as malformed
/// rather than computed: a corrupt or planted row must not make a sign-in allocate gigabytes.
const MAX_STORED_COST_FACTOR: u64 = 16;
const OWASP_COST: u64 = 19_456 * 2;

/// Why a hash or verify call did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many password operations are already running or waiting; answer HTTP 503.
    #[error("too many password checks in progress")]
    Busy,
    /// Hashing failed (never contains the password).
    #[error("password hashing failed: {0}")]
    Internal(String),
}

/// Outcome of [`PasswordHasher::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches the stored hash.
    pub ok: bool,
    /// The password matched, and the stored hash was made with another algorithm, version or
    /// parameters than the configured ones: store a fresh [`PasswordHasher::hash`]. Always
    /// false when `ok` is false.
    pub needs_rehash: bool,
}

/// argon2id hashing with bounded concurrency. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    /// Configured parameters, `output_len` = [`OUTPUT_LEN`].
    params: Params,
    /// PHC string of a random password, hashed with `params` at construction.
    dummy: String,
    /// Permits to run argon2 (`concurrency`).
    workers: Arc<Semaphore>,
    /// Feeds the dedicated hashing threads.
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
    /// Permits to be in flight at all, running or waiting (`concurrency + queue`).
    admission: Arc<Semaphore>,
    concurrency: usize,
    queue: usize,
    /// Reusable working memory of `params.block_count()` blocks each.
    memory: Mutex<Vec<Vec<Block>>>,
    /// argon2 work done so far, in memory blocks × iterations: what a check really cost,
    /// counted rather than timed.
    work: AtomicU64,
    /// Checks and hashes that got a worker, and their total wait for it in microseconds.
    started: AtomicU64,
    waited_micros: AtomicU64,
}

/// What the hasher has done, for the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct HasherStats {
    /// Calls admitted and not finished: running or waiting for a worker.
    pub in_flight: usize,
    /// Of those, waiting for a worker.
    pub waiting: usize,
    /// Calls that got a worker so far.
    pub started: u64,
    /// Their total wait for a worker, in seconds.
    pub waited_seconds: f64,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("PasswordHasher")
            .field("memory_kib", &inner.params.m_cost())
            .field("iterations", &inner.params.t_cost())
            .field("parallelism", &inner.params.p_cost())
            .field("concurrency", &inner.concurrency)
            .field("queue", &inner.queue)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Hasher with the configured argon2 parameters and limits (`argon2_memory_kib`,
    /// `argon2_iterations`, `argon2_parallelism`, `hash_concurrency`, `hash_queue`).
    ///
    /// Computes the dummy hash on the calling thread (one hash, ~20 ms with the OWASP
    /// parameters): build it once at startup.
    pub fn new(config: &crate::config::Config) -> anyhow::Result<Self> {
        Self::with_params(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            config.hash_concurrency,
            config.hash_queue,
        )
    }

    /// Hasher with explicit argon2id parameters (`memory_kib` KiB, `iterations`,
    /// `parallelism` lanes), at most `concurrency` hashes at once (0 = one per CPU) and at most
    /// `queue` more calls waiting.
    pub fn with_params(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        concurrency: u32,
        queue: u32,
    ) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, iterations, parallelism, Some(OUTPUT_LEN))
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let concurrency = match concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        let queue = queue as usize;
        let in_flight = concurrency.saturating_add(queue);
        anyhow::ensure!(
            in_flight <= Semaphore::MAX_PERMITS,
            "hash_concurrency + hash_queue is too large"
        );

        let jobs = spawn_hashing_threads(concurrency)?;
        let mut inner = Inner {
            params,
            dummy: String::new(),
            jobs: Mutex::new(jobs),
            workers: Arc::new(Semaphore::new(concurrency)),
            admission: Arc::new(Semaphore::new(in_flight)),
            concurrency,
            queue,
            memory: Mutex::new(Vec::new()),
            work: AtomicU64::new(0),
            started: AtomicU64::new(0),
            waited_micros: AtomicU64::new(0),
        };
        let mut password = [0u8; 32];
        OsRng.fill_bytes(&mut password);
        inner.dummy = inner
            .hash_blocking(&password)
            .map_err(|e| anyhow::anyhow!("cannot make the dummy password hash: {e}"))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) of `password` with the configured
    /// parameters and a fresh random salt.
    /// How many hashes run at once.
    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// Calls in flight and waiting, and how long calls waited for a worker.
    pub fn stats(&self) -> HasherStats {
        let inner = &self.inner;
        let in_flight =
            (inner.concurrency + inner.queue).saturating_sub(inner.admission.available_permits());
        let running = inner
            .concurrency
            .saturating_sub(inner.workers.available_permits());
        HasherStats {
            in_flight,
            waiting: in_flight.saturating_sub(running),
            started: inner.started.load(Ordering::Relaxed),
            waited_seconds: inner.waited_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.as_bytes().to_vec();
        self.run(move |inner| inner.hash_blocking(&password))
            .await?
    }

    /// Checks `password` against `stored` (a PHC string). `None` (unknown user, locked
    /// account…) and unusable stored hashes are checked against the dummy hash, so they take
    /// the same time as a wrong password, and give `ok == false`.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verification, HashError> {
        let password = password.as_bytes().to_vec();
        let stored = stored.map(str::to_owned);
        self.run(move |inner| inner.verify_blocking(&password, stored.as_deref()))
            .await
    }

    /// Runs `job` on a hashing thread once admitted (else [`HashError::Busy`]) and once a
    /// worker permit is free. Both permits live until `job` returns, even if the caller's
    /// future is dropped meanwhile.
    async fn run<T, F>(&self, job: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> T + Send + 'static,
    {
        let admitted = match Arc::clone(&self.inner.admission).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => return Err(HashError::Busy),
            Err(TryAcquireError::Closed) => return Err(closed()),
        };
        let admitted_at = std::time::Instant::now();
        let worker = Arc::clone(&self.inner.workers)
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        let waited = u64::try_from(admitted_at.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.inner.started.fetch_add(1, Ordering::Relaxed);
        self.inner
            .waited_micros
            .fetch_add(waited, Ordering::Relaxed);
        let inner = Arc::clone(&self.inner);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = job(&inner);
            // Free the slot before answering: the caller may start its next call at once.
            drop((admitted, worker));
            let _ = reply.send(result);
        });
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| closed())?;
        // Dropped without an answer: the job panicked (the panic is not ours to pass on).
        answer
            .await
            .map_err(|_| HashError::Internal("password hashing job failed".into()))
    }
}

/// A unit of hashing work for the dedicated threads.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// Starts `n` hashing threads at the lowest priority, sharing one job queue. They end
/// when the hasher (the sender) is dropped.
fn spawn_hashing_threads(n: usize) -> anyhow::Result<std::sync::mpsc::Sender<Job>> {
    let (sender, receiver) = std::sync::mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for i in 0..n {
        let receiver = Arc::clone(&receiver);
        std::thread::Builder::new()
            .name(format!("argon2-{i}"))
            .spawn(move || {
                if let Err(e) = thread_priority::set_current_thread_priority(
                    thread_priority::ThreadPriority::Min,
                ) {
                    tracing::warn!(error = ?e, "cannot lower the priority of a hashing thread");
                }
                loop {
                    let next = receiver
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    let Ok(job) = next else { return };
                    // A panicking job drops its reply; the thread lives on.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| anyhow::anyhow!("starting a hashing thread: {e}"))?;
    }
    Ok(sender)
}

fn closed() -> HashError {
    HashError::Internal("password hashing is shut down".into())
}

/// A parsed stored hash, ready to be recomputed.
struct Stored<'a> {
    argon2: Argon2<'static>,
    salt: Salt<'a>,
    expected: Output,
    block_count: usize,
    iterations: u32,
    needs_rehash: bool,
}

impl Inner {
    fn hash_blocking(&self, password: &[u8]) -> Result<String, HashError> {
        let internal = |e: argon2::password_hash::Error| HashError::Internal(e.to_string());
        let salt_string = SaltString::generate(&mut OsRng);
        let salt = salt_string.as_salt();
        let mut salt_buf = [0u8; Salt::MAX_LENGTH];
        let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(internal)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        let output = self
            .with_memory(self.params.block_count(), |blocks| {
                Output::init_with(OUTPUT_LEN, |out| {
                    Ok(argon2.hash_password_into_with_memory(password, salt_bytes, out, blocks)?)
                })
            })
            .map_err(internal)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(internal)?,
            salt: Some(salt),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    fn verify_blocking(&self, password: &[u8], stored: Option<&str>) -> Verification {
        let parsed = stored.and_then(|stored| match self.parse(stored) {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                tracing::warn!(reason = %reason, "stored password hash is unusable; sign-in refused");
                None
            }
        });
        let failed = Verification {
            ok: false,
            needs_rehash: false,
        };
        match parsed {
            Some(parsed) => match self.recompute(password, &parsed) {
                Ok(ok) => Verification {
                    ok,
                    needs_rehash: ok && parsed.needs_rehash,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "stored password hash is unusable; sign-in refused");
                    failed
                }
            },
            None => {
                // Same parameters, same code path as a real user's wrong password.
                if let Ok(dummy) = self.parse(&self.dummy) {
                    let _ = self.recompute(password, &dummy);
                }
                failed
            }
        }
    }

    /// Parses a stored PHC string. The error is a reason for the log (never the hash itself).
    fn parse<'a>(&self, stored: &'a str) -> Result<Stored<'a>, String> {
        let hash = PasswordHash::new(stored).map_err(|e| format!("not a PHC string: {e}"))?;
        let algorithm = Algorithm::try_from(hash.algorithm).map_err(|e| e.to_string())?;
        let version = match hash.version {
            Some(v) => Version::try_from(v).map_err(|e| e.to_string())?,
            None => Version::default(),
        };
        let params = Params::try_from(&hash).map_err(|e| e.to_string())?;
        let salt = hash.salt.ok_or("no salt")?;
        let expected = hash.hash.ok_or("no hash")?;
        let cost = |p: &Params| u64::from(p.m_cost()) * u64::from(p.t_cost());
        let limit = MAX_STORED_COST_FACTOR * cost(&self.params).max(OWASP_COST);
        if cost(&params) > limit {
            return Err(format!(
                "parameters m={},t={} are far above the configured ones",
                params.m_cost(),
                params.t_cost()
            ));
        }
        let needs_rehash =
            algorithm != Algorithm::Argon2id || version != Version::V0x13 || params != self.params;
        Ok(Stored {
            block_count: params.block_count(),
            iterations: params.t_cost(),
            argon2: Argon2::new(algorithm, version, params),
            salt,
            expected,
            needs_rehash,
        })
    }

    /// Recomputes the stored hash from `password`; true when equal (constant-time compare).
    fn recompute(
        &self,
        password: &[u8],
        stored: &Stored<'_>,
    ) -> Result<bool, argon2::password_hash::Error> {
        let mut salt_buf = [0u8; Salt::MAX_LENGTH];
        let salt = stored.salt.decode_b64(&mut salt_buf)?;
        self.work.fetch_add(
            stored.block_count as u64 * u64::from(stored.iterations),
            Ordering::Relaxed,
        );
        let computed = self.with_memory(stored.block_count, |blocks| {
            Output::init_with(stored.expected.len(), |out| {
                Ok(stored
                    .argon2
                    .hash_password_into_with_memory(password, salt, out, blocks)?)
            })
        })?;
        Ok(computed == stored.expected)
    }

    /// Runs `f` with `block_count` blocks of working memory, from the pool when that is the
    /// configured size. Argon2 overwrites every block before reading it, so a reused buffer
    /// needs no clearing.
    fn with_memory<R>(&self, block_count: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
        if block_count != self.params.block_count() {
            return f(&mut vec![Block::default(); block_count]);
        }
        let pooled = self.pool().pop();
        let mut blocks = pooled.unwrap_or_else(|| vec![Block::default(); block_count]);
        let result = f(&mut blocks);
        self.pool().push(blocks);
        result
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {

    use argon2::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    /// Small parameters: fast tests.
    fn small() -> PasswordHasher {
        PasswordHasher::with_params(256, 1, 1, 2, 16).unwrap()
    }

    fn owasp(concurrency: u32, queue: u32) -> PasswordHasher {
        PasswordHasher::with_params(19_456, 2, 1, concurrency, queue).unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = small();
        let stored = hasher.hash("correct horse battery staple").await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
            "{stored}"
        );
        let check = hasher
            .verify("correct horse battery staple", Some(&stored))
            .await
            .unwrap();
        assert_eq!(
            check,
            Verification {
                ok: true,
                needs_rehash: false
            }
        );
        // A fresh salt every time.
        assert_ne!(
            stored,
            hasher.hash("correct horse battery staple").await.unwrap()
        );
    }

    #[tokio::test]
    async fn wrong_password_fails() {
        let hasher = small();
        let stored = hasher.hash("パスワード123").await.unwrap();
        let check = hasher.verify("パスワード124", Some(&stored)).await.unwrap();
        assert!(!check.ok);
        assert!(!check.needs_rehash);
        assert!(!hasher.verify("", Some(&stored)).await.unwrap().ok);
    }

    #[tokio::test]
    async fn unknown_user_fails() {
        let hasher = small();
        let check = hasher.verify("anything", None).await.unwrap();
        assert_eq!(
            check,
            Verification {
                ok: false,
                needs_rehash: false
            }
        );
        // Not even the dummy hash's own password can be guessed into a success.
        assert!(!hasher.verify("", None).await.unwrap().ok);
    }

    #[tokio::test]
    async fn needs_rehash_when_parameters_change() {
        let old = small();
        let new = PasswordHasher::with_params(512, 1, 1, 2, 16).unwrap();
        let stored = old.hash("pw-1").await.unwrap();
        let check = new.verify("pw-1", Some(&stored)).await.unwrap();
        assert_eq!(
            check,
            Verification {
                ok: true,
                needs_rehash: true
            }
        );
        // Only meaningful (and only reported) when the password matched.
        let wrong = new.verify("pw-2", Some(&stored)).await.unwrap();
        assert!(!wrong.ok && !wrong.needs_rehash);
        // The rehash is current.
        let rehashed = new.hash("pw-1").await.unwrap();
        let check = new.verify("pw-1", Some(&rehashed)).await.unwrap();
        assert!(check.ok && !check.needs_rehash);
    }

    #[tokio::test]
    async fn needs_rehash_for_other_algorithm_or_iterations() {
        let hasher = small();
        let salt = SaltString::generate(&mut OsRng);
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(256, 1, 1, None).unwrap(),
        );
        let stored = argon2i.hash_password(b"pw", &salt).unwrap().to_string();
        let check = hasher.verify("pw", Some(&stored)).await.unwrap();
        assert!(check.ok && check.needs_rehash, "{check:?}");

        let more_iterations = PasswordHasher::with_params(256, 2, 1, 1, 0).unwrap();
        let stored = more_iterations.hash("pw").await.unwrap();
        let check = hasher.verify("pw", Some(&stored)).await.unwrap();
        assert!(check.ok && check.needs_rehash, "{check:?}");
    }

    #[tokio::test]
    async fn interoperates_with_the_argon2_crate() {
        let hasher = small();
        // Ours, checked by the crate's own verifier.
        let ours = hasher.hash("pw").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"px", &parsed).is_err());
        // The crate's, checked by ours: same parameters, so no rehash.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(256, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        let check = hasher.verify("pw", Some(&theirs)).await.unwrap();
        assert_eq!(
            check,
            Verification {
                ok: true,
                needs_rehash: false
            }
        );
    }

    #[tokio::test]
    async fn malformed_stored_hash_fails() {
        let hasher = small();
        let good = hasher.hash("pw").await.unwrap();
        let truncated = &good[..good.len() - 10];
        let huge = good.replace("m=256,t=1", "m=4194304,t=64");
        for stored in [
            "",
            "not a hash",
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHQ",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2x$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=42$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=256,t=1,p=1,x=3$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            truncated,
            &huge, // refused without allocating 4 GiB
        ] {
            let check = hasher.verify("pw", Some(stored)).await.unwrap();
            assert!(!check.ok && !check.needs_rehash, "{stored:?}");
        }
    }

    /// The real OWASP parameters, from the default configuration.
    #[tokio::test]
    async fn default_config_uses_owasp_parameters() {
        let hasher = PasswordHasher::new(&crate::config::Config::default()).unwrap();
        let stored = hasher.hash("pw").await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(hasher.verify("pw", Some(&stored)).await.unwrap().ok);
        assert!(!hasher.verify("px", Some(&stored)).await.unwrap().ok);
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(hasher.inner.concurrency, cpus);
        assert_eq!(hasher.inner.admission.available_permits(), cpus + 256);
    }

    /// An unknown user, and a malformed stored hash, cost a full argon2 computation with
    /// the configured parameters (the same work as a real wrong password), not a fast path.
    /// Counted in argon2 work units rather than timed: timing depends on the machine.
    #[tokio::test]
    async fn unknown_user_costs_as_much_as_a_wrong_password() {
        let hasher = owasp(1, 4);
        let stored = hasher.hash("the real one").await.unwrap();
        let work = || hasher.inner.work.load(Ordering::Relaxed);
        let before = work();
        assert!(!hasher.verify("guess", Some(&stored)).await.unwrap().ok);
        let real = work() - before;
        let before = work();
        assert!(!hasher.verify("guess", None).await.unwrap().ok);
        assert_eq!(work() - before, real, "dummy verify does the same work");
        let before = work();
        assert!(!hasher.verify("guess", Some("garbage")).await.unwrap().ok);
        assert_eq!(work() - before, real, "malformed hash does the same work");
        // OWASP parameters: 19456 blocks of 1 KiB, two passes.
        assert_eq!(real, 19_456 * 2);
    }

    /// The hash runs on a hashing thread: while it holds its worker permit, this (single
    /// threaded) executor keeps running other tasks.
    #[tokio::test]
    async fn hashing_runs_off_the_executor() {
        let hasher = owasp(1, 0);
        let h = hasher.clone();
        let task = tokio::spawn(async move { h.hash("pw").await });
        while hasher.inner.workers.available_permits() > 0 && !task.is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(!task.is_finished(), "the hash ran on the executor thread");
        assert!(task.await.unwrap().is_ok());
        assert_eq!(hasher.inner.workers.available_permits(), 1);
    }

    #[tokio::test]
    async fn busy_beyond_concurrency_plus_queue() {
        let hasher = owasp(1, 0);
        let stored = hasher.hash("pw").await.unwrap();
        let (h, s) = (hasher.clone(), stored.clone());
        let first = tokio::spawn(async move { h.verify("pw", Some(&s)).await });
        while hasher.inner.admission.available_permits() > 0 && !first.is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(
            !first.is_finished(),
            "the first verify never stayed in flight"
        );
        let second = hasher.verify("pw", Some(&stored)).await;
        assert!(matches!(second, Err(HashError::Busy)), "{second:?}");
        assert!(matches!(hasher.hash("pw").await, Err(HashError::Busy)));
        assert!(matches!(
            hasher.verify("pw", None).await,
            Err(HashError::Busy)
        ));
        assert!(first.await.unwrap().unwrap().ok);
        // Capacity comes back once the first is done.
        assert!(hasher.verify("pw", Some(&stored)).await.unwrap().ok);
    }

    #[tokio::test]
    async fn queue_admits_waiting_calls() {
        // Full-cost hashes, so the first is still running while the others are admitted.
        let hasher = owasp(1, 2);
        let stored = hasher.hash("pw").await.unwrap();
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let (h, s) = (hasher.clone(), stored.clone());
                tokio::spawn(async move { h.verify("pw", Some(&s)).await })
            })
            .collect();
        while hasher.inner.admission.available_permits() > 0 {
            assert!(
                !tasks.iter().any(|t| t.is_finished()),
                "a verify finished before all three were in flight"
            );
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            hasher.verify("pw", Some(&stored)).await,
            Err(HashError::Busy)
        ));
        for task in tasks {
            assert!(task.await.unwrap().unwrap().ok);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_calls_reuse_bounded_memory() {
        let hasher = PasswordHasher::with_params(256, 1, 1, 2, 64).unwrap();
        let stored = hasher.hash("pw").await.unwrap();
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let (h, s) = (hasher.clone(), stored.clone());
                tokio::spawn(async move {
                    let password = if i % 2 == 0 { "pw" } else { "nope" };
                    h.verify(password, Some(&s)).await.unwrap().ok == (i % 2 == 0)
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap());
        }
        assert!(hasher.inner.pool().len() <= 2);
        assert_eq!(hasher.inner.workers.available_permits(), 2);
        assert_eq!(hasher.inner.admission.available_permits(), 66);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(PasswordHasher::with_params(1, 1, 1, 1, 0).is_err());
        assert!(PasswordHasher::with_params(256, 0, 1, 1, 0).is_err());
        assert!(PasswordHasher::with_params(256, 1, 0, 1, 0).is_err());
    }

    #[test]
    fn errors_and_debug_do_not_show_secrets() {
        let hasher = PasswordHasher::with_params(256, 1, 1, 1, 0).unwrap();
        let debug = format!("{hasher:?}");
        assert!(!debug.contains('$'), "{debug}");
        assert_eq!(
            HashError::Busy.to_string(),
            "too many password checks in progress"
        );
    }
}
