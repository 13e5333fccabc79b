//! Submitting mail to the instance under test: over SMTP with lettre (to postfix's smtpd), or
//! through postfix's `sendmail` command ([`super::postfix::Postfix::sendmail`]).

use std::time::Duration;

use lettre::address::Envelope;
use lettre::message::{Mailbox, Message, header::ContentType};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// The EHLO name lettre gives.
pub const CLIENT_HELO: &str = "client.test.example";

/// A plain-SMTP transport (no TLS, no AUTH) to 127.0.0.1:`port`.
pub fn transport(port: u16) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .hello_name(ClientId::Domain(CLIENT_HELO.into()))
        .timeout(Some(Duration::from_secs(30)))
        .build()
}

fn address(a: &str) -> Address {
    a.parse()
        .unwrap_or_else(|e| panic!("bad address {a:?}: {e}"))
}

/// Sends `raw` (the exact message bytes, CRLF line ends) with envelope `from` → `rcpts`.
pub async fn send_raw(port: u16, from: &str, rcpts: &[&str], raw: &[u8]) {
    let envelope = Envelope::new(
        Some(address(from)),
        rcpts.iter().map(|r| address(r)).collect(),
    )
    .expect("envelope");
    transport(port)
        .send_raw(&envelope, raw)
        .await
        .unwrap_or_else(|e| panic!("SMTP submission to 127.0.0.1:{port} failed: {e}"));
}

/// Sends a message built with lettre's builder.
pub async fn send(port: u16, message: Message) {
    transport(port)
        .send(message)
        .await
        .unwrap_or_else(|e| panic!("SMTP submission to 127.0.0.1:{port} failed: {e}"));
}

/// A simple text message with the given Message-ID (without brackets).
pub fn simple_message(
    from: &str,
    to: &[&str],
    subject: &str,
    message_id: &str,
    body: &str,
) -> Message {
    let mut b = Message::builder()
        .from(from.parse::<Mailbox>().expect("from mailbox"))
        .subject(subject)
        .message_id(Some(format!("<{message_id}>")))
        .header(ContentType::TEXT_PLAIN);
    for t in to {
        b = b.to(t.parse::<Mailbox>().expect("to mailbox"));
    }
    b.body(body.to_string()).expect("build message")
}

/// Sends `messages` over `clients` concurrent SMTP clients (message i goes through client
/// i % clients; each client sends its share one after the other).
pub async fn send_concurrently(port: u16, clients: usize, messages: Vec<Message>) {
    let mut shares: Vec<Vec<Message>> = (0..clients).map(|_| Vec::new()).collect();
    for (i, m) in messages.into_iter().enumerate() {
        shares[i % clients].push(m);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for share in shares {
        tasks.spawn(async move {
            let t = transport(port);
            for m in share {
                t.send(m)
                    .await
                    .unwrap_or_else(|e| panic!("SMTP submission failed: {e}"));
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("submission client");
    }
}
