//! Typed identities of the records a tenant owns, so that a member id can never be passed
//! where an admin id belongs. Each dereferences to its text for SQL and display.

use std::fmt;
use std::ops::Deref;

use serde::Serialize;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new random id (128 bits, hex).
            pub fn generate() -> Self {
                Self(crate::random_token(16))
            }

            /// An id read from the database or from a URL (looked up before use).
            pub fn from_db(id: String) -> Self {
                Self(id)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A member of one tenant.
    MemberId
);
id_type!(
    /// A society admin of one tenant.
    AdminId
);
