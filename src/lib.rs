//! mailtrail: a delivery companion for sendmail and postfix.
pub mod maillog;
