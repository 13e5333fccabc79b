use super::*;

#[test]
fn figures_are_formatted_for_people() {
    assert_eq!(count(0), "0");
    assert_eq!(count(999), "999");
    assert_eq!(count(1000), "1,000");
    assert_eq!(count(1234567), "1,234,567");
    assert_eq!(change(110.0, 100.0), "+10.0%");
    assert_eq!(change(50.0, 100.0), "-50.0%");
    assert_eq!(change(5.0, 0.0), "new");
    assert_eq!(change(0.0, 0.0), "=");
    assert_eq!(rate(Some(0.9812)), "98.1%");
    assert_eq!(delay(Some(2.04)), "2.0 s");
    assert_eq!(delay(Some(600.0)), "10 min");
    assert_eq!(delay(Some(5.0 * 3600.0)), "5.0 h");
    assert_eq!(delay(None), "-");
}

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

#[test]
fn sizes_are_in_one_readable_unit() {
    assert_eq!(super::bytes(835_982_522), "836.0 MB");
    assert_eq!(super::bytes(5_600_000), "5.6 MB");
    assert_eq!(super::bytes(999), "999 B");
}
