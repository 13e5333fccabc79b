use super::cell;

#[test]
fn formulas_are_defused_and_separators_quoted() {
    assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    assert_eq!(cell("+1"), "'+1");
    assert_eq!(cell("-1"), "'-1");
    assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
    assert_eq!(cell("a,b"), "\"a,b\"");
    assert_eq!(cell("plain"), "plain");
    assert_eq!(cell(""), "");
}
