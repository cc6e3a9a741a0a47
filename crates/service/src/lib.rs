//! Services: the use cases of modelplane as plain async functions.
//!
//! Each takes the [`Store`](modelplane_store::Store), the authenticated
//! [`Principal`](auth::Principal) and a typed input; it checks scopes and
//! tenancy, makes ids and timestamps, applies the domain rules, and asks the
//! store to write the change together with its audit event. Nothing here
//! knows HTTP or SQL.

pub mod agents;
pub mod auth;
pub mod catalog;
pub mod departments;
pub mod drafts;
pub mod error;
pub mod ingestion;
pub mod keys;
pub mod local;
pub mod maintenance;
pub mod model_bulk;
pub mod models;
pub mod orgs;
pub mod policies;
pub mod providers;
pub mod routes;
pub mod secrets;
pub mod staged;
pub mod usage;
pub mod users;

pub use auth::Principal;
pub use error::{Entity, ServiceError};

/// A list page as services return it: the filtered total and the items.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<T> {
    pub total: i64,
    pub items: Vec<T>,
}

impl<T> From<(i64, Vec<T>)> for Listed<T> {
    fn from((total, items): (i64, Vec<T>)) -> Self {
        Self { total, items }
    }
}

/// A new time-ordered id (UUIDv7).
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
