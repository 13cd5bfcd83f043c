//! Password hashing (argon2id) off the async executor.
