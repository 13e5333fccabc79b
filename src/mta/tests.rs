use super::*;
use crate::config::{MtaConfig, MtaKind};

fn control(kind: MtaKind, config_dir: Option<&str>) -> MtaControl {
    let mut config = MtaConfig::defaults(kind);
    config.config_dir = config_dir.map(Into::into);
    MtaControl::new(config)
}

fn argv(control: &MtaControl, action: MtaAction, qid: &str) -> Vec<String> {
    control.command_for(action, qid).expect("valid queue id")
}

#[test]
fn postfix_commands() {
    let c = control(MtaKind::Postfix, None);
    assert_eq!(
        argv(&c, MtaAction::Retry, "4XyZ12abc"),
        ["postqueue", "-i", "4XyZ12abc"]
    );
    assert_eq!(
        argv(&c, MtaAction::Remove, "4XyZ12abc"),
        ["postsuper", "-d", "4XyZ12abc"]
    );
}

#[test]
fn postfix_config_dir_goes_after_the_program() {
    let c = control(MtaKind::Postfix, Some("/etc/postfix-out"));
    assert_eq!(
        argv(&c, MtaAction::Retry, "ABC123"),
        ["postqueue", "-c", "/etc/postfix-out", "-i", "ABC123"]
    );
    assert_eq!(
        argv(&c, MtaAction::Remove, "ABC123"),
        ["postsuper", "-c", "/etc/postfix-out", "-d", "ABC123"]
    );
}

#[test]
fn sendmail_commands() {
    let c = control(MtaKind::Sendmail, None);
    assert_eq!(
        argv(&c, MtaAction::Retry, "5ANKx1xx012345"),
        ["sendmail", "-qI5ANKx1xx012345"]
    );
    let remove = argv(&c, MtaAction::Remove, "5ANKx1xx012345");
    assert_eq!(
        remove,
        [
            "sh",
            "-c",
            crate::config::SENDMAIL_REMOVE_SCRIPT,
            "mailtrail-remove",
            "5ANKx1xx012345",
            "/var/spool/mqueue"
        ]
    );
    // The id reaches the script only as "$1", never spliced into its text.
    assert!(!remove[2].contains("5ANKx1xx012345"));

    let c = control(MtaKind::Sendmail, Some("/etc/mail/submit.cf"));
    assert_eq!(
        argv(&c, MtaAction::Retry, "ABC"),
        ["sendmail", "-C", "/etc/mail/submit.cf", "-qIABC"]
    );
    // The remove script is not one of sendmail's tools: no -C spliced into `sh`.
    assert_eq!(argv(&c, MtaAction::Remove, "ABC")[..2], ["sh", "-c"]);
}

#[test]
fn custom_lists_replace_every_placeholder() {
    let mut config = MtaConfig::defaults(MtaKind::Postfix);
    config.config_dir = Some("/etc/pf2".into());
    config.retry = vec![
        "/usr/sbin/postqueue".into(),
        "-i".into(),
        "{queue_id}".into(),
    ];
    config.remove = vec![
        "/usr/local/bin/drop".into(),
        "--id={queue_id}".into(),
        "{queue_id}".into(),
    ];
    let c = MtaControl::new(config);
    // A full path to postqueue still gets -c.
    assert_eq!(
        argv(&c, MtaAction::Retry, "Q1"),
        ["/usr/sbin/postqueue", "-c", "/etc/pf2", "-i", "Q1"]
    );
    assert_eq!(
        argv(&c, MtaAction::Remove, "Q1"),
        ["/usr/local/bin/drop", "--id=Q1", "Q1"]
    );
}

#[test]
fn bad_queue_ids_are_refused() {
    let c = control(MtaKind::Postfix, None);
    let long = "A".repeat(65);
    for bad in [
        "",
        "-f",
        "ALL",
        "../../etc/passwd",
        "ABC DEF",
        "ABC;rm",
        "ABC\n",
        "AB-CD",
        "ABC$1",
        "ÄBC",
        "all",
        long.as_str(),
    ] {
        for action in [MtaAction::Retry, MtaAction::Remove] {
            match c.command_for(action, bad) {
                // "ALL" is alphanumeric: postsuper -d ALL would empty the queue.
                Ok(argv) if bad.eq_ignore_ascii_case("ALL") => {
                    panic!("ALL must be refused, got {argv:?}")
                }
                Ok(argv) => panic!("{bad:?} accepted: {argv:?}"),
                Err(MtaError::BadQueueId(id)) => assert_eq!(id, bad),
                Err(e) => panic!("{bad:?}: wrong error {e}"),
            }
        }
    }
    assert!(valid_queue_id("4dKq2T0Xz9z1x"));
    assert!(valid_queue_id(&"a".repeat(64)));
}

#[tokio::test]
async fn bad_queue_id_runs_nothing() {
    // `false` would fail if it ran; the id check must come first.
    let mut config = MtaConfig::defaults(MtaKind::Postfix);
    config.retry = vec!["false".into(), "{queue_id}".into()];
    let err = MtaControl::new(config).retry("-x").await.unwrap_err();
    assert!(matches!(err, MtaError::BadQueueId(_)), "{err}");
}

#[tokio::test]
async fn failure_carries_exit_status_and_stderr() {
    let mut config = MtaConfig::defaults(MtaKind::Postfix);
    config.remove = vec![
        "sh".into(),
        "-c".into(),
        "echo \"no such message $1\" >&2; exit 3".into(),
        "x".into(),
        "{queue_id}".into(),
    ];
    let err = MtaControl::new(config).remove("ABC123").await.unwrap_err();
    match &err {
        MtaError::Failed {
            action,
            queue_id,
            status,
            stderr,
            ..
        } => {
            assert_eq!(*action, MtaAction::Remove);
            assert_eq!(queue_id, "ABC123");
            assert_eq!(status.code(), Some(3));
            assert_eq!(stderr, "no such message ABC123");
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains("no such message ABC123"), "{err}");
}

#[tokio::test]
async fn success_missing_program_and_timeout() {
    let mut config = MtaConfig::defaults(MtaKind::Postfix);
    config.retry = vec![
        "sh".into(),
        "-c".into(),
        "exit 0".into(),
        "{queue_id}".into(),
    ];
    config.remove = vec!["/nonexistent/postsuper".into(), "{queue_id}".into()];
    let c = MtaControl::new(config.clone());
    c.retry("ABC").await.expect("exit 0 is success");
    let err = c.remove("ABC").await.unwrap_err();
    assert!(matches!(err, MtaError::Spawn { .. }), "{err}");

    config.retry = vec![
        "sh".into(),
        "-c".into(),
        "sleep 30".into(),
        "x".into(),
        "{queue_id}".into(),
    ];
    config.timeout = Duration::from_millis(200);
    let started = std::time::Instant::now();
    let err = MtaControl::new(config).retry("ABC").await.unwrap_err();
    assert!(matches!(err, MtaError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
