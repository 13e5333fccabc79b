use super::*;
use time::UtcOffset;

/// `--show-unknown` lists the unknown lines of plain and gzip files in order, whichever
/// thread tracked them: the parsing thread into an empty store, the writer into one that
/// holds messages. Without it they are counted, with a hint.
#[test]
fn unknown_lines_are_counted_and_listed_in_order() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::defaults();
    config.store.path = dir.path().join("store.db");
    let plain = dir.path().join("mail.log.1");
    std::fs::write(
        &plain,
        "May 20 00:11:22 mail postfix/qmgr[1006]: B50A1214B93: from=<lip@example.net>, size=81759, nrcpt=2 (queue active)\n\
         garbage one\n\
         May 20 00:18:15 mail postfix/qmgr[1006]: B50A1214B93: removed\n\
         garbage two\n",
    )
    .expect("write");
    let gz = dir.path().join("mail.log.2.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("create"),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(b"garbage three\nMay 21 00:00:00 mail postfix/qmgr[1006]: C60B1214B94: removed")
        .expect("gz write");
    encoder.finish().expect("gz finish");
    let files = [plain, gz];
    for store in ["empty", "holding messages"] {
        let mut out = Vec::new();
        let stats = import(&config, &files, true, UtcOffset::UTC, &mut out).expect("import");
        let out = String::from_utf8(out).expect("utf-8");
        assert_eq!((stats.lines, stats.unknown), (6, 3), "{store}: {out}");
        let listed: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("unknown: "))
            .collect();
        assert_eq!(
            listed,
            ["garbage one", "garbage two", "garbage three"],
            "{store}"
        );
        assert!(!out.contains("--show-unknown"), "{out}");
    }
    let mut out = Vec::new();
    let stats = import(&config, &files, false, UtcOffset::UTC, &mut out).expect("import");
    let out = String::from_utf8(out).expect("utf-8");
    assert_eq!(stats.unknown, 3);
    assert!(!out.contains("unknown: "), "{out}");
    assert!(
        out.contains("--show-unknown lists the unknown lines"),
        "{out}"
    );
}
