//! Address helpers shared by the milter and the command line.

/// `<user@example.com>` → `user@example.com`; `<>` → empty (the null sender).
pub fn strip_brackets(addr: &str) -> String {
    let addr = addr.trim();
    addr.strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(addr)
        .to_string()
}
