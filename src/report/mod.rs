//! The weekly summary e-mail.
pub mod schedule;
