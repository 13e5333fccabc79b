//! A configuration file: any text is either a configuration or one error line naming file,
//! line and key, never a panic or a page of the file quoted back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = mailtrail::config::parse(std::path::Path::new("fuzz.toml"), text) {
        let shown = e.to_string();
        assert!(shown.starts_with("fuzz.toml:"), "{shown}");
        assert!(shown.len() < 1000, "{} bytes", shown.len());
    }
});
