use super::RecipientStatus::{self, *};
use super::{DeliveryStatus, UnknownState};

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
        assert_eq!(s.as_str().parse::<RecipientStatus>(), Ok(s));
    }
    assert_eq!(
        "queued".parse::<RecipientStatus>(),
        Err(UnknownState("queued".into()))
    );
    for d in DeliveryStatus::ALL {
        assert_eq!(d.as_str().parse::<DeliveryStatus>(), Ok(d));
        assert_eq!(d.as_str(), d.recipient_status().as_str());
    }
    assert!("pending".parse::<DeliveryStatus>().is_err());
}
