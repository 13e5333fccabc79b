//! End-to-end test harness: a private postfix instance ([`postfix`]), a scripted remote SMTP
//! server ([`smtp_server`]), the real mailtrail binary ([`mailtrail`]), submission helpers
//! ([`submit`]), raw-message helpers ([`message`]) and an MTA's side of the milter protocol
//! ([`milter_client`]).
//!
//! Each test binary includes it with `mod support;`; not every binary uses every helper.
#![allow(dead_code)]

pub mod fixtures;
pub mod maillog;
pub mod mailtrail;
pub mod message;
pub mod milter_client;
pub mod postfix;
pub mod postgres;
pub mod sendmail;
pub mod smtp_server;
pub mod submit;
pub mod util;
