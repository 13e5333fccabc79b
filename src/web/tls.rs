//! HTTPS for the pages: the certificate chain and private key from PEM files, served with
//! rustls (ring as its crypto provider: it builds with a C compiler alone, no cmake or Go).

use super::WebError;
use crate::config::WebTls;
use rustls::{
    ServerConfig,
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use std::{path::Path, sync::Arc};

/// Reads `tls.cert` and `tls.key` into a server configuration offering HTTP/2 and HTTP/1.1.
pub fn server_config(tls: &WebTls) -> Result<Arc<ServerConfig>, WebError> {
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(&tls.cert, e))?;
    if certs.is_empty() {
        return Err(WebError::TlsFile {
            path: tls.cert.clone(),
            reason: "no CERTIFICATE section".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| pem_error(&tls.key, e))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(WebError::Tls)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(WebError::Tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn pem_error(path: &Path, error: rustls::pki_types::pem::Error) -> WebError {
    use rustls::pki_types::pem::Error;
    let reason = match error {
        Error::NoItemsFound => "no PEM section of the expected kind".to_string(),
        other => other.to_string(),
    };
    WebError::TlsFile {
        path: path.to_path_buf(),
        reason,
    }
}
