//! A log line of either grammar, in every stamp form: the parser never panics, and what it
//! makes of a line never carries a NUL or other control byte into an event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailtrail::maillog::{Event, ParseOutcome, Parser, ParserOptions};
use time::macros::{datetime, offset};

/// Stamp forms and program tags the input is put behind, chosen by its first byte.
const PREFIXES: &[&str] = &[
    "",
    "May 31 06:26:22 mx postfix/smtp[123]: ",
    "May 31 06:26:22 mx postfix/cleanup[9]: 3F1A2B4C5D: ",
    "2026-05-31T06:26:22+02:00 mx postfix/qmgr[1]: ",
    "<22>May 31 06:26:22 mx postfix-out/smtpd[7]: NOQUEUE: ",
    "May 20 00:00:09 mail sm-mta[2034]: 64JM07JY002032: ",
    "2026-05-20T00:00:09.123456+00:00 mail sendmail[2017]: ",
    "May 31 06:26:22 mx postfix/smtp[123]: 3F1A2B4C5D: to=<",
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let line = format!("{}{text}", PREFIXES[usize::from(choice) % PREFIXES.len()]);
    let mut parser = Parser::new(ParserOptions {
        now: datetime!(2026-06-01 12:00 UTC),
        syslog_names: vec!["postfix".into()],
        default_offset: offset!(+2),
    });
    for line in mailtrail::maillog::lines(&line) {
        if let ParseOutcome::Event(_, Event::Delivery(d)) = parser.parse(line) {
            for field in [&d.to, &d.reply, &d.queue_id] {
                assert!(
                    !field.bytes().any(|b| b < 0x20 && b != b'\t'),
                    "control byte in {field:?}"
                );
            }
        }
    }
});
