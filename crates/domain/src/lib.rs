//! Domain types and rules of modelplane.
//!
//! This crate knows nothing of HTTP, SQL or the file system: it holds the
//! entities, their validation, and the state machines that every other layer
//! relies on. Ids and timestamps are passed in by the service layer.

pub mod agent;
pub mod audit;
pub mod breaker;
pub mod catalog;
pub mod department;
pub mod discovery;
pub mod draft;
pub mod error;
pub mod histogram;
pub mod ingestion;
pub mod key;
pub mod limits;
pub mod local;
pub mod model;
pub mod org;
pub mod page;
pub mod patch;
pub mod policy;
pub mod reference;
pub mod route;
pub mod search;
pub mod sections;
pub mod staged;
pub mod time;
pub mod usage;
pub mod usage_query;
pub mod user;

pub use error::ValidationError;
