//! The fleet: this host's records shipped to one PostgreSQL database shared by every host.
//!
//! Locally, SQLite triggers (present only while `[fleet]` is configured) append a row's table
//! and id to `fleet_outbox` whenever a shipped row is inserted or updated, in the transaction
//! that writes it; the outbox is the shipping position: what it holds is what the fleet
//! database has not confirmed. A batch is read from one snapshot, upserted into PostgreSQL by
//! (host, id) in one transaction, and only then removed from the outbox: a crash in between
//! ships the batch again, and the upsert stores it once.

mod outbox;
pub mod postgres;
mod read;
pub mod suppression;
pub mod tables;

pub use outbox::{ColumnValues, OutboxBatch, OutboxLag, RollupBatch, RollupRows, TableRows};
pub use read::{FleetHost, FleetReader};

/// Outbox entries per batch: large enough that a transaction's round trips and commit cost
/// little per row, small enough that a batch sent again after a crash is quick.
pub const BATCH: usize = 20_000;

/// An error with its causes, on one line ("db error: FATAL: password authentication failed
/// ..."): tokio-postgres's and deadpool's errors say little without theirs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// The TLS side of connections to the fleet database: the system's roots, plus the PEM
/// certificates of `ca`. Whether TLS is used is the connection string's `sslmode` (PostgreSQL's
/// default, `prefer`, uses it when the server offers it; `require` insists).
pub fn tls(
    ca: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // One unusable system certificate must not take the others with it.
        let _ = roots.add(cert);
    }
    if let Some(path) = ca {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("[fleet] ca {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "[fleet] ca {}: no CERTIFICATE section",
                path.display()
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("[fleet] ca {}: {e}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}
