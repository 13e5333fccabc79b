//! A reply text and DSN from a remote server, through the built-in bounce classifier and the
//! reply splitter: always one of the 16 categories, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static CLASSIFIER: LazyLock<mailtrail::bounce::Classifier> =
    LazyLock::new(mailtrail::bounce::Classifier::builtin);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let category = CLASSIFIER.classify_line(&text);
    assert!(!category.as_str().is_empty());
    let _ = mailtrail::bounce::parse_reply(&text);
});
