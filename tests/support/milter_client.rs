//! An MTA's side of the milter protocol, driven by indymilter-test: a connection that has gone
//! through connect and HELO, and one message sent from MAIL FROM to end-of-message.

use indymilter_test::{Actions, EomActions, MacroStage, Status, TestConnection};
use std::time::Duration;

/// Opens a milter connection to 127.0.0.1:`port` offering `actions`, as postfix does for a
/// client `client.example.org [192.0.2.10]` that said `HELO helo.example.org`.
pub async fn connect(port: u16, actions: Actions) -> TestConnection {
    let mut conn = TestConnection::configure()
        .exact_leading_space(true)
        .available_actions(actions)
        .read_timeout(Duration::from_secs(20))
        .write_timeout(Duration::from_secs(20))
        .open_tcp(("127.0.0.1", port))
        .await
        .unwrap();
    conn.macros(
        MacroStage::Connect,
        [
            ("j", "mx.example.net"),
            ("{client_addr}", "192.0.2.10"),
            ("{client_name}", "client.example.org"),
        ],
    )
    .await
    .unwrap();
    // mailtrail always goes on at these stages and says so at negotiation (NOREPLY_*): the MTA
    // sends them without waiting for an answer.
    assert_eq!(
        conn.connect("client.example.org", [192, 0, 2, 10])
            .await
            .unwrap(),
        Status::Noreply
    );
    assert_eq!(
        conn.helo("helo.example.org").await.unwrap(),
        Status::Noreply
    );
    conn
}

/// One message: headers are (name, value-with-leading-space) as the MTA passes them.
pub struct Mail<'a> {
    pub queue_id: &'a str,
    pub from: &'a str,
    pub rcpts: &'a [&'a str],
    pub headers: &'a [(&'a [u8], &'a [u8])],
    pub body: &'a [&'a [u8]],
}

impl Mail<'_> {
    /// What the archive copy must hold: headers as given, CRLF, body.
    pub fn expected_copy(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in self.headers {
            out.extend_from_slice(name);
            out.push(b':');
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        for chunk in self.body {
            out.extend_from_slice(chunk);
        }
        out
    }

    /// Sends the transaction from MAIL FROM to end-of-message; returns the eom status.
    pub async fn send(&self, conn: &mut TestConnection) -> (EomActions, Status) {
        conn.macros(
            MacroStage::Mail,
            [("{auth_authen}", "alice"), ("{mail_addr}", self.from)],
        )
        .await
        .unwrap();
        let mut mail = vec![format!("<{}>", self.from)];
        mail.push("SIZE=12345".into());
        mail.push("BODY=8BITMIME".into());
        assert_eq!(conn.mail(mail).await.unwrap(), Status::Noreply);
        for rcpt in self.rcpts {
            assert_eq!(
                conn.rcpt([format!("<{rcpt}>"), "NOTIFY=SUCCESS,FAILURE".into()])
                    .await
                    .unwrap(),
                Status::Continue
            );
        }
        conn.macros(MacroStage::Data, [("i", self.queue_id)])
            .await
            .unwrap();
        for (name, value) in self.headers {
            assert_eq!(
                conn.header(
                    std::ffi::CString::new(*name).unwrap(),
                    std::ffi::CString::new(*value).unwrap()
                )
                .await
                .unwrap(),
                Status::Noreply
            );
        }
        assert_eq!(conn.eoh().await.unwrap(), Status::Noreply);
        for chunk in self.body {
            assert_eq!(conn.body(chunk.to_vec()).await.unwrap(), Status::Noreply);
        }
        conn.macros(MacroStage::Eom, [("i", self.queue_id)])
            .await
            .unwrap();
        conn.eom().await.unwrap()
    }
}
