//! Submitting mail mailtrail writes itself (notices, weekly reports) to the MTA over SMTP.

use super::Notice;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::future::Future;

/// Where notices go.
pub trait NoticeTransport {
    fn send(&self, notice: &Notice) -> impl Future<Output = Result<(), String>> + Send;
}

/// Submits notices over SMTP with a null return path (`MAIL FROM:<>`).
/// Mail mailtrail itself submits (notices, reports) to the MTA over SMTP.
pub struct SmtpSubmission(AsyncSmtpTransport<Tokio1Executor>);

impl SmtpSubmission {
    pub fn new(host: &str, port: u16) -> Self {
        // The local MTA on loopback: no TLS or authentication is involved.
        SmtpSubmission(
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(port)
                .timeout(Some(std::time::Duration::from_secs(30)))
                .build(),
        )
    }

    pub async fn submit(
        &self,
        envelope: &lettre::address::Envelope,
        message: &[u8],
    ) -> Result<(), lettre::transport::smtp::Error> {
        self.0.send_raw(envelope, message).await.map(|_| ())
    }
}

impl NoticeTransport for SmtpSubmission {
    async fn send(&self, notice: &Notice) -> Result<(), String> {
        self.submit(&notice.envelope(), &notice.formatted())
            .await
            .map_err(|e| e.to_string())
    }
}
