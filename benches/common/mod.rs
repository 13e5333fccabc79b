//! What the benchmarks share: the target directory and the generated 1,000,000-line postfix log.

use std::{path::PathBuf, process::Command};

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target")))
}

/// The 1,000,000-line postfix log of `../shared/data/tools/gen_postfix_log.py` with its default
/// seed, generated into `target/` once.
pub fn generated_postfix_log() -> PathBuf {
    let target = target_dir();
    let path = target.join("maillog-bench-postfix-1M.log");
    if !path.exists() {
        let _ = std::fs::create_dir_all(&target);
        let tmp = path.with_extension("tmp");
        let tool = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/tools/gen_postfix_log.py"
        );
        let status = Command::new("python3")
            .args([tool, "--lines", "1000000", "-o"])
            .arg(&tmp)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "generator failed");
        std::fs::rename(&tmp, &path).expect("rename generated log");
    }
    path
}
