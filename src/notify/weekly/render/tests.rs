use super::*;

#[test]
fn text_tables_align_their_columns() {
    let mut out = String::new();
    write_text_table(
        &mut out,
        &["Domain", "Count"],
        &[
            vec!["a.example".into(), "5".into()],
            vec!["b".into(), "1,000".into()],
        ],
    );
    assert_eq!(
        out,
        "  Domain     Count\n  a.example      5\n  b          1,000\n"
    );
}
