use super::RecipientStatus::{self, *};

#[test]
fn the_worst_recipient_state_is_the_messages() {
    assert_eq!(RecipientStatus::worst([Sent, Deferred, Sent]), Deferred);
    assert_eq!(RecipientStatus::worst([Sent, Expired, Bounced]), Bounced);
    assert_eq!(RecipientStatus::worst([Sent, Pending]), Pending);
    assert_eq!(RecipientStatus::worst([Sent, Sent]), Sent);
    assert_eq!(RecipientStatus::worst([Deferred, Expired]), Expired);
    assert_eq!(RecipientStatus::worst([]), Pending);
}

#[test]
fn a_final_state_is_never_replaced_by_a_deferral() {
    assert_eq!(Pending.after(Deferred), Deferred);
    assert_eq!(Deferred.after(Sent), Sent);
    assert_eq!(Sent.after(Deferred), Sent);
    assert_eq!(Bounced.after(Deferred), Bounced);
    // A final attempt logged later wins (an expiry after a bounce the MTA retried, say).
    assert_eq!(Bounced.after(Sent), Sent);
    assert!(Sent.is_final() && Bounced.is_final() && Expired.is_final());
    assert!(!Pending.is_final() && !Deferred.is_final());
}

#[test]
fn states_round_trip_through_their_stored_names() {
    for s in RecipientStatus::WORST_FIRST {
        assert_eq!(RecipientStatus::parse(s.as_str()), Some(s));
    }
    assert_eq!(RecipientStatus::parse("queued"), None);
}
