//! File follower: appends, partial lines, rotation by rename and copytruncate, restart from a
//! saved position; journald entries; .gz import; stdin-style readers.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use mailtrail::maillog::follow::read_lines_into;
use mailtrail::maillog::{
    Event, FileFollower, FollowedLine, LogPosition, ParseOutcome, Parser, ParserOptions,
    journal_entry_to_line, open_import,
};

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

fn texts(lines: &[FollowedLine]) -> Vec<&str> {
    lines.iter().map(|l| l.text.as_str()).collect()
}

/// Polls until two polls in a row return nothing (rotation needs a quiet poll to switch).
fn drain(f: &mut FileFollower) -> Vec<FollowedLine> {
    let mut out = Vec::new();
    let mut quiet = 0;
    while quiet < 2 {
        let got = f.poll().expect("poll");
        if got.is_empty() {
            quiet += 1;
        } else {
            quiet = 0;
            out.extend(got);
        }
    }
    out
}

#[test]
fn appends_and_partial_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mail.log");
    let mut f = FileFollower::new(&path, None);
    assert!(f.poll().expect("missing file is fine").is_empty());
    append(&path, "one\ntwo\nthr");
    let got = drain(&mut f);
    assert_eq!(texts(&got), ["one", "two"]);
    assert_eq!(got[1].position.offset, 8);
    assert_eq!(f.position().offset, 8, "the partial line is not consumed");
    append(&path, "ee\r\nfour\n");
    let got = drain(&mut f);
    assert_eq!(texts(&got), ["three", "four"]);
    assert_eq!(
        got[1].position.offset,
        fs::metadata(&path).expect("meta").len()
    );
    assert_eq!(got[0].position.path, path);
}

#[test]
fn rotation_by_rename_reads_old_rest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mail.log");
    append(&path, "a1\na2\n");
    let mut f = FileFollower::new(&path, None);
    assert_eq!(texts(&drain(&mut f)), ["a1", "a2"]);
    let old_inode = f.position().inode;
    // The writer adds to the old file, then logrotate renames it and a new file appears.
    append(&path, "a3\n");
    fs::rename(&path, dir.path().join("mail.log.1")).expect("rename");
    append(&path, "b1\nb2\n");
    // Still writing to the renamed file (before its HUP): not lost.
    append(&dir.path().join("mail.log.1"), "a4\n");
    let got = drain(&mut f);
    assert_eq!(texts(&got), ["a3", "a4", "b1", "b2"]);
    assert_eq!(got[1].position.inode, old_inode);
    assert_ne!(got[2].position.inode, old_inode);
    assert_eq!(got[3].position.offset, 6);
    append(&path, "b3\n");
    assert_eq!(texts(&drain(&mut f)), ["b3"]);
}

#[test]
fn copytruncate_restarts_at_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mail.log");
    append(&path, "first line\nsecond line\n");
    let mut f = FileFollower::new(&path, None);
    assert_eq!(drain(&mut f).len(), 2);
    let inode = f.position().inode;
    // copytruncate: same inode, emptied, then new lines.
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .expect("truncate");
    append(&path, "n1\nn2\n");
    let got = drain(&mut f);
    assert_eq!(texts(&got), ["n1", "n2"]);
    assert_eq!(got[0].position.inode, inode);
    assert_eq!(got[1].position.offset, 6);
}

#[test]
fn restart_from_saved_position_neither_repeats_nor_loses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mail.log");
    let all: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
    append(&path, &(all[..30].join("\n") + "\n"));
    let mut f = FileFollower::new(&path, None);
    let got = drain(&mut f);
    // The store committed up to line 17 before a crash.
    let saved: LogPosition = got[17].position.clone();
    let json = serde_json::to_string(&saved).expect("serialise");
    let saved: LogPosition = serde_json::from_str(&json).expect("deserialise");
    drop(f);
    append(&path, &(all[30..].join("\n") + "\n"));
    let mut f = FileFollower::new(&path, Some(saved.clone()));
    let got = drain(&mut f);
    assert_eq!(
        texts(&got),
        all[18..].iter().map(String::as_str).collect::<Vec<_>>()
    );

    // Rotated while we were down: the rest of the old file, then the new one.
    let mut f = FileFollower::new(&path, Some(saved));
    fs::rename(&path, dir.path().join("mail.log.1")).expect("rename");
    append(&path, "new 1\n");
    let got = drain(&mut f);
    let mut want: Vec<&str> = all[18..].iter().map(String::as_str).collect();
    want.push("new 1");
    assert_eq!(texts(&got), want);
}

#[test]
fn big_backlog_comes_in_batches_without_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mail.log");
    let body: String = (0..25_000).map(|i| format!("entry number {i}\n")).collect();
    append(&path, &body);
    let mut f = FileFollower::new(&path, None);
    f.max_batch = 10_000;
    // max_batch is a soft cap: the read chunk in hand is finished first.
    let first = f.poll().expect("poll");
    assert!((10_000..12_000).contains(&first.len()), "{}", first.len());
    let rest = drain(&mut f);
    assert_eq!(first.len() + rest.len(), 25_000);
    assert_eq!(rest[0].text, format!("entry number {}", first.len()));
    assert_eq!(
        rest.last().map(|l| l.position.offset),
        Some(body.len() as u64)
    );
}

#[tokio::test]
async fn run_sends_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mail.log");
    append(&path, "x1\n");
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let task = tokio::spawn(FileFollower::new(&path, None).run(tx, Duration::from_millis(20)));
    let b = rx.recv().await.expect("batch");
    assert_eq!(texts(&b), ["x1"]);
    append(&path, "x2\n");
    let b = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("in time")
        .expect("batch");
    assert_eq!(texts(&b), ["x2"]);
    drop(rx);
    append(&path, "x3\n");
    // The follower stops once nobody listens.
    let res = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops")
        .expect("joins");
    assert!(res.is_err());
}

#[test]
fn journal_entries_become_parseable_lines() {
    let entry = r#"{"__CURSOR":"s=abc;i=42","__REALTIME_TIMESTAMP":"1780209982123456","_HOSTNAME":"mx1","SYSLOG_IDENTIFIER":"postfix/smtp","_PID":"1350","MESSAGE":"77462600A67: to=<a@b.example>, relay=mx.b.example[192.0.2.7]:25, delay=2.5, delays=0.9/0/1.2/0.3, dsn=2.0.0, status=sent (250 2.0.0 OK)"}"#;
    let (line, cursor) = journal_entry_to_line(entry).expect("entry");
    assert_eq!(cursor, "s=abc;i=42");
    assert!(
        line.starts_with(
            "2026-05-31T06:46:22.123456+00:00 mx1 postfix/smtp[1350]: 77462600A67: to="
        ),
        "{line}"
    );
    let mut p = Parser::new(ParserOptions::new(
        time::macros::datetime!(2026-06-01 0:00 UTC),
    ));
    let ParseOutcome::Event(h, Event::Delivery(d)) = p.parse(&line) else {
        panic!("{line}")
    };
    assert_eq!(h.time.unix_timestamp(), 1_780_209_982);
    assert_eq!(h.time.microsecond(), 123_456);
    assert_eq!((h.host.as_str(), h.pid), ("mx1", Some(1350)));
    assert_eq!(
        (d.to.as_str(), d.relay_ip.as_deref(), d.relay_port),
        ("a@b.example", Some("192.0.2.7"), Some(25))
    );

    // Binary MESSAGE (array of bytes), a newline in it, no PID.
    let entry = r#"{"__CURSOR":"c2","__REALTIME_TIMESTAMP":"0","SYSLOG_IDENTIFIER":"sm-mta","MESSAGE":[97,10,98,255]}"#;
    let (line, _) = journal_entry_to_line(entry).expect("entry");
    assert_eq!(
        line,
        "1970-01-01T00:00:00.000000+00:00 localhost sm-mta: a b\u{fffd}"
    );
    assert!(journal_entry_to_line("{}").is_err());
    assert!(journal_entry_to_line("not json").is_err());
    assert!(
        journal_entry_to_line(
            r#"{"__CURSOR":"x","__REALTIME_TIMESTAMP":"99999999999999999999999"}"#
        )
        .is_err()
    );

    let jf = mailtrail::maillog::JournalFollower {
        cursor: Some("s=abc".into()),
        ..Default::default()
    };
    assert!(jf.args().contains(&"--after-cursor=s=abc".to_owned()));
    assert!(jf.args().contains(&"--output=json".to_owned()));
    let jf = mailtrail::maillog::JournalFollower::default();
    assert!(jf.args().contains(&"--lines=all".to_owned()));
}

#[test]
fn import_reads_gzip_and_plain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("mail.log");
    let gz = dir.path().join("mail.log.2.gz");
    fs::write(&plain, "p1\np2\n").expect("write");
    let mut enc = flate2::write::GzEncoder::new(
        fs::File::create(&gz).expect("create"),
        flate2::Compression::fast(),
    );
    enc.write_all(b"g1\ng2\ng3").expect("gz write");
    enc.finish().expect("gz finish");
    let lines = |p: &Path| {
        open_import(p)
            .expect("open")
            .lines()
            .collect::<Result<Vec<_>, _>>()
            .expect("read")
    };
    assert_eq!(lines(&plain), ["p1", "p2"]);
    assert_eq!(lines(&gz), ["g1", "g2", "g3"]);
    let empty = dir.path().join("empty");
    fs::write(&empty, "").expect("write");
    assert!(lines(&empty).is_empty());
    assert!(open_import(dir.path().join("missing")).is_err());
}

#[test]
fn reader_lines_carry_byte_offsets() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let input = std::io::Cursor::new(b"ab\ncd\nlast".to_vec());
    read_lines_into(input, Path::new("-"), &tx).expect("read");
    drop(tx);
    let mut got = Vec::new();
    while let Some(b) = rx.blocking_recv() {
        got.extend(b);
    }
    assert_eq!(texts(&got), ["ab", "cd", "last"]);
    assert_eq!(
        got.iter().map(|l| l.position.offset).collect::<Vec<_>>(),
        [3, 6, 10]
    );
}

/// The journald follower end to end, with a stand-in `journalctl` that prints two entries.
#[tokio::test]
async fn journal_follower_runs_journalctl() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("journalctl");
    let args_file = dir.path().join("args");
    let script = format!(
        "#!/bin/sh\necho \"$@\" > '{}'\necho '{}'\necho 'not json'\necho '{}'\n",
        args_file.display(),
        r#"{"__CURSOR":"c1","__REALTIME_TIMESTAMP":"1780209982000000","_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"postfix/qmgr","_PID":"7","MESSAGE":"3F1A2B4C5D: removed"}"#,
        r#"{"__CURSOR":"c2","__REALTIME_TIMESTAMP":"1780209983000000","_HOSTNAME":"mx","SYSLOG_IDENTIFIER":"sm-mta","_PID":"8","MESSAGE":"hello"}"#,
    );
    fs::write(&fake, script).expect("write script");
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).expect("chmod");
    let jf = mailtrail::maillog::JournalFollower {
        cursor: Some("c0".into()),
        since: None,
        journalctl: Some(fake),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let res = jf.run(tx).await;
    // journalctl ending is an error for a follower: it is meant to run forever.
    assert!(
        matches!(res, Err(mailtrail::maillog::FollowError::Journal(_))),
        "{res:?}"
    );
    let mut got = Vec::new();
    while let Ok(b) = rx.try_recv() {
        got.extend(b);
    }
    assert_eq!(got.len(), 2, "the bad entry is skipped");
    assert_eq!(got[0].position.cursor.as_deref(), Some("c1"));
    assert_eq!(got[1].position.cursor.as_deref(), Some("c2"));
    assert!(
        got[0]
            .text
            .ends_with("mx postfix/qmgr[7]: 3F1A2B4C5D: removed")
    );
    let args = fs::read_to_string(&args_file).expect("args");
    assert!(
        args.contains("--after-cursor=c0") && args.contains("--follow"),
        "{args}"
    );
}
