//! `mailtrail doctor` against private postfix instances (Debian's package), each set up wrong
//! in one way on purpose: it prints that one finding with the line to paste and exits 1; wired
//! right, it says nothing is wrong and exits 0. Needs root and Debian's postfix.

mod support;

use std::process::Command;
use support::mailtrail::{BIN, Mailtrail};
use support::postfix::{Postfix, PostfixConfig};

/// `mailtrail doctor` with `mt`'s configuration plus `extra`: (exit code, standard output,
/// standard error).
fn doctor(mt: &Mailtrail, extra: &str) -> (i32, String, String) {
    let config = mt.config_path().with_file_name("doctor.toml");
    let text = std::fs::read_to_string(mt.config_path()).unwrap();
    std::fs::write(&config, format!("{text}\n{extra}")).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("doctor")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One postfix instance wired to a running mailtrail, with `main.cf` changed by `set`.
fn wired(set: &[(&str, &str)]) -> (Mailtrail, Postfix) {
    let mut mt = Mailtrail::configure();
    mt.start();
    let mut config = PostfixConfig::for_mailtrail(1, &mt);
    for (key, value) in set {
        config = config.set(key, value);
    }
    let pf = Postfix::start(config);
    // The instance logs to the file mailtrail follows: it exists and is recent.
    pf.flush();
    (mt, pf)
}

fn mta(pf: &Postfix) -> String {
    format!("[mta]\nconfig_dir = \"{}\"\n", pf.config_dir().display())
}

#[test]
fn wired_right_nothing_is_wrong() {
    let (mt, pf) = wired(&[]);
    let (code, out, err) = doctor(&mt, &mta(&pf));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("nothing wrong: postfix"), "{out}");
}

#[test]
fn each_wrong_setting_is_one_finding_with_the_line_to_paste() {
    let dir_of = |pf: &Postfix| pf.config_dir().display().to_string();
    // Mail refused while mailtrail is down.
    let (mt, pf) = wired(&[("milter_default_action", "tempfail")]);
    let (code, out, err) = doctor(&mt, &mta(&pf));
    assert_eq!(code, 1);
    assert!(err.contains("1 thing to fix"), "{err}");
    assert_eq!(out.matches('✗').count(), 1, "{out}");
    assert!(
        out.contains("milter_default_action is \"tempfail\""),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "postconf -c {} -e 'milter_default_action = accept'",
            dir_of(&pf)
        )),
        "{out}"
    );
    drop((mt, pf));

    // Mail submitted locally passes no milter.
    let (mt, pf) = wired(&[("non_smtpd_milters", "")]);
    let (code, out, _) = doctor(&mt, &mta(&pf));
    assert_eq!(code, 1);
    assert_eq!(out.matches('✗').count(), 1, "{out}");
    assert!(
        out.contains("non_smtpd_milters does not reach mailtrail"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "non_smtpd_milters = inet:127.0.0.1:{}'",
            mt.milter_port()
        )),
        "{out}"
    );
    drop((mt, pf));

    // With notices on, postfix must keep mail queued longer than mailtrail's longest promise.
    let (mt, pf) = wired(&[("maximal_queue_lifetime", "1h")]);
    let (code, out, _) = doctor(&mt, &format!("{}\n[notify]\nenabled = true\n", mta(&pf)));
    assert_eq!(code, 1);
    assert_eq!(out.matches('✗').count(), 1, "{out}");
    assert!(out.contains("maximal_queue_lifetime is \"1h\""), "{out}");
    assert!(out.contains("maximal_queue_lifetime = 25h'"), "{out}");
}

#[test]
fn no_postfix_where_it_looks_says_where_it_looked_and_how_to_point_elsewhere() {
    let mut mt = Mailtrail::configure();
    mt.start();
    let (code, out, err) = doctor(&mt, "[mta]\nconfig_dir = \"/nonexistent/postfix\"\n");
    assert_eq!(code, 1);
    assert!(
        out.contains("looked for postfix's configuration in /nonexistent/postfix"),
        "{out}"
    );
    assert!(out.contains("set [mta] config_dir"), "{out}");
    assert!(
        !err.contains("panicked") && !out.contains("Error {"),
        "{out}{err}"
    );
}
