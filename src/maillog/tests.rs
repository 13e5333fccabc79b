#[test]
fn lines_split_as_str_lines() {
    for text in [
        "",
        "\n",
        "\n\n",
        "a",
        "a\n",
        "a\r\n",
        "a\r\nb",
        "a\n\nb\n",
        "a\rb\n\r",
        "\r\n",
        "\r",
        "é\r\nü\n日本",
        "x\r\r\n",
    ] {
        let ours: Vec<&str> = super::lines(text).collect();
        let std: Vec<&str> = text.lines().collect();
        assert_eq!(ours, std, "{text:?}");
    }
}
