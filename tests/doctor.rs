//! `mailtrail doctor` against private postfix instances (Debian's package), each set up wrong
//! in one way on purpose: it prints that one finding with the line to paste and exits 1; wired
//! right, it says nothing is wrong and exits 0; sendmail from a `.cf` file written wrong. Needs
//! root, Debian's postfix and sudo.

mod support;

use std::process::Command;
use support::mailtrail::{BIN, Mailtrail};
use support::postfix::{Postfix, PostfixConfig};

/// `mailtrail doctor` with `mt`'s configuration plus `extra`: (exit code, standard output,
/// standard error).
fn doctor(mt: &Mailtrail, extra: &str) -> (i32, String, String) {
    doctor_with(mt, extra, &[])
}

/// [`doctor`] with more arguments (`--user NAME`).
fn doctor_with(mt: &Mailtrail, extra: &str, args: &[&str]) -> (i32, String, String) {
    let config = mt.config_path().with_file_name("doctor.toml");
    let text = std::fs::read_to_string(mt.config_path()).unwrap();
    std::fs::write(&config, format!("{text}\n{extra}")).unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("doctor")
        .args(args)
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

/// With notices on, a message mailtrail gave up on is removed from postfix's queue: the user
/// mailtrail runs as must be allowed `postsuper -d` (root, or a sudo rule). Asked of sudo itself
/// (Debian's sudoers lets root run anything, `nobody` nothing).
#[test]
fn the_remove_command_must_be_allowed_to_the_user_mailtrail_runs_as() {
    let (mt, pf) = wired(&[]);
    let notices = format!("{}\n[notify]\nenabled = true\n", mta(&pf));
    let through_sudo = notices.replace(
        "[mta]\n",
        "[mta]\nremove = [\"sudo\", \"-n\", \"/usr/sbin/postsuper\", \"-d\", \"{queue_id}\"]\n",
    );
    let (code, out, err) = doctor_with(&mt, &through_sudo, &["--user", "root"]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, _) = doctor_with(&mt, &through_sudo, &["--user", "nobody"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches('✗').count(), 1, "{out}");
    assert!(
        out.contains("nobody may not run `/usr/sbin/postsuper -d 4F2A1B3C5D` through sudo"),
        "{out}"
    );
    assert!(
        out.contains("nobody ALL=(root) NOPASSWD: /usr/sbin/postsuper -d *"),
        "{out}"
    );

    // postsuper without sudo works for root only.
    let (code, out, _) = doctor_with(&mt, &notices, &["--user", "nobody"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches('✗').count(), 1, "{out}");
    assert!(out.contains("remove runs postsuper as nobody"), "{out}");
    assert!(
        out.contains(
            "remove = [\"sudo\", \"-n\", \"/usr/sbin/postsuper\", \"-d\", \"{queue_id}\"]"
        ),
        "{out}"
    );
    let (code, out, err) = doctor_with(&mt, &notices, &["--user", "root"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Sendmail's queue timeouts, read from its `.cf`: with notices on it keeps mail longer than
/// the longest policy (bulk: 24 h) and never warns itself. Its defaults (5 days, warn at 4
/// hours) warn.
#[test]
fn sendmail_must_keep_mail_longer_than_the_policies_and_never_warn() {
    let mut mt = Mailtrail::configure();
    mt.start();
    // The log sendmail would write: there and recent.
    std::fs::write(mt.mta_log_path(), "").unwrap();
    let cf = mt.config_path().with_file_name("sendmail.cf");
    let x_line = format!(
        "Xmailtrail, S=inet:{}@127.0.0.1, T=S:30s;R:5m;E:5m\n",
        mt.milter_port()
    );
    let config = format!(
        "[mta]\nkind = \"sendmail\"\nconfig_dir = \"{}\"\n\n[notify]\nenabled = true\n",
        cf.display()
    );
    let check = |cf_text: &str| {
        std::fs::write(
            &cf,
            format!("# sendmail.cf\nV10/Berkeley\n{x_line}{cf_text}"),
        )
        .unwrap();
        doctor(&mt, &config)
    };

    let (code, out, err) = check("O Timeout.queuereturn=2d\nO Timeout.queuewarn=3d\n");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("nothing wrong: sendmail"), "{out}");

    // Sendmail's defaults: it warns after 4 hours.
    let (code, out, _) = check("");
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches('✗').count(), 1, "{out}");
    assert!(out.contains("Timeout.queuewarn is \"4h\""), "{out}");
    assert!(out.contains("define(`confTO_QUEUEWARN', `6d')dnl"), "{out}");

    // Returned after 12 hours, before the bulk policy's 24: both wrong, each with its line.
    let (code, out, _) = check("O Timeout.queuereturn=12h\nO Timeout.queuewarn=1d\n");
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches('✗').count(), 2, "{out}");
    assert!(out.contains("Timeout.queuereturn is \"12h\""), "{out}");
    assert!(
        out.contains("define(`confTO_QUEUERETURN', `2d')dnl"),
        "{out}"
    );
    assert!(out.contains("define(`confTO_QUEUEWARN', `3d')dnl"), "{out}");

    // The normal priority's timeout is the one ordinary mail gets; chained units read whole.
    let (code, out, err) = check(
        "O Timeout.queuereturn=1h\nO Timeout.queuereturn.normal=1d12h\nO Timeout.queuewarn=2d\n",
    );
    assert_eq!(code, 0, "{out}{err}");
}
