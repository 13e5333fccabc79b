use super::*;

#[test]
fn svg_bars_escape_labels_from_mail() {
    let labels = vec![
        "<script>alert(1)</script>@x.example".to_string(),
        "b&c".into(),
    ];
    let series = vec![
        Series::new("delivered", DELIVERED, vec![5, 1]),
        Series::new("bounced", BOUNCED, vec![2, 0]),
    ];
    for horizontal in [false, true] {
        let out = svg(600, 300, |root| {
            if horizontal {
                horizontal_bars(root, "Senders", &labels, &series)
            } else {
                vertical_bars(root, "Senders", &labels, &series)
            }
        })
        .unwrap();
        assert!(out.starts_with("<svg"), "{out}");
        assert!(!out.contains("<script"), "{out}");
        assert!(
            out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{out}"
        );
        assert!(out.contains("b&amp;c"), "{out}");
        assert!(out.contains("delivered") && out.contains("Senders"));
        // One bar per label and series at least, plus the legend's swatches.
        assert!(out.matches("<rect").count() >= 4, "{out}");
    }
}

#[test]
fn empty_data_still_draws_an_axis() {
    let out = svg(400, 200, |root| {
        vertical_bars(root, "Nothing", &[], &[Series::new("n", NEUTRAL, vec![])])
    })
    .unwrap();
    assert!(out.contains("Nothing"));
}

#[test]
fn long_labels_are_cut() {
    let long = "x".repeat(100);
    assert_eq!(short_label(&long).chars().count(), MAX_LABEL_CHARS);
    assert_eq!(short_label("short"), "short");
}
