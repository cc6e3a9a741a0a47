//! HTTP-level integration tests: one binary, one module per area, every
//! test run against both storage backends.

mod helpers;

mod auth;
mod bad_input;
mod catalog;
mod cli;
mod departments_agents;
mod export;
mod gateway;
mod gateway_limits;
mod idempotency;
mod inventory_editing;
mod local_models;
mod mcp;
mod models;
mod openai_sdk;
mod ops;
mod orgs_users;
mod policies;
mod providers;
mod search_index;
mod staged_changes;
mod usage;
