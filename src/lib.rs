//! mailtrail: a delivery companion for sendmail and postfix.
//!
//! [`run`] is the daemon: the milter that archives every outbound message and records its
//! envelope, the log follower that records every delivery attempt, and the retention sweeps.
//! The CLI lives in `main.rs` and [`cli`].

pub mod archive;
pub mod bounce;
pub mod cli;
pub mod config;
pub mod maillog;
pub mod milter;
pub mod model;
pub mod mta;
pub mod notify;
pub mod policy;
pub mod render;
pub mod report;
pub mod stats;
pub mod store;
pub mod tracking;
pub mod web;

mod daemon;

pub use daemon::{RunError, run};
