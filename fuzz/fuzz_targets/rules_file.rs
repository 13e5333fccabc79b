//! An operator's rules file (`[bounce] rules`): refused with an error or compiled, never a
//! panic; a compiled one classifies a reply.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(classifier) = mailtrail::bounce::Classifier::with_extra_rules(text, "fuzz.toml") {
        let _ = classifier.classify_line("5.1.1\t550 5.1.1 <bob@example.com>: User unknown");
    }
});
