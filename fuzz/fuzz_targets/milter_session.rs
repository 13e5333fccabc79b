//! The milter's per-message state driven through arbitrary sequences of stages (MAIL, RCPT,
//! header, body chunk, end-of-message, abort) with arbitrary argument, header and body bytes,
//! as the callbacks drive it: never a panic, the caps hold, and what reaches the envelope row
//! from the headers carries no control character.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailtrail::config::Config;
use mailtrail::milter::session::{MessageInFlight, Session};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let mut config = Config::defaults();
    config.milter.max_recipients = 8;
    config.milter.max_headers = 16;
    let config = Arc::new(config);
    let mut session = Session {
        exact_leading_space: data.first().is_some_and(|b| b & 1 == 1),
        ..Session::default()
    };
    // Stages separated by 0xFF; the first byte of each says which, the rest is its argument
    // (split at ':' into name and value for a header, at ' ' into ESMTP arguments).
    for stage in data.split(|&b| b == 0xFF) {
        let Some((&op, arg)) = stage.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(arg);
        let args = || text.split(' ').map(str::to_owned).collect::<Vec<_>>();
        match op % 6 {
            0 => session.message = Some(MessageInFlight::new(config.clone(), None, args(), None)),
            1 => {
                if let Some(m) = session.message.as_mut() {
                    m.add_recipient(args());
                    assert!(m.recipients.len() <= config.milter.max_recipients);
                }
            }
            2 => {
                if let Some(m) = session.message.as_mut() {
                    let (name, value) = match arg.iter().position(|&b| b == b':') {
                        Some(i) => (&arg[..i], &arg[i + 1..]),
                        None => (arg, &b""[..]),
                    };
                    m.add_header(name, value, session.exact_leading_space);
                }
            }
            3 => {
                if let Some(m) = session.message.as_mut() {
                    m.spool.append(arg);
                }
            }
            4 => {
                if let Some(mut m) = session.message.take() {
                    let _ = m.dsn_rewrites();
                    let envelope = m.envelope(&session, Some(text.into_owned()));
                    for field in [&envelope.subject, &envelope.message_id]
                        .into_iter()
                        .flatten()
                    {
                        assert!(!field.chars().any(char::is_control), "{field:?}");
                    }
                    assert!(envelope.recipients.len() <= config.milter.max_recipients);
                }
            }
            _ => session.reset_message(),
        }
    }
});
