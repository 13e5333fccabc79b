//! A scripted remote SMTP server: the "internet" that postfix relays to.
//!
//! It runs on its own thread with its own tokio runtime, so it serves from sync and async tests
//! alike and goes away with its [`ScriptedServer`] even when a test panics. Each RCPT TO is
//! answered according to a per-recipient [`Reply`]; every accepted message (envelope and the
//! dot-unstuffed bytes of DATA) is kept for assertions.
//!
//! It advertises `8BITMIME` and `SIZE` but not `PIPELINING` (postfix pipelines when it is
//! advertised, and this server answers strictly one command at a time), so postfix sends 8-bit
//! bodies unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::util::wait_for;

/// The hostname the server gives in its greeting and EHLO reply.
pub const HOSTNAME: &str = "remote.test.example";

/// How the server answers RCPT TO for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `250 2.1.5 Ok`.
    Accept,
    /// `421 4.3.2 too busy`, then the server closes the connection.
    TooBusy,
    /// `451 4.7.1 Greylisting in effect` for the first `tries` attempts (counted over all
    /// connections), then `250`.
    Greylist { tries: u32 },
    /// `452 4.2.2 mailbox full`.
    MailboxFull,
    /// `550 5.1.1 User unknown`.
    UserUnknown,
    /// The server closes the connection without answering.
    Drop,
}

/// One message the server accepted.
#[derive(Clone, Debug)]
pub struct ReceivedMessage {
    /// The EHLO/HELO name of the client.
    pub helo: String,
    /// The MAIL FROM address, without angle brackets (empty for `<>`).
    pub mail_from: String,
    /// The accepted recipients, without angle brackets, in RCPT order.
    pub rcpt_to: Vec<String>,
    /// The message as sent in DATA: CRLF line ends, dot-unstuffed, without the final `.`.
    pub data: Vec<u8>,
}

impl ReceivedMessage {
    /// The value of the first header `name` (case-insensitive), unfolded and trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        super::message::header_value(&self.data, name)
    }
}

/// One RCPT TO the server answered (or dropped the connection on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptAttempt {
    pub rcpt: String,
    /// The reply code sent, or `None` when the connection was dropped.
    pub code: Option<u16>,
}

#[derive(Default)]
struct State {
    /// Leave 8BITMIME out of the EHLO reply.
    no_8bitmime: bool,
    /// Offer DSN in the EHLO reply (then postfix passes NOTIFY= and ORCPT= on).
    dsn: bool,
    /// Every RCPT TO as (address, its ESMTP parameters as sent), in order.
    rcpt_params: Vec<(String, String)>,
    script: HashMap<String, Reply>,
    default: Option<Reply>,
    tries: HashMap<String, u32>,
    attempts: Vec<RcptAttempt>,
    messages: Vec<ReceivedMessage>,
    connections: usize,
}

/// The running server; stops when dropped.
pub struct ScriptedServer {
    port: u16,
    state: Arc<Mutex<State>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedServer {
    /// Starts a server on 127.0.0.1 (a port chosen by the kernel) that accepts every recipient
    /// until told otherwise with [`ScriptedServer::script`].
    pub fn start() -> ScriptedServer {
        let state = Arc::new(Mutex::new(State::default()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let st = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("scripted-smtp".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime for the scripted SMTP server");
                rt.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind the scripted SMTP server");
                    port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                    let accept = async {
                        loop {
                            let Ok((sock, _)) = listener.accept().await else {
                                continue;
                            };
                            st.lock().unwrap().connections += 1;
                            tokio::spawn(serve(sock, Arc::clone(&st)));
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = shutdown_rx => {}
                    }
                });
                // Dropping the runtime cancels the connection tasks.
            })
            .expect("spawn the scripted SMTP server thread");
        let port = port_rx.recv().expect("scripted SMTP server port");
        ScriptedServer {
            port,
            state,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets how RCPT TO `rcpt` (compared case-insensitively, without brackets) is answered.
    pub fn script(&self, rcpt: &str, reply: Reply) -> &Self {
        self.state
            .lock()
            .unwrap()
            .script
            .insert(rcpt.to_ascii_lowercase(), reply);
        self
    }

    /// Sets how recipients without a script of their own are answered (initially `Accept`).
    pub fn script_default(&self, reply: Reply) -> &Self {
        self.state.lock().unwrap().default = Some(reply);
        self
    }

    /// Stops advertising `8BITMIME` (postfix then converts 8-bit bodies to quoted-printable).
    pub fn without_8bitmime(&self) -> &Self {
        self.state.lock().unwrap().no_8bitmime = true;
        self
    }

    /// Offers the DSN extension (RFC 3461) in the EHLO reply.
    pub fn with_dsn(&self) -> &Self {
        self.state.lock().unwrap().dsn = true;
        self
    }

    /// Every RCPT TO received so far as (address without brackets, the parameters after it
    /// exactly as sent, e.g. `NOTIFY=SUCCESS ORCPT=rfc822;a@b`), in order.
    pub fn rcpt_params(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().rcpt_params.clone()
    }

    /// Every message accepted so far, in arrival order.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Every RCPT TO answered so far, in order.
    pub fn rcpt_attempts(&self) -> Vec<RcptAttempt> {
        self.state.lock().unwrap().attempts.clone()
    }

    /// Number of connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Waits until at least `n` messages arrived and returns them all.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMessage> {
        wait_for(
            timeout,
            &format!("{n} message(s) at the scripted SMTP server"),
            || {
                let m = self.messages();
                (m.len() >= n).then_some(m)
            },
            || {
                let st = self.state.lock().unwrap();
                format!(
                    "{} message(s) arrived over {} connection(s); RCPT attempts: {:?}",
                    st.messages.len(),
                    st.connections,
                    st.attempts
                )
            },
        )
    }

    /// Waits until a message with header `Message-ID: <message_id>` arrived and returns it.
    pub fn wait_for_message_id(&self, message_id: &str, timeout: Duration) -> ReceivedMessage {
        let want = format!("<{}>", message_id.trim_matches(['<', '>']));
        wait_for(
            timeout,
            &format!("message {want} at the scripted SMTP server"),
            || {
                self.messages()
                    .into_iter()
                    .find(|m| m.header("Message-ID").as_deref() == Some(want.as_str()))
            },
            || format!("{} message(s) arrived", self.messages().len()),
        )
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Strips `<...>` and any ESMTP parameters from the argument of MAIL FROM: / RCPT TO:.
fn path_arg(arg: &str) -> String {
    let arg = arg.trim();
    if let Some(rest) = arg.strip_prefix('<') {
        rest.split('>').next().unwrap_or("").to_string()
    } else {
        arg.split_whitespace().next().unwrap_or("").to_string()
    }
}

/// The ESMTP parameters after the `<path>` of MAIL FROM: / RCPT TO:, trimmed.
fn params_after_path(arg: &str) -> String {
    let arg = arg.trim();
    let rest = match arg.strip_prefix('<') {
        Some(rest) => rest.split_once('>').map_or("", |(_, r)| r),
        None => arg.split_once(char::is_whitespace).map_or("", |(_, r)| r),
    };
    rest.trim().to_string()
}

async fn serve(sock: TcpStream, state: Arc<Mutex<State>>) {
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::new(rd);
    macro_rules! say {
        ($s:expr) => {
            if wr.write_all($s.as_bytes()).await.is_err() {
                return;
            }
        };
    }
    say!(format!("220 {HOSTNAME} ESMTP scripted\r\n"));
    let mut helo = String::new();
    let mut mail_from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match rd.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a),
            None => (text.to_ascii_uppercase(), ""),
        };
        match verb.as_str() {
            "EHLO" => {
                helo = arg.trim().to_string();
                mail_from = None;
                rcpts.clear();
                let (no_8bitmime, dsn) = {
                    let st = state.lock().unwrap();
                    (st.no_8bitmime, st.dsn)
                };
                let eight_bit = if no_8bitmime { "" } else { "250-8BITMIME\r\n" };
                let dsn = if dsn { "250-DSN\r\n" } else { "" };
                say!(format!(
                    "250-{HOSTNAME}\r\n{eight_bit}{dsn}250-SIZE 104857600\r\n250 HELP\r\n"
                ));
            }
            "HELO" => {
                helo = arg.trim().to_string();
                mail_from = None;
                rcpts.clear();
                say!(format!("250 {HOSTNAME}\r\n"));
            }
            "MAIL" => {
                let Some(from) = arg
                    .get(..5)
                    .filter(|p| p.eq_ignore_ascii_case("FROM:"))
                    .map(|_| path_arg(&arg[5..]))
                else {
                    say!("501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
                    continue;
                };
                if mail_from.is_some() {
                    say!("503 5.5.1 Error: nested MAIL command\r\n");
                    continue;
                }
                mail_from = Some(from);
                rcpts.clear();
                say!("250 2.1.0 Ok\r\n");
            }
            "RCPT" => {
                let Some(rcpt) = arg
                    .get(..3)
                    .filter(|p| p.eq_ignore_ascii_case("TO:"))
                    .map(|_| path_arg(&arg[3..]))
                else {
                    say!("501 5.5.4 Syntax: RCPT TO:<address>\r\n");
                    continue;
                };
                if mail_from.is_none() {
                    say!("503 5.5.1 Error: need MAIL command\r\n");
                    continue;
                }
                let reply = {
                    let mut st = state.lock().unwrap();
                    st.rcpt_params
                        .push((rcpt.clone(), params_after_path(&arg[3..])));
                    let key = rcpt.to_ascii_lowercase();
                    let script = st
                        .script
                        .get(&key)
                        .or(st.default.as_ref())
                        .cloned()
                        .unwrap_or(Reply::Accept);
                    let tries = st.tries.entry(key).or_insert(0);
                    *tries += 1;
                    let (code, text) = match script {
                        Reply::Accept => (Some(250), "250 2.1.5 Ok"),
                        Reply::TooBusy => (Some(421), "421 4.3.2 too busy"),
                        Reply::Greylist { tries: n } if *tries <= n => {
                            (Some(451), "451 4.7.1 Greylisting in effect")
                        }
                        Reply::Greylist { .. } => (Some(250), "250 2.1.5 Ok"),
                        Reply::MailboxFull => (Some(452), "452 4.2.2 mailbox full"),
                        Reply::UserUnknown => (Some(550), "550 5.1.1 User unknown"),
                        Reply::Drop => (None, ""),
                    };
                    st.attempts.push(RcptAttempt {
                        rcpt: rcpt.clone(),
                        code,
                    });
                    (code, text)
                };
                match reply {
                    (None, _) => return,
                    (Some(421), text) => {
                        say!(format!("{text}\r\n"));
                        return;
                    }
                    (Some(250), text) => {
                        rcpts.push(rcpt);
                        say!(format!("{text}\r\n"));
                    }
                    (Some(_), text) => say!(format!("{text}\r\n")),
                }
            }
            "DATA" => {
                if mail_from.is_none() {
                    say!("503 5.5.1 Error: need MAIL command\r\n");
                    continue;
                }
                if rcpts.is_empty() {
                    say!("554 5.5.1 Error: no valid recipients\r\n");
                    continue;
                }
                say!("354 End data with <CR><LF>.<CR><LF>\r\n");
                let mut data = Vec::new();
                loop {
                    line.clear();
                    match rd.read_until(b'\n', &mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321 4.5.2).
                    let start = usize::from(line.first() == Some(&b'.'));
                    data.extend_from_slice(&line[start..]);
                }
                let n = {
                    let mut st = state.lock().unwrap();
                    st.messages.push(ReceivedMessage {
                        helo: helo.clone(),
                        mail_from: mail_from.take().unwrap_or_default(),
                        rcpt_to: std::mem::take(&mut rcpts),
                        data,
                    });
                    st.messages.len()
                };
                say!(format!("250 2.0.0 Ok: queued as R{n}\r\n"));
            }
            "RSET" => {
                mail_from = None;
                rcpts.clear();
                say!("250 2.0.0 Ok\r\n");
            }
            "NOOP" => say!("250 2.0.0 Ok\r\n"),
            "QUIT" => {
                say!("221 2.0.0 Bye\r\n");
                return;
            }
            _ => say!("502 5.5.2 Error: command not recognized\r\n"),
        }
    }
}
