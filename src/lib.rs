//! mailtrail: a delivery companion for sendmail and postfix.
//!
//! [`run`] is the daemon: the milter that archives every outbound message and records its
//! envelope, the log follower that records every delivery attempt, and the retention sweeps.
//! The CLI lives in `main.rs` and [`cli`].

pub mod archive;
pub mod bounce;
pub mod chart;
pub mod cli;
pub mod config;
pub mod counters;
pub mod envelope;
pub mod follower;
pub mod maillog;
pub mod milter;
pub mod mta;
pub mod notify;
pub mod periodic;
pub mod policy;
pub mod recorder;
pub mod report;
pub mod stats_tables;
pub mod store;

mod daemon;
pub mod sweep;
pub mod tick;
pub mod tracking;
pub mod web;

pub use daemon::{RunError, run};
